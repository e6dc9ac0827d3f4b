"""The compiled loop's per-bar semantics, checked against hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agent.backtest.engine import simulate
from agent.backtest.market import rules_matrix
from agent.backtest.models import EngineConfig
from agent.execution.costs import execute_order
from tests.backtest.helpers import plain_rules, run_bars


def test_next_open_round_trip_matches_hand_arithmetic() -> None:
    fee, slip = 0.001, 10.0
    sim = run_bars(
        [100, 110, 120, 130],
        [1, 1, 0, 0],
        close=[105, 115, 125, 135],
        rules=plain_rules(fee=fee),
        config=EngineConfig(1000.0, slippage_bps=slip),
    )
    buy_price = 110 * (1 + slip * 1e-4)
    amount = 1000 / (buy_price * (1 + fee))  # target 1.0 is capped by what cash affords with the fee
    cash = 1000 - amount * buy_price - amount * buy_price * fee
    sell_price = 130 * (1 - slip * 1e-4)
    final = cash + amount * sell_price * (1 - fee)
    assert list(sim.fill_bar) == [1, 3]
    assert list(sim.fill_side) == [1, -1]
    assert sim.fill_price[0] == pytest.approx(buy_price, rel=1e-15)
    assert sim.fill_amount[0] == pytest.approx(amount, rel=1e-12)
    assert sim.equity[1] == pytest.approx(cash + amount * 115, rel=1e-12)
    assert sim.equity[-1] == pytest.approx(final, rel=1e-12)
    assert sim.trade_pnl[0] == pytest.approx(final - 1000, rel=1e-9)
    assert sim.trades_frame()["exit_reason"].tolist() == ["exit"]
    assert sim.fill_fee.sum() == pytest.approx(
        amount * buy_price * fee + amount * sell_price * fee, rel=1e-12
    )


def test_same_close_mode_fills_at_the_deciding_bars_close() -> None:
    sim = run_bars(
        [100, 110, 120, 130],
        [1, 1, 0, 0],
        close=[105, 115, 125, 135],
        config=EngineConfig(1000.0, fill="same_close"),
    )
    assert list(sim.fill_bar) == [0, 2]
    assert list(sim.fill_price) == [105.0, 125.0]
    assert sim.equity[-1] == pytest.approx(1000 / 105 * 125)


def test_unchanged_target_is_not_rebalanced_against_drift() -> None:
    sim = run_bars([100, 50, 200, 80, 120], [0.5] * 5)
    assert len(sim.fill_bar) == 1
    assert sim.fill_amount[0] == pytest.approx(1000 * 0.5 / 50)


def test_sells_execute_before_buys_so_freed_cash_funds_the_buy() -> None:
    n = 4
    opens = {"A": [100.0] * n, "B": [50.0] * n}
    ohlcv = {c: np.column_stack([opens["A"], opens["B"]]) for c in ("open", "high", "low", "close")}
    ohlcv["volume"] = np.full((n, 2), 1e9)
    target = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    rules = rules_matrix([plain_rules("A", 0.001), plain_rules("B", 0.001)])
    sim = simulate(index, ["A", "B"], ohlcv, target, rules, EngineConfig(1000.0))
    # bar 1 buys A with all cash; bar 2 sells A and, with that cash, buys B.
    assert [
        (int(b), int(s), int(d)) for b, s, d in zip(sim.fill_bar, sim.fill_symbol, sim.fill_side, strict=True)
    ] == [(1, 0, 1), (2, 0, -1), (2, 1, 1)]
    assert sim.counters.zero == 0
    cash_after_sell = sim.fill_amount[1] * 100 * (1 - 0.001)
    assert sim.fill_amount[2] == pytest.approx(cash_after_sell / (50 * 1.001), rel=1e-12)


def test_missing_bar_defers_the_order_to_the_next_bar_with_data() -> None:
    nan = math.nan
    sim = run_bars(
        [100, nan, 120, 130],
        [1, 1, 1, 1],
        close=[100, nan, 120, 130],
        high=[100, nan, 120, 130],
        low=[100, nan, 120, 130],
    )
    assert list(sim.fill_bar) == [2]
    assert sim.equity[1] == 1000.0  # marked at the last close while the bar is missing


def _plan(
    close: list[float], stop: float = math.nan, take: float = math.nan, trail: float = math.nan
) -> np.ndarray:
    """Exit plans decided at each close: levels `stop` below, `take` above it, trailing distance `trail`."""
    c = np.asarray(close, dtype=np.float64)
    return np.stack([c - stop, c + take, np.full(len(c), trail)])


@pytest.mark.parametrize(
    ("bar2", "price", "reason"),
    [
        ((98.0, 99.0, 94.0), 95.0, "stop_loss"),  # touched inside the bar: fills at the stop
        ((90.0, 99.0, 89.0), 90.0, "stop_loss"),  # gap below the stop: fills at the open
        ((100.0, 111.0, 94.0), 95.0, "stop_loss"),  # both touched: the stop wins
        ((100.0, 112.0, 99.0), 110.0, "take_profit"),
        ((115.0, 116.0, 114.0), 115.0, "take_profit"),  # gap above: fills at the open
    ],
)
def test_stop_and_take_profit_via_exit_trigger(
    bar2: tuple[float, float, float], price: float, reason: str
) -> None:
    o, h, lo = bar2
    sim = run_bars(
        [100, 100, o, 100],
        [1, 1, 1, 1],
        high=[100, 100, h, 100],
        low=[100, 100, lo, 100],
        plan=_plan([100, 100, o, 100], stop=5.0, take=10.0),
    )
    assert list(sim.fill_bar) == [1, 2]
    assert sim.fill_price[1] == price
    assert sim.trades_frame()["exit_reason"].tolist() == [reason]


def test_exit_plan_is_the_one_decided_with_the_target() -> None:
    plan = _plan([100, 100, 96, 96], stop=5.0)
    plan[0, 1:] = 50.0  # plans decided at the entry bar itself and later must not be used
    sim = run_bars([100, 100, 96, 96], [1, 1, 1, 1], low=[100, 100, 94, 96], plan=plan)
    assert sim.fill_price[-1] == 95.0


def test_exit_levels_are_anchored_at_the_deciding_close_not_at_the_fill() -> None:
    # decided at close 100 with a stop 5 below (95); the entry fills at a gapped-up open of 104
    sim = run_bars(
        [100, 104, 96, 96],
        [1, 1, 1, 1],
        close=[100, 104, 96, 96],
        low=[100, 104, 95.5, 96],
        plan=_plan([100, 104, 96, 96], stop=5.0),
    )
    assert len(sim.fill_bar) == 1  # a stop at 99 (the fill minus 5) would have been hit at 95.5


def test_trailing_stop_rises_with_the_high_but_not_within_the_same_bar() -> None:
    sim = run_bars(
        [100, 100, 107, 104],
        [1, 1, 1, 1],
        high=[100, 108, 107, 105],
        low=[100, 102.5, 104, 102],
        plan=_plan([100, 100, 107, 104], stop=5.0, trail=5.0),
    )
    # bar 1: entered at 100 (stop 95); its high 108 raises the stop to 103 after the bar's exit check,
    # so its own low of 102.5 does not stop it out. Bar 2 (low 104) holds; bar 3 trades through 103.
    assert list(sim.fill_bar) == [1, 3]
    assert sim.fill_price[1] == 103.0
    assert sim.trades_frame()["exit_reason"].tolist() == ["trailing_stop"]


def test_a_stopped_out_position_is_not_reentered_while_the_target_is_unchanged() -> None:
    sim = run_bars(
        [100, 100, 90, 100, 100],
        [1, 1, 1, 1, 1],
        low=[100, 100, 89, 100, 100],
        plan=_plan([100] * 5, stop=5.0),
    )
    assert len(sim.fill_bar) == 2


def test_dust_precision_and_participation_are_applied_and_counted() -> None:
    dust = run_bars([100, 100, 100], [1, 1, 1], rules=plain_rules(min_notional=2000.0))
    assert len(dust.fill_bar) == 0 and dust.counters.dust == 1
    stepped = run_bars([100, 100, 100], [1, 1, 1], rules=plain_rules(step=0.3))
    assert stepped.fill_amount[0] == pytest.approx(9.9)
    capped = run_bars(
        [100, 100, 100], [1, 1, 1], volume=[1.0, 1.0, 1.0], config=EngineConfig(1000.0, max_participation=0.5)
    )
    assert capped.fill_amount[0] == 0.5 and capped.counters.capped == 1


def test_every_fill_is_exactly_what_costs_execute_order_returns() -> None:
    cfg = EngineConfig(1000.0, slippage_bps=7.0, max_participation=0.3)
    rules = plain_rules(fee=0.002, step=0.01, min_notional=5.0)
    vols = [50.0, 40.0, 30.0, 20.0, 10.0]
    sim = run_bars([100, 101, 99, 102, 98], [0.8, 0.3, 1.0, 0.0, 0.0], volume=vols, rules=rules, config=cfg)
    cash, pos, equity_open = 1000.0, 0.0, 0.0
    prev_target = 0.0
    targets = [0.8, 0.3, 1.0, 0.0]
    for i, bar in enumerate(sim.fill_bar):
        price = [100, 101, 99, 102, 98][bar]
        equity_open = cash + pos * price
        goal = targets[bar - 1]
        assert goal != prev_target
        prev_target = goal
        delta = goal * equity_open / price - pos
        side = 1 if delta > 0 else -1
        expected = execute_order(
            side, abs(delta), price, cash, pos, 0.002, 7.0, 0.01, 0.0, 5.0, vols[bar], 0.3
        )
        assert (sim.fill_amount[i], sim.fill_price[i], sim.fill_fee[i]) == expected[:3]
        cash += -side * expected[0] * expected[1] - expected[2]
        pos += side * expected[0]
    assert len(sim.fill_bar) == 4
    assert sim.counters.capped >= 1


def test_record_buffers_grow_when_exits_repeat_every_bar() -> None:
    n = 80
    low = [100.0, 100.0] + [50.0] * (n - 2)  # the stop is touched on every bar after the entry
    vol = [1e9, 1e9] + [0.2] * (n - 2)  # and each exit may sell only 0.1 units
    sim = run_bars(
        [100.0] * n,
        [1.0] * n,
        low=low,
        volume=vol,
        plan=_plan([100.0] * n, stop=5.0),
        config=EngineConfig(1000.0, max_participation=0.5),
    )
    assert len(sim.fill_bar) == n - 1  # one entry, then one capped exit per bar: beyond the first buffer
    assert sim.fill_amount[1:].sum() == pytest.approx(0.1 * (n - 2))
    assert sim.equity[-1] == pytest.approx(1000.0 - (n - 2) * 0.1 * 5.0)  # each 0.1 sold 5 below cost


def test_open_trade_at_the_end_is_reported_marked_to_the_last_close() -> None:
    sim = run_bars([100, 100, 120], [1, 1, 1], close=[100, 110, 125])
    trades = sim.trades_frame()
    assert trades["exit_reason"].tolist() == ["open"]
    assert trades["pnl"].iloc[0] == pytest.approx(10 * 125 - 1000)
    assert pd.isna(trades["exit_time"].iloc[0])


def test_same_inputs_give_bit_identical_results() -> None:
    from agent.backtest.runner import run_backtest
    from strategies.crossover import SmaCross
    from tests.backtest.helpers import random_walk

    frames = {"A": random_walk(3000, seed=4), "B": random_walk(2500, seed=5, start="2024-01-10")}
    rules = [plain_rules("A", 0.001, step=0.001, min_notional=5.0), plain_rules("B", 0.001)]
    runs = [
        run_backtest(
            frames,
            SmaCross(fast=10, slow=40, stop_atr=2.0, trailing_atr=3.0),
            timeframe="1h",
            rules=rules,
            config=EngineConfig(1000.0, slippage_bps=5.0),
        )
        for _ in range(2)
    ]
    a, b = (r.sim for r in runs)
    for field in ("equity", "cash", "fill_amount", "fill_price", "fill_fee", "trade_pnl"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    for key, value in runs[0].metrics.items():
        assert value == runs[1].metrics[key] or (math.isnan(value) and math.isnan(runs[1].metrics[key])), key
    assert len(a.fill_bar) > 20 and set(a.fill_symbol) == {0, 1}
