"""The broker re-checks the book at the fill: buys at the next open never push gross exposure above
`max_gross_exposure` nor cash below `min_cash_fraction` of equity, and no order, once floored to the
exchange's step, exceeds the cash or the position behind it."""

from __future__ import annotations

from agent.broker import Bar, FillTerms, PendingTarget, initial_state, process_bar
from agent.config import Settings
from agent.market.exchange import MarketRules
from agent.portfolio import PortfolioState, Position
from tests.risk.world import BTC, ETH, T0

HOUR = 3_600_000
RULES = {
    BTC: MarketRules(BTC, 1e-5, 1e-5, 5.0, 0.001, 0.001),
    ETH: MarketRules(ETH, 1e-4, 1e-4, 5.0, 0.001, 0.001),
}


def _flat_bars(opens: dict[str, float]) -> dict[str, Bar]:
    return {s: Bar(p, p, p, p, 1e9) for s, p in opens.items()}


def _book(state: PortfolioState, marks: dict[str, float]) -> tuple[float, float, float]:
    """(gross value, cash, equity) at `marks`."""
    value = sum(p.amount * marks[s] for s, p in state.positions.items())
    return value, state.cash, state.cash + value


def test_targets_that_together_overrun_the_caps_are_cut_at_the_fill() -> None:
    settings = Settings(symbols=[BTC, ETH], risk={"max_gross_exposure": 0.5, "min_cash_fraction": 0.6})
    opens = {BTC: 60_000.0, ETH: 3_000.0}
    pending = {
        s: PendingTarget(s, 0.3, T0 - HOUR, stop_loss=p * 0.95, take_profit=p * 1.1) for s, p in opens.items()
    }  # each fits alone; together 60% invested, 40% cash
    out = process_bar(
        initial_state(10_000.0), _flat_bars(opens), pending, T0, RULES, FillTerms.of(settings), "fill"
    )
    value, cash, equity = _book(out.state, opens)
    assert set(out.state.positions) == {BTC, ETH}
    assert value <= 0.5 * equity * (1 + 1e-9) and cash >= 0.6 * equity * (1 - 1e-9), (value, cash, equity)
    assert cash <= 0.6 * equity + 5.0 * 2  # the room is used, up to one step's notional per order
    assert [e.kind for e in out.events] == ["portfolio_room"] and out.events[0].symbol == ETH


def test_the_gross_cap_binds_at_the_fill_when_a_held_position_rose_overnight() -> None:
    settings = Settings(symbols=[BTC, ETH], risk={"max_gross_exposure": 0.5})
    held = {BTC: Position(BTC, 0.05, 60_000.0, T0 - 5 * HOUR, 50_000.0, 80_000.0)}
    state = initial_state(7_000.0).with_changes(positions=held)
    opens = {BTC: 70_000.0, ETH: 3_000.0}  # BTC gapped up: 3,500 of 10,500 held before any order
    pending = {ETH: PendingTarget(ETH, 0.2, T0 - HOUR, stop_loss=2_900.0, take_profit=3_300.0)}
    out = process_bar(state, _flat_bars(opens), pending, T0, RULES, FillTerms.of(settings), "gap")
    value, _, equity = _book(out.state, opens)
    assert value <= 0.5 * equity * (1 + 1e-9), value / equity
    assert ETH in out.state.positions and [e.kind for e in out.events] == ["portfolio_room"]


def test_default_limits_leave_fills_as_they_were() -> None:
    settings = Settings(symbols=[BTC, ETH])
    opens = {BTC: 60_000.0, ETH: 3_000.0}
    pending = {s: PendingTarget(s, 0.45, T0 - HOUR) for s in opens}
    out = process_bar(
        initial_state(10_000.0), _flat_bars(opens), pending, T0, RULES, FillTerms.of(settings), "plain"
    )
    assert out.events == () and len(out.fills) == 2


def test_a_sell_of_the_whole_position_never_exceeds_the_position() -> None:
    settings = Settings(symbols=[BTC, ETH])
    amount = 0.7 + 0.2  # 0.8999999999999999: floored to the step it rounds up to 0.9
    held = {BTC: Position(BTC, amount, 60_000.0, T0 - 5 * HOUR, 50_000.0, 80_000.0)}
    state = initial_state(0.0).with_changes(positions=held)
    rules = {BTC: MarketRules(BTC, 0.1, 0.1, 5.0, 0.001, 0.001)}
    out = process_bar(
        state,
        _flat_bars({BTC: 60_000.0}),
        {BTC: PendingTarget(BTC, 0.0, T0 - HOUR)},
        T0,
        rules,
        FillTerms.of(settings),
        "sell",
    )
    assert out.fills and out.fills[0].amount <= amount and not out.state.positions


def test_a_buy_floored_to_the_step_never_spends_more_than_the_cash() -> None:
    settings = Settings(symbols=[BTC, ETH], broker={"slippage_bps": 0.0})
    step, price, fee = 0.1, 60_000.0, 0.001
    cash = 3 * step * price * (1 + fee) * (1 - 1e-15)  # affordable: a hair under 3 steps
    rules = {BTC: MarketRules(BTC, step, step, 5.0, fee, fee)}
    out = process_bar(
        initial_state(cash),
        _flat_bars({BTC: price}),
        {BTC: PendingTarget(BTC, 1.0, T0 - HOUR)},
        T0,
        rules,
        FillTerms.of(settings),
        "buy",
    )
    assert out.fills and out.state.cash >= 0.0, out.state.cash
