"""Orders at the open: client ids, sells before buys, dust and unfillable orders counted, input checks, and
the day/peak bookkeeping at the close."""

from __future__ import annotations

import re

import pytest

from agent.broker import (
    Bar,
    FillTerms,
    MarketRules,
    PendingTarget,
    client_order_id,
    initial_state,
    process_bar,
)
from agent.config import Settings
from agent.errors import DataError
from agent.portfolio import PortfolioState, Position
from tests.broker.sim import drive, load_frames, rules_for, sma_targets

BTC, ETH = "BTC/USDT", "ETH/USDT"
RULES = {
    BTC: MarketRules(BTC, 1e-5, 1e-5, 5.0, 0.001, 0.001),
    ETH: MarketRules(ETH, 1e-4, 1e-4, 5.0, 0.001, 0.001),
}
HOUR = 3_600_000
T0 = 1_726_704_000_000  # 2024-09-19 00:00 UTC
FLAT = Bar(100.0, 100.0, 100.0, 100.0, 1e9)
SETTINGS = Settings(symbols=[BTC, ETH], broker={"slippage_bps": 0.0})


def test_client_ids_are_deterministic_sanitised_and_bounded() -> None:
    assert client_order_id("run-1", "BTC/USDT", T0, "target") == f"run-1-BTCUSDT-{T0}-target"
    assert client_order_id("r un;1", "BTC/USDT:USDT", T0, "exit") == f"run1-BTCUSDTUSDT-{T0}-exit"
    long = client_order_id("x" * 90, "BTC/USDT", T0, "target")
    assert len(long) <= 96 and long != client_order_id("x" * 89 + "y", "BTC/USDT", T0, "target")


def test_a_retried_bar_produces_the_same_orders_and_ids_are_unique_over_a_run() -> None:
    state = initial_state(10_000.0)
    pending = {BTC: PendingTarget(BTC, 0.5, T0 - HOUR)}
    bar = {BTC: Bar(60_000.0, 60_100.0, 59_900.0, 60_000.0, 100.0)}
    first = process_bar(state, bar, pending, T0, RULES, FillTerms.of(SETTINGS), "r1")
    again = process_bar(state, bar, pending, T0, RULES, FillTerms.of(SETTINGS), "r1")
    assert first == again
    frames = load_frames([BTC], bars=2000)
    run = drive(frames, {BTC: sma_targets(frames[BTC])}, Settings(symbols=[BTC]), rules_for([BTC]), "r2")
    ids = [o.client_order_id for out in run.outcomes for o in out.orders]
    assert len(ids) > 20 and len(ids) == len(set(ids))
    assert all(re.fullmatch(r"r2-BTCUSDT-\d{13}-(target|exit)", i) for i in ids)


def test_sells_free_cash_before_buys() -> None:
    held = Position(BTC, 50.0, 100.0, T0 - HOUR)
    state = PortfolioState(cash=0.0, positions={BTC: held}, peak_equity=5_000.0, day_start_equity=5_000.0)
    pending = {ETH: PendingTarget(ETH, 0.9, T0 - HOUR), BTC: PendingTarget(BTC, 0.0, T0 - HOUR)}
    out = process_bar(state, {BTC: FLAT, ETH: FLAT}, pending, T0, RULES, FillTerms.of(SETTINGS), "r1")
    sequence = [(o.symbol, o.side, o.status) for o in out.orders]
    assert sequence == [(BTC, "sell", "filled"), (ETH, "buy", "filled")]
    assert out.fills[1].amount == pytest.approx(45.0)


def test_dust_and_unfillable_orders_are_recorded_not_filled() -> None:
    state = PortfolioState(cash=3.0, peak_equity=3.0, day_start_equity=3.0)
    pending = {BTC: PendingTarget(BTC, 1.0, T0 - HOUR)}
    out = process_bar(state, {BTC: FLAT}, pending, T0, RULES, FillTerms.of(SETTINGS), "r1")
    assert out.fills == () and out.state == state.with_changes(day=out.state.day)
    (order,) = out.orders
    assert order.status == "rejected" and order.reason == "entry: dust"
    assert [e.kind for e in out.events] == ["dust"]
    broke = PortfolioState(cash=0.0, positions={ETH: Position(ETH, 1.0, 100.0, T0)}, peak_equity=100.0)
    out2 = process_bar(
        broke,
        {BTC: FLAT, ETH: FLAT},
        {BTC: PendingTarget(BTC, 0.5, T0 - HOUR)},
        T0,
        RULES,
        FillTerms.of(SETTINGS),
        "r1",
    )
    assert out2.orders[0].status == "rejected" and out2.orders[0].reason == "entry: nothing fillable"
    assert [e.kind for e in out2.events] == ["zero"]


