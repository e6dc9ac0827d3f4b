"""The look-ahead check flags four classic leaks on two symbols, passes every built-in, compares every bar
of every cut (targets and exit plans), samples every bar it can afford, and refuses to pass having checked
nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import given
from hypothesis import strategies as st

from agent.backtest import lookahead
from agent.backtest.lookahead import DEFAULT_CUTS, NoCutPoint, check_lookahead, cut_points
from agent.backtest.plan import exit_levels
from agent.config import DEFAULT_DATA_DIR
from agent.errors import DataError
from agent.market.candles import read_feather
from strategies import BUILTINS, Strategy, StrategyParams, build_strategy
from strategies.base import FloatArray, prices
from strategies.signals import above

SYMBOLS = ("BTC/USDT", "ETH/USDT")
EXIT_PLAN = {"stop_atr": 2.0, "take_profit_atr": 4.0, "trailing_atr": 3.0}


def _candles(symbol: str, timeframe: str) -> pd.DataFrame:
    return read_feather(
        Path(DEFAULT_DATA_DIR) / "binance" / f"{symbol.replace('/', '_')}-{timeframe}.feather"
    )


@pytest.fixture(scope="module")
def hourly() -> dict[str, pd.DataFrame]:
    """The first 3,000 bundled 1h candles per symbol (four months: more usable bars than the default budget,
    so the leaks are found by the sampled cuts, not by trying every bar)."""
    return {s: _candles(s, "1h").iloc[:3000] for s in SYMBOLS}


@pytest.fixture(scope="module")
def daily() -> dict[str, pd.DataFrame]:
    """Five years of bundled 1d candles per symbol (1,825 bars: every usable bar fits the budget)."""
    return {s: _candles(s, "1d") for s in SYMBOLS}


# ------------------------------------------------------------------------------- deliberately leaky


class NextClosePeek(Strategy):
    """Long when the next bar closes higher: reads close[t+1] at bar t."""

    name = "next_close_peek"

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """`shift(-1)` on the signal itself."""
        return (candles["close"].shift(-1) > candles["close"]).to_numpy().astype(np.float64)


class CentredMean(Strategy):
    """Long below a centred 24-bar mean: the window reaches 12 bars past t."""

    name = "centred_mean"

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """`rolling(center=True)`, partial windows at the edges."""
        close = candles["close"]
        mean = close.rolling(24, center=True, min_periods=1).mean()
        return (close < mean).to_numpy().astype(np.float64)


class EmaOfNextClose(Strategy):
    """Long above a 20-bar EMA of the *next* close: `shift(-1)` inside the indicator, its gap filled.

    The leak moves the EMA by a twentieth of one bar's change, so the signal differs only near a crossing:
    on these bars 20 cuts find nothing on either symbol, the default's 2,500 find about 45 each.
    """

    name = "ema_of_next_close"

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """EMA over close.shift(-1).ffill()."""
        ahead = candles["close"].shift(-1).ffill().to_numpy().astype(np.float64)
        return above(prices(candles), talib.EMA(ahead, 20))


class DailyCloseAtItsStart(Strategy):
    """Long below the day's close, joined to each hour by the day's start: hour 0 already knows 23:00."""

    name = "daily_close_at_its_start"

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """`resample("1D").last()` labelled by the period's start, forward-filled onto the hours."""
        close = candles["close"]
        level = close.resample("1D").last().reindex(close.index, method="ffill")
        return (close < level).to_numpy().astype(np.float64)


LEAKY = [NextClosePeek, CentredMean, EmaOfNextClose, DailyCloseAtItsStart]


