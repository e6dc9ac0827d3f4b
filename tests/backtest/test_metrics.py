"""Metrics against quantstats and hand-worked cases."""

from __future__ import annotations

import math
import warnings
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from agent.backtest.metrics import (
    bar_returns,
    cash_metrics,
    compute_metrics,
    drawdown,
    equity_metrics,
    periods_per_year,
    trade_stats,
)
from agent.backtest.models import EngineConfig
from tests.backtest.helpers import plain_rules, run_bars

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def curve() -> np.ndarray:
    rng = np.random.default_rng(11)
    return 10_000.0 * np.cumprod(1 + rng.normal(0.0003, 0.01, 2_000))


@pytest.fixture(scope="module")
def qs() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("quantstats")


def test_annualisation_counts_every_hour_of_every_day() -> None:
    assert periods_per_year("1h") == 8760
    assert periods_per_year("1d") == 365
    assert periods_per_year("15m") == 35040


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ("sharpe", "sharpe"),
        ("sortino", "sortino"),
        ("volatility", "volatility"),
        ("cagr", "cagr"),
        ("calmar", "calmar"),
    ],
)
def test_ratios_match_quantstats(curve: np.ndarray, qs: ModuleType, ours: str, theirs: str) -> None:
    returns = pd.Series(
        bar_returns(curve, 10_000.0), index=pd.date_range("2024-01-01", periods=len(curve), freq="h")
    )
    expected = getattr(qs.stats, theirs)(returns, periods=8760)
    assert equity_metrics(curve, 10_000.0, 8760.0, HOUR_MS)[ours] == pytest.approx(expected, rel=1e-9)


def test_max_drawdown_matches_quantstats(curve: np.ndarray, qs: ModuleType) -> None:
    returns = pd.Series(
        bar_returns(curve, 10_000.0), index=pd.date_range("2024-01-01", periods=len(curve), freq="h")
    )
    assert equity_metrics(curve, 10_000.0, 8760.0, HOUR_MS)["max_drawdown"] == pytest.approx(
        qs.stats.max_drawdown(returns), rel=1e-9
    )


def test_drawdown_depth_and_duration_by_hand() -> None:
    equity = np.array([110.0, 99.0, 88.0, 105.0, 111.0, 100.0])
    depth, bars = drawdown(equity, 100.0)
    assert depth == pytest.approx(88 / 110 - 1)
    assert bars == 3  # below the 110 peak for bars 1, 2, 3; the last bar starts a new stretch of 1
    metrics = equity_metrics(equity, 100.0, 8760.0, HOUR_MS)
    assert metrics["max_drawdown"] == pytest.approx(88 / 110 - 1)
    assert metrics["max_drawdown_days"] == pytest.approx(3 / 24)
    assert metrics["total_return"] == pytest.approx(0.0)


def test_the_initial_cash_is_a_peak() -> None:
    assert drawdown(np.array([90.0, 95.0]), 100.0) == (pytest.approx(-0.1), 2)


def test_trade_stats_by_hand() -> None:
    stats = trade_stats(np.array([30.0, -10.0, 20.0, -20.0]))
    assert stats == {"trades": 4, "win_rate": 0.5, "profit_factor": 50 / 30, "expectancy": 5.0}
    assert math.isinf(trade_stats(np.array([1.0]))["profit_factor"])
    assert math.isnan(trade_stats(np.array([]))["win_rate"])


def test_activity_metrics_of_a_simulation_by_hand() -> None:
    sim = run_bars(
        [100, 100, 110, 110], [1, 1, 0, 0], rules=plain_rules(fee=0.01), config=EngineConfig(1000.0)
    )
    m = compute_metrics(sim, "1h")
    amount = 1000 / (100 * 1.01)
    buy_fee, sell_fee = amount * 100 * 0.01, amount * 110 * 0.01
    assert m["fees_paid"] == pytest.approx(buy_fee + sell_fee)
    assert m["trades"] == 1 and m["win_rate"] == 1.0
    assert m["expectancy"] == pytest.approx(amount * 110 - amount * 100 - buy_fee - sell_fee)
    assert m["time_in_market"] == 0.5  # held at the closes of bars 1 and 2
    assert m["exposure"] == pytest.approx(sim.exposure.mean())
    assert m["turnover"] == pytest.approx((amount * 100 + amount * 110) / sim.equity.mean())
    assert m["dust_orders"] == 0 and m["fills"] == 2


def test_cash_holds_its_value_with_undefined_ratios() -> None:
    m = cash_metrics(pd.date_range("2024", periods=10, freq="h", tz="UTC"), 500.0, "1h")
    assert m["total_return"] == 0.0 and m["max_drawdown"] == 0.0 and m["fees_paid"] == 0.0
    assert math.isnan(m["sharpe"]) and math.isnan(m["sortino"])
