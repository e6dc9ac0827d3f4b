"""Sizing, caps, exit distances and alignment of several symbols."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agent.backtest.models import SizingRules
from agent.backtest.plan import align, exit_plan, gross_cap, sized_targets, spread
from agent.market.indicators import atr
from strategies.crossover import SmaCross
from tests.backtest.helpers import random_walk


def test_fixed_sizing_scales_and_caps_with_a_count() -> None:
    frame = random_walk(5)
    signal = np.array([0, 1, 1, 0.5, 0])
    out, clamped = sized_targets(signal, frame, SizingRules(fraction=0.8, position_cap=0.5))
    assert out.tolist() == [0, 0.5, 0.5, 0.4, 0] and clamped.tolist() == [False, True, True, False, False]
    same, none = sized_targets(signal, frame, SizingRules(fraction=0.5, position_cap=0.5))
    assert same.tolist() == [0, 0.5, 0.5, 0.25, 0] and not none.any()


def test_vol_target_size_is_fixed_at_the_signal_change() -> None:
    frame = random_walk(200, vol=0.02)
    signal = np.zeros(200)
    signal[100:150] = 1.0
    rules = SizingRules(mode="vol_target", risk_per_trade=0.01, stop_atr=2.0, position_cap=1.0)
    out, _ = sized_targets(signal, frame, rules)
    value = atr(frame["high"].to_numpy(), frame["low"].to_numpy(), frame["close"].to_numpy(), 14)[100]
    expected = min(0.01 / (2.0 * value / frame["close"].iloc[100]), 1.0)
    assert np.all(out[100:150] == pytest.approx(expected))
    assert (out[:100] == 0).all() and (out[150:] == 0).all()


def test_gross_cap_scales_only_rows_above_it() -> None:
    targets = np.array([[0.5, 0.5], [0.8, 0.7], [0.2, 0.0]])
    out, rows = gross_cap(targets, 1.0)
    assert rows.tolist() == [False, True, False]
    np.testing.assert_allclose(out, [[0.5, 0.5], [0.8 / 1.5, 0.7 / 1.5], [0.2, 0.0]])


def test_exit_plan_levels_from_the_close_and_atr_multiples() -> None:
    frame = random_walk(50)
    assert exit_plan(frame, SmaCross.Params()) is None
    plan = exit_plan(frame, SmaCross.Params(stop_atr=2.0, take_profit_atr=4.0, trailing_atr=3.0))
    value = atr(frame["high"].to_numpy(), frame["low"].to_numpy(), frame["close"].to_numpy(), 14)
    close = frame["close"].to_numpy()
    np.testing.assert_allclose(plan[0], close - 2 * value)
    np.testing.assert_allclose(plan[1], close + 4 * value)
    np.testing.assert_allclose(plan[2], 3 * value)
    only_stop = exit_plan(frame, SmaCross.Params(stop_atr=2.0))
    assert np.isnan(only_stop[1]).all() and np.isnan(only_stop[2]).all()


def test_align_unions_bar_times_and_spread_carries_decisions_forward() -> None:
    a = random_walk(4, start="2024-01-01 00:00")
    b = random_walk(4, start="2024-01-01 02:00").drop(pd.Timestamp("2024-01-01 03:00", tz="UTC"))
    index, ohlcv, rows = align({"A": a, "B": b}, ["A", "B"])
    assert len(index) == 6
    assert np.isnan(ohlcv["close"][:2, 1]).all() and np.isnan(ohlcv["close"][3, 1])
    assert ohlcv["close"][2, 1] == b["close"].iloc[0]
    placed = spread(np.array([1.0, 0.0, 1.0]), rows[1], 6, 0.0)
    assert placed.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert math.isnan(spread(np.array([np.nan, 2.0, 3.0]), rows[1], 6, np.nan)[0])


def test_public_names_resolve() -> None:
    import agent.backtest
    import strategies

    for module in (agent.backtest, strategies):
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_clamps_are_counted_per_bar_and_symbol_in_the_traded_window_only() -> None:
    from agent.backtest.runner import run_backtest
    from strategies.buy_and_hold import BuyAndHold
    from tests.backtest.helpers import plain_rules

    frames = {"A": random_walk(100, seed=1), "B": random_walk(100, seed=2)}
    result = run_backtest(
        frames,
        BuyAndHold(),
        timeframe="1h",
        rules=[plain_rules("A"), plain_rules("B")],
        sizing=SizingRules(position_cap=0.8, gross_cap=1.0),
        start=frames["A"].index[40],
    )
    assert result.metrics["clamped_bars"] == 60 * 2
    np.testing.assert_allclose(result.targets, 0.5)  # 0.8 + 0.8 scaled down to a gross of 1.0
