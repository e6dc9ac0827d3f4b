"""Stops and take-profits inside a bar: stop first when both are touched, gaps fill at the open, a stop-out
starts the cooldown and resets the symbol's target in force."""

from __future__ import annotations

import pytest

from agent.broker import Bar, FillTerms, MarketRules, PendingTarget, process_bar
from agent.broker.paper import initial_state
from agent.config import Settings
from agent.execution.costs import slipped_price
from agent.portfolio import PortfolioState, Position

SYMBOL = "BTC/USDT"
RULES = {SYMBOL: MarketRules(SYMBOL, 1e-5, 1e-5, 5.0, 0.001, 0.001)}
HOUR = 3_600_000
T0 = 1_726_704_000_000  # 2024-09-19 00:00 UTC


def _settings(**risk: object) -> Settings:
    return Settings(symbols=[SYMBOL], broker={"slippage_bps": 10.0}, risk={"cooldown_bars": 3, **risk})


def _holding(stop: float | None, take: float | None, amount: float = 0.1) -> PortfolioState:
    position = Position(SYMBOL, amount, 60_000.0, T0 - HOUR, stop, take, "thesis")
    return PortfolioState(
        cash=4_000.0, positions={SYMBOL: position}, peak_equity=10_000.0, day_start_equity=10_000.0, day=-1
    )


def _settle(state: PortfolioState, bar: Bar, settings: Settings | None = None):  # noqa: ANN202
    return process_bar(
        state, {SYMBOL: bar}, {}, T0, RULES, FillTerms.of(settings or _settings()), "r1", {SYMBOL: 1.0}
    )


def test_stop_wins_when_the_bar_touches_both_levels() -> None:
    out = _settle(_holding(58_000.0, 62_000.0), Bar(60_000.0, 63_000.0, 57_000.0, 61_000.0, 100.0))
    (order,), (fill,) = out.orders, out.fills
    assert order.reason == "stop_loss" and order.price == 58_000.0 and order.side == "sell"
    assert fill.price == pytest.approx(slipped_price(-1, 58_000.0, 10.0))
    assert fill.amount == 0.1
    assert SYMBOL not in out.state.positions


def test_take_profit_fills_at_its_level() -> None:
    out = _settle(_holding(58_000.0, 62_000.0), Bar(60_000.0, 63_000.0, 59_000.0, 61_000.0, 100.0))
    assert [o.reason for o in out.orders] == ["take_profit"]
    assert out.orders[0].price == 62_000.0
    assert SYMBOL not in out.state.cooldown_until


def test_gap_below_the_stop_fills_at_the_open() -> None:
    out = _settle(_holding(58_000.0, 62_000.0), Bar(55_000.0, 56_000.0, 54_000.0, 55_500.0, 100.0))
    assert out.orders[0].reason == "stop_loss" and out.orders[0].price == 55_000.0
    assert out.fills[0].price == pytest.approx(55_000.0 * (1 - 10e-4))


def test_gap_above_the_take_profit_fills_at_the_open() -> None:
    out = _settle(_holding(58_000.0, 62_000.0), Bar(65_000.0, 66_000.0, 64_000.0, 65_500.0, 100.0))
    assert out.orders[0].reason == "take_profit" and out.orders[0].price == 65_000.0


def test_no_exit_plan_means_no_exit() -> None:
    out = _settle(_holding(None, None), Bar(60_000.0, 90_000.0, 1_000.0, 61_000.0, 100.0))
    assert out.orders == () and out.state.positions[SYMBOL].amount == 0.1


def test_stop_out_starts_the_cooldown_and_keeps_the_target_in_force() -> None:
    out = _settle(_holding(58_000.0, None), Bar(60_000.0, 60_500.0, 57_000.0, 57_500.0, 100.0))
    assert out.state.cooldown_until == {SYMBOL: T0 + 3 * HOUR}
    assert out.in_force == {SYMBOL: 1.0}  # as in the engine: the same target does not re-enter
    assert [e.kind for e in out.events] == ["cooldown"]
    bar = {SYMBOL: Bar(57_500.0, 58_000.0, 57_000.0, 57_600.0, 100.0)}
    same = {SYMBOL: PendingTarget(SYMBOL, 1.0, T0)}
    again = process_bar(out.state, bar, same, T0 + HOUR, RULES, FillTerms.of(_settings()), "r1", out.in_force)
    assert again.orders == ()


