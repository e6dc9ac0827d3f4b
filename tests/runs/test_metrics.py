"""The one metric function (agent.runs.metrics.compute): invariants, short windows, the stored form."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agent.runs import curve as defs
from agent.runs.lifecycle import json_safe
from agent.runs.metrics import (
    ANNUALISED,
    LABELS,
    METRIC_KEYS,
    MIN_ANNUAL_BARS,
    MIN_ANNUAL_DAYS,
    Activity,
    Curve,
    MetricSet,
    RunMetrics,
    compute,
)

HOUR = 3_600_000
DAY = 24 * HOUR

levels = st.integers(1, 10**7).map(float)
"""Equity levels: positive, as a spot account without borrowing always is (whole units keep bar returns
either exactly 0 or well away from it, so ratios are compared without rounding noise)."""


NO_DEADLINE = settings(deadline=None)
"""Time is not a property here (the first call loads the compiled code)."""


def curves(min_size: int = 1, max_size: int = 200) -> st.SearchStrategy[np.ndarray]:
    return arrays(np.float64, st.integers(min_size, max_size), elements=levels)


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)


# ---- invariants -------------------------------------------------------------------------------------------


@NO_DEADLINE
@given(level=levels, n=st.integers(1, 2000), bar_ms=st.sampled_from([60_000, HOUR, DAY]))
def test_a_constant_equity_returns_nothing_and_never_draws_down(level: float, n: int, bar_ms: int) -> None:
    m = compute(Curve(np.full(n, level), level, bar_ms))
    assert m.total_return == 0.0 and m.max_drawdown == 0.0 and m.max_drawdown_days == 0.0
    assert m.final_equity == level and m.bars == n
    assert math.isnan(m.sharpe) and math.isnan(m.sortino), "no variance: undefined, never 0"


@NO_DEADLINE
@given(equity=curves(), initial=levels)
def test_max_drawdown_is_a_fraction_of_the_peak_lost(equity: np.ndarray, initial: float) -> None:
    m = compute(Curve(equity, initial, HOUR))
    assert -1.0 <= m.max_drawdown <= 0.0
    assert m.max_drawdown == pytest.approx(defs.drawdown(equity, initial)[0], rel=1e-12, abs=1e-15)
    if np.all(np.diff(np.concatenate([[initial], equity])) >= 0):
        assert m.max_drawdown == 0.0, "a curve that never falls has no drawdown"


@NO_DEADLINE
@given(first=curves(), second=curves(), initial=levels)
def test_returns_compose_and_drawdowns_only_deepen(
    first: np.ndarray, second: np.ndarray, initial: float
) -> None:
    """Running A then B (B starting from A's end) returns (1 + r_A)(1 + r_B) - 1; its drawdown is at least
    as deep as either part's."""
    a = compute(Curve(first, initial, HOUR))
    b = compute(Curve(second, float(first[-1]), HOUR))
    both = compute(Curve(np.concatenate([first, second]), initial, HOUR))
    assert 1 + both.total_return == pytest.approx((1 + a.total_return) * (1 + b.total_return), rel=1e-9)
    assert both.max_drawdown <= min(a.max_drawdown, b.max_drawdown) + 1e-12
    assert both.bars == a.bars + b.bars and both.days == pytest.approx(a.days + b.days)


@NO_DEADLINE
@given(equity=curves(min_size=MIN_ANNUAL_BARS), initial=levels, power=st.integers(-20, 20))
def test_figures_do_not_depend_on_the_currency_unit(equity: np.ndarray, initial: float, power: int) -> None:
    scale = 2.0**power  # exact in binary floating point: the figures must be identical, not just close
    one = compute(Curve(equity, initial, DAY)).numbers()
    other = compute(Curve(equity * scale, initial * scale, DAY)).numbers()
    for key in ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar"):
        assert one[key] == other[key] or (math.isnan(one[key]) and math.isnan(other[key])), key


@settings(max_examples=50, deadline=None)
@given(equity=curves(min_size=MIN_ANNUAL_BARS, max_size=1000), initial=levels)
def test_the_compiled_pass_agrees_with_the_numpy_definitions(equity: np.ndarray, initial: float) -> None:
    m = compute(Curve(equity, initial, DAY))
    returns = defs.bar_returns(equity, initial)
    assert same(m.sharpe, defs.sharpe(returns, 365.0))
    assert same(m.sortino, defs.sortino(returns, 365.0))
    assert same(m.volatility, defs.volatility(returns, 365.0))
    assert same(m.cagr, defs.cagr(float(equity[-1]), initial, len(equity), 365.0))
    assert m.max_drawdown_days == defs.drawdown(equity, initial)[1]


# ---- the short-window rule --------------------------------------------------------------------------------


def test_four_bars_are_not_annualised_and_say_why() -> None:
    """Four hourly bars up 2% printed a CAGR of 4,974,341% before."""
    m = compute(Curve(np.array([10_050.0, 10_120.0, 10_080.0, 10_200.0]), 10_000.0, HOUR))
    assert m.total_return == pytest.approx(0.02) and m.max_drawdown < 0
    assert all(math.isnan(getattr(m, key)) for key in ANNUALISED)
    (warning,) = m.warnings
    assert warning.startswith("4 bars (0.2 days) are too short to annualise") and "CAGR" in warning


@NO_DEADLINE
@given(bars=st.integers(1, 3 * MIN_ANNUAL_BARS), bar_hours=st.sampled_from([1, 4, 24, 24 * 7]))
def test_annualised_figures_only_on_windows_long_enough(bars: int, bar_hours: int) -> None:
    rng = np.random.default_rng(bars)
    equity = 100.0 * np.cumprod(1 + rng.normal(0.0, 0.01, bars))
    m = compute(Curve(equity, 100.0, bar_hours * HOUR))
    long_enough = bars >= MIN_ANNUAL_BARS and bars * bar_hours / 24 >= MIN_ANNUAL_DAYS
    assert (not m.warnings) is long_enough
    assert all(math.isnan(getattr(m, key)) is not long_enough for key in ("cagr", "volatility", "sharpe"))
    assert math.isfinite(m.total_return) and math.isfinite(m.max_drawdown), "always shown, unannualised"


def test_every_figure_has_a_label() -> None:
    assert list(LABELS) == list(METRIC_KEYS)


def test_no_bars_gives_no_figures_and_says_so() -> None:
    m = compute(Curve(np.zeros(0), 100.0, HOUR))
    assert m.bars == 0 and math.isnan(m.total_return) and m.warnings == ("no bars yet: no figures",)


# ---- activity ---------------------------------------------------------------------------------------------


def test_activity_figures_by_hand() -> None:
    equity = np.array([100.0, 110.0, 105.0, 120.0])
    activity = Activity(
        notional=215.0, fees_paid=0.5, fills=3, trade_pnl=np.array([10.0, -5.0, 15.0]), open_trades=1,
        decisions=8, abstentions=2,
    )  # fmt: skip
    m = compute(Curve(equity, 100.0, HOUR, exposure=np.array([0.0, 0.5, 0.0, 1.0])), activity)
    assert m.turnover == pytest.approx(215.0 / equity.mean()) and m.fees_paid == 0.5 and m.fills == 3
    assert (m.trades, m.open_trades, m.win_rate) == (3, 1, pytest.approx(2 / 3))
    assert m.profit_factor == pytest.approx(25 / 5) and m.expectancy == pytest.approx(20 / 3)
    assert (m.exposure, m.time_in_market) == (0.375, 0.5)
    assert (m.decisions, m.abstentions) == (8, 2)
    bare = compute(Curve(equity, 100.0, HOUR))
    assert bare.decisions is None and math.isnan(bare.exposure) and math.isnan(bare.win_rate)


# ---- the stored form --------------------------------------------------------------------------------------


def _stored(metrics: RunMetrics) -> dict[str, object]:
    """What a JSON column gives back."""
    return dict(json.loads(json.dumps(json_safe(metrics.to_json()))))


def _equal(a: MetricSet, b: MetricSet) -> bool:
    return a.warnings == b.warnings and all(same(float(x), float(y)) for x, y in zip(
        [np.nan if v is None else v for v in a.numbers().values()],
        [np.nan if v is None else v for v in b.numbers().values()],
        strict=True,
    ))  # fmt: skip


def test_the_stored_form_reads_back_as_it_was() -> None:
    short = compute(Curve(np.array([101.0, 99.0, 102.0]), 100.0, HOUR), Activity(decisions=3, abstentions=1))
    hold = compute(Curve(np.array([100.5, 100.0, 103.0]), 100.0, HOUR))
    cash = compute(Curve(np.full(3, 100.0), 100.0, HOUR))
    metrics = RunMetrics(
        short, buy_and_hold=hold, cash=cash, extra={"llm_calls": 3.0, "mean_latency_ms": 12.5}
    )
    stored = _stored(metrics)
    assert set(stored) == {"strategy", "buy_and_hold", "cash", "warnings"}
    assert set(stored["strategy"]) == {*METRIC_KEYS, "llm_calls", "mean_latency_ms"}  # type: ignore[arg-type]
    assert set(stored["buy_and_hold"]) == set(METRIC_KEYS)  # type: ignore[arg-type]
    back = RunMetrics.from_json(stored)
    assert back is not None and back.extra == {"llm_calls": 3.0, "mean_latency_ms": 12.5}
    assert _equal(back.strategy, short) and back.buy_and_hold is not None and _equal(back.buy_and_hold, hold)
    assert back.warnings == short.warnings and len(back.warnings) == 1
    assert RunMetrics.from_json({}) is None and RunMetrics.from_json(None) is None


def test_a_row_from_before_the_nested_layout_still_reads() -> None:
    """Rule backtests stored their figures at the top level, beside the buy_and_hold and cash columns."""
    legacy = {
        "total_return": 0.1, "sharpe": 1.2, "cagr": 0.3, "trades": 4, "bars": 1416, "days": 59.0,
        "dust_orders": 0, "buy_and_hold": {"total_return": 0.2, "bars": 1416, "days": 59.0}, "cash": {},
    }  # fmt: skip
    back = RunMetrics.from_json(legacy)
    assert back is not None and back.warnings == ()
    assert (back.strategy.total_return, back.strategy.sharpe, back.strategy.trades) == (0.1, 1.2, 4)
    assert back.buy_and_hold is not None and back.buy_and_hold.total_return == 0.2
    assert back.extra == {"dust_orders": 0} and math.isnan(back.strategy.win_rate)
