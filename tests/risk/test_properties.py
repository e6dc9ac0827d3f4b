"""Property: whatever is proposed, for any book of 2-5 symbols, the risk layer (allowance, `apply_limits`,
`allocate`, as the graph's risk node runs them) and the broker's fill at the next open keep the whole book
within its limits, and every reduction of a proposal is recorded.

Checked after the fills (the next open at the decision prices, so drift plays no part), with TOL = 1e-8
(fractions of equity; the layer's own margin is `book.TOLERANCE` = 1e-9 relative):
- gross exposure <= `max_gross_exposure` when the tick bought anything, else not above where it was;
- cash >= `min_cash_fraction` × equity when the tick bought anything, else not below where it was;
- a position the tick increased is at most `max_position_exposure` of the equity before the tick (its
  fraction of the equity after the tick's costs may exceed that by those costs), and carries a stop;
- a position the tick increased loses at most `risk_per_trade` of the equity before the tick when stopped
  out at the wider of its stop and the default ATR stop, bought at the price and sold at the stop, fee and
  slippage included (gaps through the stop are not bounded);
- a BUY ending below its proposed target, or any refusal, carries an event; a buy the broker fills short of
  its order (beyond one step of flooring) carries a broker event;
- the broker's re-check at the fill finds nothing to cut: at the decision prices the targets fit already.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.broker import Bar, BarOutcome, FillTerms, PendingTarget, process_bar
from agent.config import Settings
from agent.llm.schema import Action, TradeDecision
from agent.market.exchange import MarketRules
from agent.portfolio import PortfolioState, Position
from agent.risk.allocation import allocate
from agent.risk.allowance import allowance
from agent.risk.book import TradeCosts
from agent.risk.exits import default_levels
from agent.risk.inputs import Market, Proposal
from agent.risk.limits import apply_limits, no_call_decision
from agent.risk.models import EXPOSURE_CAP, PORTFOLIO_ROOM, STOP_RISK, RiskResult

T0 = 1_726_704_000_000
HOUR = 3_600_000
TOL = 1e-8
SHRINKS = {EXPOSURE_CAP, STOP_RISK, PORTFOLIO_ROOM}


@dataclass(frozen=True)
class Tick:
    """One random decision point: settings, market, book and a proposal per symbol."""

    settings: Settings
    prices: dict[str, float]
    atrs: dict[str, float]
    rules: dict[str, MarketRules]
    book: PortfolioState
    proposals: dict[str, TradeDecision]


def _fraction(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@st.composite
def _level(draw: st.DrawFn, price: float, low: float, high: float) -> float | None:
    """None, or a price `low`..`high` (fractions) away from `price`."""
    return draw(st.none() | _fraction(low, high).map(lambda f: price * (1.0 + f)))


@st.composite
def _symbol(draw: st.DrawFn, symbol: str, cash: float) -> dict[str, Any]:
    price = 10 ** draw(_fraction(-1.0, 5.0))
    atr = math.nan if draw(st.integers(0, 9)) == 0 else price * draw(_fraction(0.0005, 0.3))
    step = draw(st.sampled_from([0.0, 1e-8, 1e-5, 1e-3, 0.1, 1.0]))
    fee = draw(st.sampled_from([0.0, 0.001, 0.0075]))
    rules = MarketRules(symbol, step, step, draw(st.sampled_from([0.0, 5.0])), fee, fee)
    position = None
    if draw(st.booleans()):
        value = cash * draw(_fraction(0.0, 1.0))
        stop = draw(_level(price, -0.6, -0.01))
        position = Position(symbol, value / price, price, T0 - 9 * HOUR, stop, draw(_level(price, 0.01, 1.0)))
    action = draw(st.sampled_from([Action.BUY] * 5 + [Action.SELL, Action.CLOSE, Action.HOLD]))
    proposal = TradeDecision.model_construct(
        symbol=symbol,
        action=action,
        target_exposure=draw(_fraction(0.0, 1.0)),
        confidence=draw(_fraction(0.0, 1.0)),
        stop_loss=draw(_level(price, -0.7, 0.1)),
        take_profit=draw(_level(price, -0.1, 1.0)),
        invalidation="",
        rationale="property",
    )
    return {"price": price, "atr": atr, "rules": rules, "position": position, "proposal": proposal}


@st.composite
def ticks(draw: st.DrawFn) -> Tick:
    symbols = [f"S{i}/USDT" for i in range(draw(st.integers(2, 5)))]
    risk = {
        "max_gross_exposure": draw(_fraction(0.05, 1.0)),
        "max_position_exposure": draw(_fraction(0.05, 1.0)),
        "min_cash_fraction": draw(st.just(0.0) | _fraction(0.0, 0.9)),
        "risk_per_trade": draw(_fraction(0.002, 0.1)),
        "default_stop_atr": draw(_fraction(0.5, 4.0)),
    }
    broker = {"slippage_bps": draw(_fraction(0.0, 50.0))}
    cash = 10 ** draw(_fraction(2.0, 6.0))
    parts = {s: draw(_symbol(s, cash)) for s in symbols}
    positions = {s: p["position"] for s, p in parts.items() if p["position"] is not None}
    book = PortfolioState(cash=cash, positions=positions)
    prices = {s: p["price"] for s, p in parts.items()}
    equity = book.equity(prices)
    book = book.with_changes(peak_equity=equity, day_start_equity=equity, day=T0 // 86_400_000)
    return Tick(
        Settings(symbols=symbols, risk=risk, broker=broker),
        prices,
        {s: p["atr"] for s, p in parts.items()},
        {s: p["rules"] for s, p in parts.items()},
        book,
        {s: p["proposal"] for s, p in parts.items()},
    )


def _risk_node(tick: Tick) -> dict[str, RiskResult]:
    """What the graph's risk node makes of the proposals (the screen node's allowances first)."""
    results = {}
    settings = tick.settings
    for symbol, proposal in tick.proposals.items():
        rules = tick.rules[symbol]
        market = Market(
            symbol,
            T0,
            tick.prices[symbol],
            tick.atrs[symbol],
            rules,
            TradeCosts.of_market(rules, settings.broker),
        )
        allowed = allowance(market, tick.book, tick.prices, settings.risk, False)
        decision = proposal if allowed.llm_needed else no_call_decision(allowed)
        results[symbol] = apply_limits(
            Proposal(decision), allowed, market, tick.book, settings.risk, settings.symbols
        )
    slippage = tick.settings.broker.slippage_bps
    costs = {s: TradeCosts.of(r.taker_fee, slippage) for s, r in tick.rules.items()}
    risk = tick.settings.risk
    return allocate(
        results,
        tick.book,
        tick.prices,
        costs,
        tick.rules,
        max_gross_exposure=risk.max_gross_exposure,
        min_cash_fraction=risk.min_cash_fraction,
    )


def _fill(tick: Tick, results: dict[str, RiskResult]) -> BarOutcome:
    """The broker at the next open, at the decision prices (a flat bar: no exit triggers)."""
    pending = {s: p for s, r in results.items() if (p := PendingTarget.from_result(r, T0)) is not None}
    bars = {s: Bar(p, p, p, p, 1e15) for s, p in tick.prices.items()}
    return process_bar(tick.book, bars, pending, T0 + HOUR, tick.rules, FillTerms.of(tick.settings), "prop")


@settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ticks())
def test_the_book_stays_within_its_limits_and_every_reduction_is_recorded(tick: Tick) -> None:
    results = _risk_node(tick)
    out = _fill(tick, results)
    risk = tick.settings.risk
    before, after = tick.book, out.state
    equity_before, equity_after = before.equity(tick.prices), out.equity
    gross_before = sum(p.amount * tick.prices[s] for s, p in before.positions.items()) / equity_before
    gross_after = sum(p.amount * tick.prices[s] for s, p in after.positions.items()) / equity_after
    bought = {f.symbol for f in out.fills if f.side == "buy"}

    assert (
        gross_after
        <= (risk.max_gross_exposure if bought else max(risk.max_gross_exposure, gross_before)) + TOL
    )
    cash_floor = (
        risk.min_cash_fraction if bought else min(risk.min_cash_fraction, before.cash / equity_before)
    )
    assert after.cash >= cash_floor * equity_after - TOL * equity_after
    for symbol in bought:
        position, price = after.positions[symbol], tick.prices[symbol]
        assert position.amount * price <= risk.max_position_exposure * equity_before * (1 + TOL)
        assert position.stop_loss is not None
        default = default_levels(price, tick.atrs[symbol], risk)
        stop = min(position.stop_loss, default[0]) if default else position.stop_loss
        trade = TradeCosts.of(tick.rules[symbol].taker_fee, tick.settings.broker.slippage_bps)
        loss = position.amount * (price * trade.buy - stop * trade.sell)
        assert loss <= risk.risk_per_trade * equity_before * (1 + TOL), (symbol, loss / equity_before)
    _check_recorded(tick, results, out)


def _check_recorded(tick: Tick, results: dict[str, RiskResult], out: BarOutcome) -> None:
    for symbol, r in results.items():
        proposal = tick.proposals[symbol]
        if r.rejected:
            assert r.events, f"{symbol}: refused without a reason"
        elif proposal.action is Action.BUY and r.changes and r.target_exposure < proposal.target_exposure:
            assert {e.kind for e in r.events} & SHRINKS, f"{symbol}: shrunk without a reason {r.events}"
    cuts = [e for e in out.events if e.kind == PORTFOLIO_ROOM]
    assert not cuts, f"at the decision prices the targets fit the book already: {cuts}"
    filled = {f.client_order_id: f.amount for f in out.fills}
    noted = {e.symbol for e in out.events}
    for order in out.orders:
        if order.side == "buy" and order.leg == "target":
            short = order.amount - filled.get(order.client_order_id, 0.0)
            if short > tick.rules[order.symbol].amount_step + 1e-9 * order.amount:
                assert order.symbol in noted, f"{order.symbol}: the broker cut a buy without an event"