def test_entry_then_stop_in_the_same_bar() -> None:
    state = initial_state(10_000.0)
    pending = {SYMBOL: PendingTarget(SYMBOL, 0.5, T0 - HOUR, stop_loss=59_000.0, take_profit=65_000.0)}
    bar = Bar(60_000.0, 60_100.0, 58_500.0, 58_800.0, 100.0)
    out = process_bar(state, {SYMBOL: bar}, pending, T0, RULES, FillTerms.of(_settings()), "r1")
    assert [(o.leg, o.reason) for o in out.orders] == [("target", "entry"), ("exit", "stop_loss")]
    assert out.orders[0].client_order_id != out.orders[1].client_order_id
    assert out.state.positions == {}
    buy, sell = out.fills
    assert buy.amount == sell.amount
    assert out.state.cash == pytest.approx(
        10_000.0 - buy.amount * buy.price - buy.fee + sell.amount * sell.price - sell.fee
    )


def test_entry_stores_the_exit_plan_and_an_add_keeps_it() -> None:
    state = initial_state(10_000.0)
    first = {SYMBOL: PendingTarget(SYMBOL, 0.3, T0 - HOUR, 55_000.0, 70_000.0, "below 55k")}
    bar = Bar(60_000.0, 60_500.0, 59_500.0, 60_000.0, 100.0)
    out = process_bar(state, {SYMBOL: bar}, first, T0, RULES, FillTerms.of(_settings()), "r1")
    pos = out.state.positions[SYMBOL]
    plan = (pos.stop_loss, pos.take_profit, pos.invalidation, pos.entry_ts)
    assert plan == (55_000.0, 70_000.0, "below 55k", T0)
    add = {SYMBOL: PendingTarget(SYMBOL, 0.5, T0, 57_000.0, 72_000.0, "below 57k")}
    out2 = process_bar(
        out.state, {SYMBOL: bar}, add, T0 + HOUR, RULES, FillTerms.of(_settings()), "r1", out.in_force
    )
    pos2 = out2.state.positions[SYMBOL]
    assert out2.orders[0].reason == "increase"
    assert (pos2.stop_loss, pos2.take_profit, pos2.invalidation, pos2.entry_ts) == (
        55_000.0,
        70_000.0,
        "below 55k",
        T0,
    )
    buys = [out.fills[0], out2.fills[0]]
    cost = sum(f.amount * f.price for f in buys)
    assert pos2.avg_price == pytest.approx(cost / sum(f.amount for f in buys))


def test_a_trailing_distance_raises_the_stop_from_the_fill_and_follows_the_high() -> None:
    pending = {
        SYMBOL: PendingTarget(
            SYMBOL, 0.5, T0 - HOUR, stop_loss=58_000.0, take_profit=70_000.0, trailing_stop=1_200.0
        )
    }
    entry = Bar(60_000.0, 60_100.0, 59_900.0, 60_000.0, 100.0)
    out = process_bar(
        initial_state(10_000.0), {SYMBOL: entry}, pending, T0, RULES, FillTerms.of(_settings()), "r1"
    )
    pos = out.state.positions[SYMBOL]
    # the fill (60,060 with slippage) minus 1,200 is above the planned stop; then the bar's high lifts it
    assert (pos.stop_loss, pos.take_profit, pos.trailing_stop, pos.trailing) == (
        58_900.0,
        70_000.0,
        1_200.0,
        True,
    )
    up = Bar(60_000.0, 62_000.0, 59_000.0, 61_500.0, 100.0)  # 59,000 > 58,900: held; the high lifts the stop
    out2 = process_bar(out.state, {SYMBOL: up}, {}, T0 + HOUR, RULES, FillTerms.of(_settings()), "r1")
    assert out2.fills == () and out2.state.positions[SYMBOL].stop_loss == 60_800.0
    down = Bar(61_000.0, 61_200.0, 60_500.0, 60_600.0, 100.0)
    out3 = process_bar(out2.state, {SYMBOL: down}, {}, T0 + 2 * HOUR, RULES, FillTerms.of(_settings()), "r1")
    (order,) = out3.orders
    assert (order.reason, order.price) == ("trailing_stop", 60_800.0)
    assert SYMBOL not in out3.state.positions
    assert out3.state.cooldown_until[SYMBOL] == T0 + 2 * HOUR + 3 * HOUR
    assert [e.kind for e in out3.events] == ["cooldown"]


def test_missing_levels_mean_no_exit_plan() -> None:
    bar = Bar(60_000.0, 60_100.0, 59_900.0, 60_000.0, 100.0)
    warm = {SYMBOL: PendingTarget(SYMBOL, 0.5, T0 - HOUR, stop_loss=float("nan"), trailing_stop=float("nan"))}
    out = process_bar(
        initial_state(10_000.0), {SYMBOL: bar}, warm, T0, RULES, FillTerms.of(_settings()), "r1"
    )
    pos = out.state.positions[SYMBOL]
    assert (pos.stop_loss, pos.take_profit, pos.trailing_stop, pos.trailing) == (None, None, None, False)
