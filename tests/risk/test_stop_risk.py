"""The stop sizes the position: the loss if the stop is hit, fees and slippage included, is at most
`risk_per_trade` of equity, whichever of the model's stop and the default ATR stop is wider."""

from __future__ import annotations

import pytest

from agent.llm.schema import Action
from tests.risk.world import ETH, PRICE, World, btc_held, decision, kinds

FEE, SLIPPAGE = 0.001, 5e-4  # the world's market: taker fee 0.1%, default slippage 5 bps
BUY_COST = (1 + SLIPPAGE) * (1 + FEE)
SELL_KEEP = (1 - SLIPPAGE) * (1 - FEE)


def loss_at_stop(exposure: float, stop: float, price: float = PRICE) -> float:
    """Fraction of equity lost when a position of `exposure` bought at `price` is sold at `stop`."""
    return exposure * (BUY_COST - stop / price * SELL_KEEP)


def test_a_stop_49_percent_below_the_price_shrinks_the_entry() -> None:
    stop = PRICE * 0.51
    r = World().limit(decision("buy", 0.5, stop_loss=stop))
    assert r.changes and r.stop_loss == stop
    assert loss_at_stop(r.target_exposure, stop) == pytest.approx(0.02, rel=1e-12)
    event = next(e for e in r.events if e.kind == "stop_risk")
    assert (event.field, event.before, event.after) == ("target_exposure", 0.5, r.target_exposure)
    assert "risk_per_trade" in event.detail


def test_a_stop_tighter_than_the_default_is_sized_by_the_default() -> None:
    world = World(atr=3_000.0)  # the default 2-ATR stop is 10% below; the model's 1%
    r = world.limit(decision("buy", 0.5, stop_loss=PRICE * 0.99))
    assert r.stop_loss == PRICE * 0.99  # the model's stop stays on the position
    assert loss_at_stop(r.target_exposure, PRICE * 0.9) == pytest.approx(0.02, rel=1e-12)
    assert loss_at_stop(r.target_exposure, PRICE * 0.9) <= 0.02


def test_a_stop_within_the_budget_changes_nothing() -> None:
    r = World().limit(decision("buy", 0.3))  # 3% stop: 0.3 × 3.1% < 2%
    assert r.target_exposure == 0.3 and r.events == ()


def test_an_add_is_sized_by_the_position_stop_over_the_whole_position() -> None:
    held = btc_held(stop=PRICE * 0.6)  # 0.3 exposure held with a stop 40% below
    r = World(cash=7_000.0, positions=held).limit(decision("buy", 0.45, stop_loss=None, take_profit=None))
    assert r.rejected and "stop_risk" in kinds(r) and r.action is Action.HOLD  # 0.3 × 40% > 2% already
    small = btc_held(amount=0.005, stop=PRICE * 0.9)  # 0.03 held, stop 10% below
    r2 = World(cash=9_700.0, positions=small).limit(decision("buy", 0.45, stop_loss=None, take_profit=None))
    assert r2.changes and kinds(r2) == ["stop_risk"]
    assert loss_at_stop(r2.target_exposure, PRICE * 0.9) == pytest.approx(0.02, rel=1e-12)


def test_the_allowance_offers_only_what_the_default_stop_allows() -> None:
    a = World(atr=3_000.0).allowance()
    assert a.binding == "vol_target"
    assert loss_at_stop(a.max_exposure, PRICE * 0.9) == pytest.approx(0.02, rel=1e-12)
    other = World(atr=3_000.0).allowance(ETH)  # the same ATR on a 3,000 price: the 50% floor of the stop
    assert loss_at_stop(other.max_exposure, 1_500.0, price=3_000.0) == pytest.approx(0.02, rel=1e-12)
