"""apply_limits: every clamp and rejection path, each with its recorded event."""

from __future__ import annotations

import math

import pytest

from agent.llm.schema import Action
from agent.portfolio import Position
from agent.risk.exits import MAX_STOP_DISTANCE
from agent.risk.inputs import Proposal
from agent.risk.limits import apply_limits, no_call_decision, rule_decision
from tests.risk.world import ATR, BTC, ETH, PRICE, T0, World, btc_held, decision, kinds

DEFAULT_STOP = PRICE - 2 * ATR
DEFAULT_TAKE = PRICE + 4 * ATR


def test_a_sound_buy_passes_unchanged() -> None:
    r = World().limit(decision("buy", 0.3))
    assert (r.action, r.target_exposure, r.rejected, r.changes) == (Action.BUY, 0.3, False, True)
    assert (r.stop_loss, r.take_profit) == (PRICE * 0.97, PRICE * 1.06) and r.events == ()


def test_hold_keeps_the_current_exposure_and_exit_plan() -> None:
    r = World(cash=7_000.0, positions=btc_held()).limit(decision("hold", 0.9))
    assert r.action is Action.HOLD and not r.changes and not r.rejected and r.events == ()
    assert r.target_exposure == pytest.approx(0.3) and (r.stop_loss, r.take_profit) == (57_000.0, 66_000.0)


def test_target_above_the_allowance_is_clamped_naming_the_binding_cap() -> None:
    r = World().limit(decision("buy", 0.9))
    assert r.target_exposure == 0.5 and kinds(r) == ["exposure_cap"]
    event = r.events[0]
    assert (event.field, event.before, event.after) == ("target_exposure", 0.9, 0.5)
    assert "max_position_exposure" in event.detail


def test_buy_with_little_cash_is_clamped_to_what_cash_allows() -> None:
    eth = {ETH: Position(ETH, 3.0, 3_000.0, T0)}  # 9,000 in ETH, 1,000 cash
    r = World(cash=1_000.0, positions=eth).limit(decision("buy", 0.5))
    assert kinds(r) == ["exposure_cap"] and "cash" in r.events[0].detail
    assert r.target_exposure * 10_000.0 == pytest.approx(1_000.0 / (1.001 * 1.0005))


def test_buy_with_no_cash_is_refused_with_the_reason() -> None:
    eth = {ETH: Position(ETH, 3.0, 3_000.0, T0)}
    r = World(cash=0.0, positions=eth).limit(decision("buy", 0.5))
    assert r.rejected and r.action is Action.HOLD and kinds(r) == ["action_not_allowed"]
    assert "cash" in r.events[0].detail and r.target_exposure == 0.0


def test_sell_with_nothing_held_is_refused() -> None:
    r = World().limit(decision("sell", 0.0))
    assert r.rejected and kinds(r) == ["nothing_to_sell"] and not r.changes


def test_sell_reduces_and_keeps_the_exit_plan() -> None:
    r = World(cash=7_000.0, positions=btc_held()).limit(decision("sell", 0.1, stop_loss=1.0))
    assert (r.action, r.target_exposure, r.changes) == (Action.SELL, 0.1, True)
    assert (r.stop_loss, r.take_profit) == (57_000.0, 66_000.0) and r.events == ()


@pytest.mark.parametrize(("action", "target"), [("sell", 0.4), ("sell", 0.3), ("buy", 0.2), ("buy", 0.3)])
def test_action_contradicting_its_target_is_refused(action: str, target: float) -> None:
    r = World(cash=7_000.0, positions=btc_held()).limit(decision(action, target))
    assert r.rejected and kinds(r) == ["inconsistent_action"] and r.target_exposure == pytest.approx(0.3)


def test_close_targets_zero() -> None:
    r = World(cash=7_000.0, positions=btc_held()).limit(decision("close", 0.3))
    assert (r.action, r.target_exposure) == (Action.CLOSE, 0.0) and kinds(r) == ["close_target"]


def test_low_confidence_becomes_hold() -> None:
    r = World(risk={"min_confidence": 0.6}).limit(decision("buy", 0.3, confidence=0.55))
    assert r.rejected and kinds(r) == ["low_confidence"] and r.events[0].before == 0.55


@pytest.mark.parametrize(
    ("stop", "take", "expected"),
    [
        (None, None, ["stop_loss_default", "take_profit_default"]),
        (PRICE, PRICE * 1.1, ["stop_loss_default"]),
        (PRICE * 1.01, PRICE * 1.1, ["stop_loss_default"]),
        (PRICE * (1 - MAX_STOP_DISTANCE) - 1, PRICE * 1.1, ["stop_loss_default"]),
        (PRICE * 0.95, PRICE, ["take_profit_default"]),
        (PRICE * 0.95, PRICE * 0.99, ["take_profit_default"]),
    ],
)
def test_entry_exit_plan_is_repaired_from_atr(
    stop: float | None, take: float | None, expected: list[str]
) -> None:
    r = World().limit(decision("buy", 0.3, stop_loss=stop, take_profit=take))
    assert kinds(r) == expected and r.changes
    assert r.stop_loss == (DEFAULT_STOP if "stop_loss_default" in expected else stop)
    assert r.take_profit == (DEFAULT_TAKE if "take_profit_default" in expected else take)
    for event in r.events:
        assert event.before == (stop if event.field == "stop_loss" else take)


