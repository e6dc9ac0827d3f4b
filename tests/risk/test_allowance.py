"""The allowance: caps, breakers and the actions the model may be offered, each limit recorded."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agent.config import Settings
from agent.llm.schema import Action
from agent.portfolio import Position
from agent.risk.breakers import kill_switch_active
from tests.risk.world import ETH, PRICE, T0, World, btc_held

BUY_HOLD = (Action.BUY, Action.HOLD)
BUY_COST, SELL_KEEP = 1.001 * 1.0005, 0.999 * 0.9995  # taker fee 0.1%, slippage 5 bps
ALL = (Action.BUY, Action.SELL, Action.HOLD, Action.CLOSE)


def test_flat_with_cash_may_buy_up_to_the_position_cap() -> None:
    a = World().allowance()
    assert a.actions == BUY_HOLD and a.llm_needed and not a.entries_blocked
    assert a.max_exposure == 0.5 and a.binding == "max_position_exposure"
    # the default stop is 2% below: 2% risk, with the fee and slippage paid both ways, allows 87%
    assert a.caps["vol_target"] == pytest.approx(0.02 / (BUY_COST - 0.98 * SELL_KEEP)) and a.events == ()


def test_gross_cap_counts_the_other_positions() -> None:
    eth = {ETH: Position(ETH, 2.0, 3_000.0, T0)}  # 6,000 of 16,000 equity
    a = World(cash=10_000.0, positions=eth, risk={"max_gross_exposure": 0.6}).allowance()
    assert a.binding == "max_gross_exposure"
    # 22.5% of equity is left under the cap before costs; the buy's costs lower equity, so a bit less fits
    room = (0.6 - 6_000.0 / 16_000.0) / (1 - 0.6 + 0.6 * BUY_COST)
    assert a.max_exposure == pytest.approx(room, rel=1e-12)
    assert (6_000.0 + room * 16_000.0) / (16_000.0 - room * 16_000.0 * (BUY_COST - 1)) == pytest.approx(0.6)


def test_cash_floor_and_costs_limit_the_cash_cap() -> None:
    eth = {ETH: Position(ETH, 2.0, 3_000.0, T0)}  # cash 4,000 of 10,000 equity; floor 3,000
    a = World(cash=4_000.0, positions=eth, risk={"min_cash_fraction": 0.3}).allowance()
    assert a.binding == "cash"
    # cash after the buy = 30% of equity after the buy (the costs lower both)
    spent = a.max_exposure * 10_000.0 * BUY_COST
    assert 4_000.0 - spent == pytest.approx(0.3 * (10_000.0 - a.max_exposure * 10_000.0 * (BUY_COST - 1)))


def test_volatility_scales_the_size() -> None:
    a = World(atr=3_000.0).allowance()  # a 2-ATR stop is 10% away: 2% risk → 20% exposure, less the costs
    assert a.binding == "vol_target" and a.max_exposure == pytest.approx(0.02 / (BUY_COST - 0.9 * SELL_KEEP))


def test_no_atr_means_hold_only_and_no_model_call() -> None:
    a = World(atr=math.nan).allowance()
    assert a.actions == (Action.HOLD,) and not a.llm_needed
    assert [e.kind for e in a.events] == ["no_volatility"]


def test_no_cash_leaves_buy_out_with_the_reason() -> None:
    eth = {ETH: Position(ETH, 2.0, 3_000.0, T0)}
    a = World(cash=0.0, positions=eth).allowance()
    assert a.actions == (Action.HOLD,)
    assert [(e.kind, e.field) for e in a.events] == [("exposure_cap", "actions")]
    assert a.binding == "max_gross_exposure+cash" and "binding: max_gross_exposure+cash" in a.events[0].detail


def test_room_smaller_than_one_minimum_order_is_dust() -> None:
    eth = {ETH: Position(ETH, 3.3332, 3_000.0, T0)}  # 9,999.6 of 10,003 equity in ETH
    a = World(cash=3.4, positions=eth).allowance()
    assert Action.BUY not in a.actions and [e.kind for e in a.events] == ["dust"]


@pytest.mark.parametrize(
    ("world", "kind"),
    [
        (World(kill_switch=True), "kill_switch"),
        (World(state_extra={"day_start_equity": 10_600.0}), "daily_loss_limit"),  # 5.7% down today
        (World(state_extra={"peak_equity": 14_000.0}), "max_drawdown"),  # 28.6% below the peak
        (World(state_extra={"cooldown_until": {"BTC/USDT": T0 + 1}}), "cooldown"),
    ],
)
def test_breakers_block_entries_but_not_exits(world: World, kind: str) -> None:
    flat = world.allowance()
    assert flat.actions == (Action.HOLD,) and not flat.llm_needed
    assert flat.max_exposure == 0.0 and flat.binding == kind and flat.entries_blocked
    assert [e.kind for e in flat.events] == [kind] and flat.events[0].after == 0.0
    world.positions = btc_held()
    world.cash = 10_000.0 - 3_000.0
    held = world.allowance()
    assert held.actions == (Action.SELL, Action.HOLD, Action.CLOSE) and held.llm_needed


def test_breakers_below_their_thresholds_do_not_trip() -> None:
    near = World(
        state_extra={
            "day_start_equity": 10_400.0,
            "peak_equity": 13_000.0,
            "cooldown_until": {"BTC/USDT": T0},
        }
    )
    assert near.allowance().actions == BUY_HOLD


def test_held_position_may_be_added_to_sold_or_closed() -> None:
    a = World(cash=7_000.0, positions=btc_held()).allowance()
    assert a.actions == ALL and a.current_exposure == pytest.approx(0.3)


@pytest.mark.parametrize("price", [math.nan, math.inf, 0.0, -5.0])
def test_bad_prices_allow_hold_only(price: float) -> None:
    a = World(marks={"BTC/USDT": price, ETH: 3_000.0}).allowance()
    assert a.actions == (Action.HOLD,) and [e.kind for e in a.events] == ["bad_market_data"]


def test_a_held_symbol_without_a_mark_allows_hold_only() -> None:
    eth = {ETH: Position(ETH, 1.0, 3_000.0, T0)}
    a = World(positions=eth, marks={"BTC/USDT": PRICE}).allowance()
    assert a.actions == (Action.HOLD,) and "ETH/USDT" in a.events[0].detail


def test_allowance_round_trips_through_the_checkpoint_serializer() -> None:
    from agent.graph.checkpoint import serializer

    serde = serializer()
    a = World(kill_switch=True, atr=math.nan).allowance()
    back = serde.loads_typed(serde.dumps_typed(a))
    assert back == a and type(back.actions) is tuple and type(back.events) is tuple
    assert back.llm_needed is a.llm_needed and back.entries_blocked is a.entries_blocked


def test_kill_switch_file(tmp_path: Path) -> None:
    assert not kill_switch_active(Settings().risk.kill_switch_file)
    settings = Settings(risk={"kill_switch_file": "STOP"})
    assert not kill_switch_active(settings.risk.kill_switch_file, session=None)
    (tmp_path / "STOP").touch()  # the test runs in tmp_path: a relative path is the working directory's
    assert kill_switch_active(settings.risk.kill_switch_file)
    absolute = Settings(risk={"kill_switch_file": str(tmp_path / "STOP")})
    assert kill_switch_active(absolute.risk.kill_switch_file)