def test_dust_count_over_a_run_with_a_large_minimum_notional() -> None:
    frames = load_frames([BTC], bars=1500)
    rules = rules_for([BTC], min_notional=20_000.0)
    run = drive(frames, {BTC: sma_targets(frames[BTC]) * 0.5}, Settings(symbols=[BTC]), rules)
    dust = [o for out in run.outcomes for o in out.orders if o.reason.endswith("dust")]
    events = [e for out in run.outcomes for e in out.events if e.kind == "dust"]
    assert len(dust) == len(events) > 0
    assert all(o.amount * o.price < 20_000.0 for o in dust)
    assert all(f.amount * f.price >= 20_000.0 for out in run.outcomes for f in out.fills)


def test_participation_cap_limits_the_fill() -> None:
    settings = Settings(symbols=[BTC], broker={"slippage_bps": 0.0, "max_participation": 0.1})
    bar = {BTC: Bar(100.0, 100.0, 100.0, 100.0, 20.0)}
    out = process_bar(
        initial_state(10_000.0),
        bar,
        {BTC: PendingTarget(BTC, 1.0, T0 - HOUR)},
        T0,
        RULES,
        FillTerms.of(settings),
        "r1",
    )
    assert out.fills[0].amount == pytest.approx(2.0)


def test_a_target_equal_to_the_one_in_force_places_no_order() -> None:
    pending = {BTC: PendingTarget(BTC, 0.5, T0 - HOUR)}
    out = process_bar(
        initial_state(10_000.0), {BTC: FLAT}, pending, T0, RULES, FillTerms.of(SETTINGS), "r1", {BTC: 0.5}
    )
    assert out.orders == () and out.in_force == {BTC: 0.5}


def test_missing_or_invalid_inputs_fail_loudly() -> None:
    held = PortfolioState(cash=0.0, positions={BTC: Position(BTC, 1.0, 100.0, T0)})
    with pytest.raises(DataError, match="no bar for BTC/USDT"):
        process_bar(held, {ETH: FLAT}, {}, T0, RULES, FillTerms.of(SETTINGS), "r1")
    with pytest.raises(DataError, match="invalid bar"):
        process_bar(
            held, {BTC: Bar(float("nan"), 1.0, 1.0, 1.0, 1.0)}, {}, T0, RULES, FillTerms.of(SETTINGS), "r1"
        )
    with pytest.raises(ValueError, match="invalid pending target"):
        process_bar(
            held,
            {BTC: FLAT},
            {BTC: PendingTarget(BTC, 1.5, T0 - HOUR)},
            T0,
            RULES,
            FillTerms.of(SETTINGS),
            "r1",
        )
    with pytest.raises(ValueError, match="invalid pending target"):  # decided at bar t: look-ahead
        process_bar(
            held, {BTC: FLAT}, {BTC: PendingTarget(BTC, 0.5, T0)}, T0, RULES, FillTerms.of(SETTINGS), "r1"
        )


def test_peak_and_day_start_follow_the_close_in_utc_days() -> None:
    state = PortfolioState(
        cash=0.0,
        positions={BTC: Position(BTC, 1.0, 100.0, T0)},
        peak_equity=100.0,
        day_start_equity=100.0,
        day=-1,
    )
    times = [T0 + h * HOUR for h in range(22, 26)]  # bars closing 23:00, 00:00 (new day), 01:00, 02:00
    closes = [110.0, 90.0, 95.0, 120.0]
    days, starts, peaks = [], [], []
    for ts, close in zip(times, closes, strict=True):
        out = process_bar(
            state, {BTC: Bar(close, close, close, close, 1.0)}, {}, ts, RULES, FillTerms.of(SETTINGS), "r1"
        )
        state = out.state
        days.append(state.day)
        starts.append(state.day_start_equity)
        peaks.append(state.peak_equity)
    first_day = (T0 + 23 * HOUR) // 86_400_000
    assert days == [first_day, first_day + 1, first_day + 1, first_day + 1]
    assert starts == [100.0, 90.0, 90.0, 90.0]
    assert peaks == [110.0, 110.0, 110.0, 120.0]