@pytest.mark.parametrize("symbol", SYMBOLS)
@pytest.mark.parametrize("cls", LEAKY, ids=lambda c: c.name)
def test_each_leak_is_flagged_at_the_default(
    cls: type[Strategy], symbol: str, hourly: dict[str, pd.DataFrame]
) -> None:
    frame = hourly[symbol]
    result = check_lookahead(cls(), frame, symbol)
    assert result.cuts == DEFAULT_CUTS < result.usable, "the default samples as many bars as it affords"
    assert result.findings, f"{cls.name} reads later rows and must be flagged on {symbol}"
    assert all(f.symbol == symbol and f.decision == "target" for f in result.findings)
    assert all(f.bar <= f.cut and f.full != f.truncated for f in result.findings)
    full = cls().exposure(frame)
    for f in result.findings[:3]:  # the reported values are the two runs' values at the bar
        bar, cut = frame.index.searchsorted(f.bar), frame.index.searchsorted(f.cut)
        assert (f.full, f.truncated) == (full[bar], cls().exposure(frame.iloc[: cut + 1])[bar])


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_a_resample_leak_shows_at_bars_before_the_cut(symbol: str, hourly: dict[str, pd.DataFrame]) -> None:
    """The hours of a day before the cut change too: the check compares every bar, not only the last."""
    result = check_lookahead(DailyCloseAtItsStart(), hourly[symbol].iloc[:500], symbol)
    assert result.every_bar
    assert any(f.bar < f.cut for f in result.findings)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_the_exit_plan_is_compared_at_every_bar(
    symbol: str, daily: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop level computed from the next bar's low is caught although the targets are point in time."""

    def next_low_stop(
        high: FloatArray, low: FloatArray, close: FloatArray, params: StrategyParams
    ) -> FloatArray | None:
        plan = exit_levels(high, low, close, params)
        if plan is not None:
            plan[0] = np.append(low[1:], np.nan)  # the stop at bar t is the low of bar t+1
        return plan

    monkeypatch.setattr(lookahead, "exit_levels", next_low_stop)
    result = check_lookahead(build_strategy("sma_cross", EXIT_PLAN), daily[symbol], symbol)
    assert result.findings and {f.decision for f in result.findings} == {"stop_loss"}
    assert all(np.isnan(f.truncated) and not np.isnan(f.full) for f in result.findings)


# ------------------------------------------------------------------------------------ point in time


@pytest.mark.parametrize("symbol", SYMBOLS)
@pytest.mark.parametrize("plan", [{}, EXIT_PLAN], ids=["targets", "with_exit_plan"])
@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_builtin_passes_at_every_bar(
    name: str, plan: dict[str, float], symbol: str, daily: dict[str, pd.DataFrame]
) -> None:
    strategy = build_strategy(name, plan)
    result = check_lookahead(strategy, daily[symbol], symbol)
    assert result.findings == ()
    assert result.cuts == result.usable == len(daily[symbol]) - 1 - strategy.warmup_bars()


def test_a_builtin_passes_on_hourly_bars(hourly: dict[str, pd.DataFrame]) -> None:
    result = check_lookahead(build_strategy("sma_cross", EXIT_PLAN), hourly["BTC/USDT"], "BTC/USDT")
    assert result.findings == () and result.cuts == DEFAULT_CUTS


# ------------------------------------------------------------------------------ nothing to check


def test_a_warmup_longer_than_the_data_is_an_error(daily: dict[str, pd.DataFrame]) -> None:
    strategy = build_strategy("sma_cross", {"slow": 2000})
    with pytest.raises(
        NoCutPoint, match=r"no cut point on BTC/USDT: sma_cross\(.*\) needs 2000 bars of warm-up"
    ):
        check_lookahead(strategy, daily["BTC/USDT"], "BTC/USDT")
    assert issubclass(NoCutPoint, DataError)


def test_a_window_of_one_bar_is_an_error(daily: dict[str, pd.DataFrame]) -> None:
    frame = daily["ETH/USDT"]
    with pytest.raises(NoCutPoint, match="the window starts at bar 1824"):
        check_lookahead(build_strategy("sma_cross"), frame, "ETH/USDT", start=len(frame) - 1)


def test_the_window_start_moves_the_first_cut(daily: dict[str, pd.DataFrame]) -> None:
    frame = daily["BTC/USDT"]
    result = check_lookahead(build_strategy("sma_cross"), frame, "BTC/USDT", start=1700)
    assert result.usable == result.cuts == len(frame) - 1 - 1700


# ------------------------------------------------------------------------------------ cut points


@given(
    target=st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=2, max_size=300).map(np.array),
    first=st.integers(0, 320),
    budget=st.integers(1, 400),
)
def test_cut_points_are_usable_bars_within_budget(target: FloatArray, first: int, budget: int) -> None:
    n = len(target)
    cuts = cut_points(target, first, budget)
    usable = max(n - 1 - first, 0)
    assert len(cuts) == min(usable, budget)
    assert np.all(np.diff(cuts) > 0), "sorted, each bar once"
    assert all(first <= c <= n - 2 for c in cuts)
    changes = {i for i in range(max(first, 1), n - 1) if target[i] != target[i - 1]}
    if len(changes) <= budget // 2:
        assert changes <= set(cuts.tolist()), "bars where the target changes come first"
    assert np.array_equal(cuts, cut_points(target, first, budget)), "no randomness"


def test_every_usable_bar_when_the_budget_allows() -> None:
    cuts = cut_points(np.zeros(1000), 50, 5000)
    assert cuts.tolist() == list(range(50, 999))
