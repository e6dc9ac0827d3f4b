"""Grid parsing, invalid combinations, parallel trials and ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.backtest.market import rules_matrix
from agent.backtest.models import EngineConfig, SizingRules
from agent.backtest.sweep import luck_sharpe, parse_grid, rank, run_sweep, trials
from agent.errors import ConfigError, StrategyError
from tests.backtest.helpers import plain_rules, random_walk


def test_parse_grid_ranges_lists_and_floats() -> None:
    grid = parse_grid(["fast=10:50:10", "slow=100,200", "nbdev=1.5:2.5:0.5", "x=7"])
    assert grid == {"fast": [10, 20, 30, 40, 50], "slow": [100, 200], "nbdev": [1.5, 2.0, 2.5], "x": [7]}


@pytest.mark.parametrize("item", ["fast", "fast=", "fast=1:2", "fast=5:1:1", "fast=1:5:0", "fast=a:b:c"])
def test_parse_grid_rejects_malformed_items(item: str) -> None:
    with pytest.raises(ConfigError, match="bad --grid"):
        parse_grid([item])


def test_invalid_combinations_are_skipped_and_counted() -> None:
    valid, skipped, reason = trials("sma_cross", parse_grid(["fast=10:50:10", "slow=50:200:25"]))
    assert len(valid) + skipped == 35 and skipped == 1
    assert "fast (50) must be below slow (50)" in reason
    with pytest.raises(StrategyError, match="unknown parameter 'speed'"):
        trials("sma_cross", {"speed": [1]})


def test_trials_give_the_same_metrics_in_one_or_two_processes() -> None:
    frames = {"X": random_walk(1500, seed=5)}
    values = [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 40}, {"fast": 20, "slow": 60}]
    kwargs = dict(
        timeframe="1h",
        rules=rules_matrix([plain_rules(fee=0.001)]),
        config=EngineConfig(1000.0),
        sizing=SizingRules(),
        start=None,
    )
    done: list[int] = []
    one = run_sweep("sma_cross", values, frames, workers=1, on_done=lambda: done.append(1), **kwargs)
    two = run_sweep("sma_cross", values, frames, workers=2, **kwargs)
    assert len(done) == 3
    assert [r["params"] for r in one] == values
    assert [r["metrics"]["final_equity"] for r in one] == [r["metrics"]["final_equity"] for r in two]
    assert len({r["metrics"]["final_equity"] for r in one}) == 3


def test_rank_best_first_with_undefined_last() -> None:
    rows = [
        {"params": {"i": i}, "metrics": {"sharpe": s, "volatility": v}}
        for i, (s, v) in enumerate([(0.5, 0.3), (math.nan, 0.1), (1.5, 0.2), (-1.0, 0.4)])
    ]
    assert [r["params"]["i"] for r in rank(rows, "sharpe")] == [2, 0, 3, 1]
    assert [r["params"]["i"] for r in rank(rows, "volatility")] == [1, 2, 0, 3]


def test_luck_sharpe_grows_with_trials_and_shrinks_with_years() -> None:
    assert luck_sharpe(1, 8760, 8760) == 0.0
    assert luck_sharpe(100, 8760, 8760) > luck_sharpe(10, 8760, 8760) > 0
    assert luck_sharpe(100, 4 * 8760, 8760) == pytest.approx(luck_sharpe(100, 8760, 8760) / 2)
    assert np.isclose(luck_sharpe(35, 8760, 8760), math.sqrt(2 * math.log(35)))
