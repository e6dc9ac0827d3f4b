"""The look-ahead check flags a leaky strategy and passes every built-in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent.backtest.lookahead import check_lookahead, sample_bars
from strategies import BUILTINS, Strategy, build_strategy


class PeeksAtNextClose(Strategy):
    """Long when the *next* bar closes higher: uses a row after t."""

    name = "peeks"

    def signal(self, candles: pd.DataFrame) -> np.ndarray:
        close = candles["close"].to_numpy()
        out = np.zeros(len(close))
        out[:-1] = close[1:] > close[:-1]
        return out


class NormalisesByTheFutureMax(Strategy):
    """Long when the close is in the top half of the whole sample's range: every value sees the future."""

    name = "future_max"

    def signal(self, candles: pd.DataFrame) -> np.ndarray:
        close = candles["close"].to_numpy()
        return (close > (close.max() + close.min()) / 2).astype(float)


@pytest.mark.parametrize("cls", [PeeksAtNextClose, NormalisesByTheFutureMax])
def test_leaky_strategies_are_flagged(cls: type[Strategy], btc_1h: pd.DataFrame) -> None:
    findings, cuts = check_lookahead(cls(), btc_1h, "BTC/USDT", samples=10)
    assert cuts == 10
    assert findings, "a strategy using future rows must be flagged"
    first = findings[0]
    assert first["full"] != first["truncated"] and first["bar"] <= first["cut"]


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_is_point_in_time(name: str, btc_1h: pd.DataFrame) -> None:
    findings, cuts = check_lookahead(build_strategy(name), btc_1h, "BTC/USDT", samples=12)
    assert cuts >= 10 and findings == []


def test_samples_include_signal_changes_and_are_reproducible() -> None:
    full = np.zeros(1000)
    full[300:400] = 1.0
    cuts = sample_bars(full, warmup=50, samples=10)
    assert cuts == sample_bars(full, warmup=50, samples=10)
    assert {300, 400} <= set(cuts)
    assert min(cuts) >= 50 and max(cuts) < 999