def test_default_stop_is_never_further_than_the_limit() -> None:
    r = World(atr=20_000.0, risk={"risk_per_trade": 0.5}).limit(decision("buy", 0.3, stop_loss=None))
    assert r.stop_loss == PRICE * (1 - MAX_STOP_DISTANCE)


def test_entry_needing_a_default_without_atr_is_refused() -> None:
    world = World()
    allowed = world.allowance()
    proposal = decision("buy", 0.3, take_profit=None)
    portfolio, settings = world.portfolio, world.settings
    market = world.market(BTC, atr=math.nan)
    r = apply_limits(Proposal(proposal), allowed, market, portfolio, settings.risk, settings.symbols)
    assert r.rejected and kinds(r) == ["no_volatility"]


def test_an_order_below_the_exchange_minimum_is_dropped() -> None:
    r = World(cash=7_000.0, positions=btc_held()).limit(decision("buy", 0.3004))  # 4 USDT more
    assert r.rejected and kinds(r) == ["exit_plan_kept", "exit_plan_kept", "dust"] and not r.changes
    assert r.target_exposure == pytest.approx(0.3)


def test_an_add_keeps_the_position_exit_plan_and_records_the_ignored_levels() -> None:
    # 0.35 with the held stop 5% below risks 1.85% of equity: within risk_per_trade, so no stop_risk clamp
    r = World(cash=7_000.0, positions=btc_held()).limit(decision("buy", 0.35, stop_loss=59_000.0))
    assert r.changes and (r.stop_loss, r.take_profit) == (57_000.0, 66_000.0)
    assert [(e.kind, e.field, e.before, e.after) for e in r.events] == [
        ("exit_plan_kept", "stop_loss", 59_000.0, 57_000.0),
        ("exit_plan_kept", "take_profit", PRICE * 1.06, 66_000.0),
    ]
    same = World(cash=7_000.0, positions=btc_held()).limit(
        decision("buy", 0.35, stop_loss=57_000.0, take_profit=None)
    )
    assert same.changes and same.events == ()
    bare = World(cash=7_000.0, positions=btc_held(stop=None)).limit(decision("buy", 0.35))
    assert bare.rejected and kinds(bare) == ["no_exit_plan"]


def test_unknown_and_unconfigured_symbols_are_refused() -> None:
    r = World().limit(decision("buy", 0.3, symbol="DOGE/USDT"))
    assert r.rejected and kinds(r) == ["unknown_symbol"] and r.events[0].before == "DOGE/USDT"
    world = World(marks={BTC: PRICE, ETH: 3_000.0, "SOL/USDT": 150.0})
    r2 = world.limit(decision("buy", 0.3, symbol="SOL/USDT"), symbol="SOL/USDT")
    assert r2.rejected and kinds(r2) == ["unknown_symbol"]


def test_alias_and_price_scale_of_a_rebased_prompt() -> None:
    r = World().limit(
        decision("buy", 0.3, symbol="ASSET_A", stop_loss=97.0, take_profit=106.0),
        alias="ASSET_A",
        price_scale=PRICE / 100.0,
    )
    assert not r.rejected and r.stop_loss == pytest.approx(PRICE * 0.97) and r.events == ()


def test_rule_targets_become_decisions_only_when_they_change() -> None:
    assert rule_decision(BTC, 1.0, 1.0, 0.0, "sma").action is Action.HOLD
    assert rule_decision(BTC, 1.0, 0.0, 0.0, "sma").action is Action.BUY
    assert rule_decision(BTC, 0.0, 1.0, 0.5, "sma").action is Action.CLOSE
    assert rule_decision(BTC, 0.2, 1.0, 0.5, "sma").action is Action.SELL
    assert rule_decision(BTC, 0.0, 1.0, 0.0, "sma").action is Action.HOLD  # stopped out already
    assert rule_decision(BTC, math.nan, 0.0, 0.0, "sma").action is Action.HOLD
    r = World().limit(rule_decision(BTC, 1.0, 0.0, 0.0, "sma"), source="rule")
    # a rule's target is sized by its plan and its exits are its own (none here), as in the backtest engine
    assert r.source == "rule" and r.target_exposure == 1.0 and kinds(r) == [] and r.stop_loss is None
    bad = World().limit(rule_decision(BTC, 1.5, 0.0, 0.0, "buggy"), source="rule")
    assert bad.rejected and kinds(bad) == ["out_of_range"]


def test_no_call_decision_explains_itself() -> None:
    d = no_call_decision(World(kill_switch=True).allowance())
    assert d.action is Action.HOLD and "kill_switch" in d.rationale


def test_result_round_trips_through_the_checkpoint_serializer_even_with_nan_in_the_proposal() -> None:
    from agent.graph.checkpoint import serializer

    serde = serializer()
    r = World().limit(decision("buy", math.nan))
    back = serde.loads_typed(serde.dumps_typed(r))
    assert back.events == r.events and back.action is r.action and math.isnan(back.proposed.target_exposure)
    assert type(back.events) is tuple and back.source is r.source
    ok = World().limit(decision("buy", 0.9, take_profit=None))
    again = serde.loads_typed(serde.dumps_typed(ok))
    assert again == ok and again.changes is True
