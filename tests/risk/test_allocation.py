"""allocate: the tick's increases share the book's gross and cash room, pro rata, each change recorded."""

from __future__ import annotations

from typing import Any

import pytest

from agent.llm.schema import Action
from agent.portfolio import Position
from agent.risk.allocation import allocate
from agent.risk.book import TradeCosts
from agent.risk.models import RiskResult
from tests.risk.world import BTC, ETH, RULES, T0, World, btc_held, decision, kinds

COSTS = TradeCosts.of(0.001, 5.0)
ETH_PRICE = 3_000.0
ATR = 30.0  # one ATR for both symbols: default stops 0.1% (BTC) and 2% (ETH) below the price


def _eth(action: str = "buy", target: float = 0.3, **fields: Any) -> Any:
    return decision(
        action, target, symbol=ETH, stop_loss=ETH_PRICE * 0.97, take_profit=ETH_PRICE * 1.06, **fields
    )


def _tick(world: World, btc: Any, eth: Any) -> tuple[dict[str, RiskResult], dict[str, RiskResult]]:
    results = {BTC: world.limit(btc), ETH: world.limit(eth, symbol=ETH)}
    risk = world.settings.risk
    shared = allocate(
        results,
        world.portfolio,
        world.marks,
        {BTC: COSTS, ETH: COSTS},
        {BTC: RULES, ETH: RULES},
        max_gross_exposure=risk.max_gross_exposure,
        min_cash_fraction=risk.min_cash_fraction,
    )
    return results, shared


def _after_fills(world: World, shared: dict[str, RiskResult]) -> tuple[float, float]:
    """(gross, cash fraction) of the book once every target fills at the marks, costs paid."""
    equity = world.portfolio.equity(world.marks)
    cash, value = world.portfolio.cash, 0.0
    for r in shared.values():
        delta = (r.target_exposure - r.current_exposure) * equity
        cash -= delta * (COSTS.buy if delta > 0 else COSTS.sell)
        value += r.target_exposure * equity
    return value / (cash + value), cash / (cash + value)


def test_two_entries_share_the_gross_room_pro_rata() -> None:
    world = World(atr=ATR, risk={"max_gross_exposure": 0.5, "max_position_exposure": 0.4})
    alone, shared = _tick(world, decision("buy", 0.4), _eth("buy", 0.2))
    assert (alone[BTC].target_exposure, alone[ETH].target_exposure) == (0.4, 0.2)  # each fits alone
    gross, _ = _after_fills(world, shared)
    assert gross == pytest.approx(0.5, rel=1e-9)
    assert shared[BTC].target_exposure / shared[ETH].target_exposure == pytest.approx(2.0)
    for symbol in (BTC, ETH):
        event = shared[symbol].events[-1]
        assert (event.kind, event.before, event.after) == (
            "portfolio_room",
            alone[symbol].target_exposure,
            shared[symbol].target_exposure,
        )
        assert "max_gross_exposure" in event.detail and shared[symbol].changes


def test_the_cash_floor_binds_for_the_whole_book() -> None:
    risk = {"max_gross_exposure": 0.5, "max_position_exposure": 0.4, "min_cash_fraction": 0.6}
    world = World(atr=ATR, risk=risk)
    _, shared = _tick(world, decision("buy", 1.0, stop_loss=None), _eth("buy", 1.0))
    gross, cash = _after_fills(world, shared)
    assert cash == pytest.approx(0.6, rel=1e-9) and gross <= 0.4 + 1e-12
    assert all("binding: cash" in shared[s].events[-1].detail for s in (BTC, ETH))


def test_what_fits_is_left_alone() -> None:
    world = World(atr=ATR, risk={"max_gross_exposure": 0.7})
    results, shared = _tick(world, decision("buy", 0.3), _eth("buy", 0.3))
    assert shared == results


def test_a_sell_in_the_same_tick_frees_room_for_a_buy() -> None:
    eth = {ETH: Position(ETH, 1.0, ETH_PRICE, T0, 2_800.0, 3_500.0)}  # 3,000 of 10,000 equity
    world = World(cash=7_000.0, positions=eth, atr=ATR, risk={"max_gross_exposure": 0.5})
    results, shared = _tick(world, decision("buy", 0.4), _eth("sell", 0.1))
    assert results[BTC].target_exposure == pytest.approx(0.2 / (1 - 0.5 + 0.5 * COSTS.buy))  # room alone
    assert shared == results  # 0.2 room + 0.2 freed by the sale covers a further 0.2
    world_no_sale = World(cash=7_000.0, positions=eth, atr=ATR, risk={"max_gross_exposure": 0.5})
    _, held = _tick(world_no_sale, decision("buy", 0.4), _eth("hold", 0.1))
    assert held[BTC].target_exposure == results[BTC].target_exposure  # HOLD frees nothing, the cap is alone


def test_increases_scaled_to_dust_are_refused_with_both_reasons() -> None:
    world = World(cash=7_000.0, positions=btc_held(), atr=ATR, risk={"max_gross_exposure": 0.3008})
    add = decision("buy", 0.35, stop_loss=None, take_profit=None)
    results, shared = _tick(world, add, _eth("buy", 0.3))
    for symbol in (BTC, ETH):  # about 8 USDT of room each alone, 4 USDT each shared: below the 5 USDT minimum
        assert results[symbol].changes and shared[symbol].rejected and not shared[symbol].changes
        assert (
            kinds(shared[symbol])[-2:] == ["portfolio_room", "dust"] and shared[symbol].action is Action.HOLD
        )
        assert shared[symbol].target_exposure == results[symbol].current_exposure
    assert (shared[BTC].stop_loss, shared[BTC].take_profit) == (57_000.0, 66_000.0)  # the add keeps the plan
    assert (shared[ETH].stop_loss, shared[ETH].take_profit) == (None, None)  # no entry, no plan
