"""Built-in strategies: valid exposures, hand-checked signals, parameter rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.config import DEFAULT_DATA_DIR
from agent.errors import StrategyError
from agent.market.candles import read_feather
from strategies import BUILTINS, build_strategy
from strategies.signals import latch, shift_forward


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return read_feather(Path(DEFAULT_DATA_DIR) / "binance" / "BTC_USDT-1h.feather")


def _frame(close: list[float]) -> pd.DataFrame:
    c = np.asarray(close, dtype=np.float64)
    idx = pd.date_range("2024-01-01", periods=len(c), freq="h", tz="UTC", name="date")
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": np.ones(len(c))}, index=idx)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_gives_a_valid_exposure_that_trades(name: str, btc: pd.DataFrame) -> None:
    strategy = build_strategy(name)
    out = strategy.exposure(btc)
    assert out.dtype == np.float64 and out.shape == (len(btc),)
    assert ((out >= 0) & (out <= 1)).all()
    assert out.max() == 1.0
    assert out[0] == (1.0 if name == "buy_and_hold" else 0.0)  # indicators still warming up: flat
    np.testing.assert_array_equal(out, strategy.exposure(btc))  # deterministic


def test_sma_cross_is_long_exactly_while_the_fast_average_is_above() -> None:
    close = [10, 10, 10, 10, 13, 16, 10, 4, 4, 4]
    out = build_strategy("sma_cross", {"fast": 2, "slow": 4}).exposure(_frame(close))
    # SMA2 vs SMA4 from bar 3: (10 vs 10), (11.5 vs 10.75), (14.5 vs 12.25), (13 vs 12.25), (7 vs 10.75)...
    assert out.tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0]


def test_rsi_reversion_holds_from_oversold_to_overbought() -> None:
    close = [100 - i for i in range(20)] + [80 + 3 * i for i in range(20)]
    out = build_strategy("rsi_reversion", {"period": 5, "lower": 30, "upper": 70}).exposure(_frame(close))
    first_in, first_out = int(np.argmax(out == 1)), int(np.argmax((np.arange(40) > 20) & (out == 0)))
    assert 5 <= first_in < 20 and 20 < first_out < 40
    assert (out[first_in:first_out] == 1).all()


def test_latch_and_shift_only_look_back() -> None:
    enter = np.array([0, 1, 0, 0, 0, 1, 1], bool)
    leave = np.array([0, 0, 0, 1, 0, 0, 1], bool)
    assert latch(enter, leave).tolist() == [0, 1, 1, 0, 0, 1, 0]
    assert np.isnan(shift_forward(np.arange(3.0))[0]) and shift_forward(np.arange(3.0))[1:].tolist() == [0, 1]


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("sma_cross", {"fast": 50, "slow": 20}, "fast (50) must be below slow (20)"),
        ("sma_cross", {"fast": "abc"}, "invalid parameter fast='abc'"),
        ("sma_cross", {"fsat": 3}, "unknown parameter 'fsat' for sma_cross"),
        ("rsi_reversion", {"lower": 80}, "lower (80.0) must be below upper (70.0)"),
        ("macd", {"stop_atr": -1}, "invalid parameter stop_atr=-1"),
    ],
)
def test_bad_parameters_raise_one_line_strategy_errors(name: str, params: dict, message: str) -> None:
    with pytest.raises(StrategyError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        build_strategy(name, params)
    assert "\n" not in str(info.value)


def test_params_from_strings_and_default_grid() -> None:
    strategy = build_strategy("sma_cross", {"fast": "10", "slow": "30", "stop_atr": "2.5"})
    assert (strategy.params.fast, strategy.params.slow, strategy.params.stop_atr) == (10, 30, 2.5)
    assert strategy.describe() == "sma_cross(stop_atr=2.5, atr_period=14, fast=10, slow=30)"
    assert BUILTINS["sma_cross"].default_grid() == {"fast": (10, 50, 10), "slow": (50, 200, 25)}


@pytest.mark.parametrize("declared", [(1, 2), (1, 2, 3, 4), ("a", 2, 3), 5, (True, 2, 3)])
def test_a_malformed_sweep_grid_is_one_strategy_error(declared: object) -> None:
    from pydantic import Field

    from strategies.base import Strategy, StrategyParams

    class BadParams(StrategyParams):
        period: int = Field(10, json_schema_extra={"grid": declared})  # type: ignore[dict-item]

    class Bad(Strategy):
        name = "bad"
        Params = BadParams

        def signal(self, candles: pd.DataFrame) -> np.ndarray:
            return np.zeros(len(candles))

    with pytest.raises(StrategyError, match=r"bad\.period: grid must be \(start, stop, step\) numbers"):
        Bad.default_grid()


def test_a_sweep_grid_is_declared_as_a_list_or_a_tuple() -> None:
    from pydantic import Field

    from strategies.base import Strategy, StrategyParams, sweep

    class TwoParams(StrategyParams):
        fast: int = Field(10, json_schema_extra=sweep(5, 20, 5))
        slow: float = Field(2.0, json_schema_extra={"grid": (1.5, 3.0, 0.5)})  # type: ignore[dict-item]

    class Both(Strategy):
        name = "both"
        Params = TwoParams

        def signal(self, candles: pd.DataFrame) -> np.ndarray:
            return np.zeros(len(candles))

    assert Both.default_grid() == {"fast": (5.0, 20.0, 5.0), "slow": (1.5, 3.0, 0.5)}


def test_out_of_range_output_is_refused_not_clipped() -> None:
    from strategies.base import Strategy

    class Wild(Strategy):
        name = "wild"

        def signal(self, candles: pd.DataFrame) -> np.ndarray:
            out = np.zeros(len(candles))
            out[3] = np.nan
            return out

    with pytest.raises(StrategyError, match="target exposure nan at 2024-01-01 03:00"):
        Wild().exposure(_frame([1.0] * 5))
