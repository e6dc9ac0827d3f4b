"""Final equity agrees with the independent numpy reference (and with vectorbt when it is installed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from agent.backtest.models import EngineConfig, SizingRules
from agent.backtest.reference import all_in_equity, sma
from agent.backtest.runner import run_backtest
from strategies.crossover import SmaCross
from tests.backtest.helpers import plain_rules, random_walk

FEE, CASH = 0.001, 10_000.0


def _tradegraph(frame: pd.DataFrame) -> np.ndarray:
    result = run_backtest(
        {"X": frame},
        SmaCross(fast=20, slow=50),
        timeframe="1h",
        rules=[plain_rules(fee=FEE)],
        config=EngineConfig(CASH),
        sizing=SizingRules(),
    )
    return result.sim.equity


def _reference(frame: pd.DataFrame) -> np.ndarray:
    close = frame["close"].to_numpy()
    signal = (sma(close, 20) > sma(close, 50)).astype(float)
    return all_in_equity(frame["open"].to_numpy(), close, signal, FEE, CASH)


@pytest.fixture(params=["random_walk", "btc_1h"])
def frame(request: pytest.FixtureRequest) -> pd.DataFrame:
    if request.param == "random_walk":
        return random_walk(5_000, seed=3, vol=0.006)
    return request.getfixturevalue("btc_1h")


def test_numpy_sma_matches_talib(frame: pd.DataFrame) -> None:
    close = frame["close"].to_numpy()
    np.testing.assert_allclose(sma(close, 20), talib.SMA(close, 20), rtol=1e-10)


def test_equity_curve_matches_numpy_reference(frame: pd.DataFrame) -> None:
    ours, ref = _tradegraph(frame), _reference(frame)
    assert abs(ours[-1] / ref[-1] - 1) < 1e-9
    np.testing.assert_allclose(ours, ref, rtol=1e-9)
    assert ours[-1] != CASH  # it traded


def test_final_equity_matches_vectorbt(frame: pd.DataFrame) -> None:
    vbt = pytest.importorskip("vectorbt")
    close, open_ = frame["close"].to_numpy(), frame["open"].to_numpy()
    signal = talib.SMA(close, 20) > talib.SMA(close, 50)
    entries, exits = np.zeros(len(close), bool), np.zeros(len(close), bool)
    entries[1:], exits[1:] = signal[:-1], ~signal[:-1]
    engine = "rust" if vbt._engine.is_rust_available() else "numba"
    pf = vbt.Portfolio.from_signals(
        close,
        entries,
        exits,
        price=open_,
        fees=FEE,
        init_cash=CASH,
        min_size=0.0,
        size_granularity=np.nan,
        engine=engine,
    )
    assert abs(_tradegraph(frame)[-1] / pf.value().to_numpy()[-1] - 1) < 1e-9
