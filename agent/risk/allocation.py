"""Allocation: the tick's per-symbol results shaped so that the whole book keeps `max_gross_exposure` and
`min_cash_fraction` once every target is filled.

Each symbol's allowance counts the room left by the positions held, not by the other symbols' proposals of
the same tick, so two entries in one bar could each take all of it. `allocate` takes every `RiskResult` of
the tick (after `limits.apply_limits`) and shares the room.

Contracts (pure; same inputs, same results):
- The book is valued at `marks` (the prices the targets were decided at), in fractions of its equity.
  Decreases (changing results whose target is below the current exposure) are counted as sold first, at
  their costs, as the broker fills them at the next open: the cash they free is room for the increases.
- Increases (changing results whose target is above the current exposure) are scaled pro rata: each one's
  increase is multiplied by the same factor k, the largest in [0, 1] for which the book after all fills,
  fee and slippage paid (`book.room`), has gross exposure <= `max_gross_exposure` and cash >=
  `min_cash_fraction` × equity. k >= 1 − `book.TOLERANCE` counts as 1 (no change): the book may overshoot
  a limit by that relative amount, not more.
- Each scaled increase gets a `portfolio_room` event (before/after target, k, the binding limit). An
  increase scaled to nothing, or whose scaled order is dust at the exchange's precision and minimums, is
  refused instead (HOLD at the current exposure, the position's exit plan kept, `rejected=True`, the
  `portfolio_room` event, plus `dust` for the latter). Room that a refusal frees is not handed to others.
- Everything else (HOLDs, rejections, decreases, and a rule strategy's results: sized by its plan as in
  the backtest engine, the book's limits held at the fill) is returned unchanged. The per-position cap and
  the stop risk are per-symbol limits already applied; scaling an increase down keeps them.
- Symbols without a result (skipped this tick) still count through the positions they hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from agent.llm.schema import Action
from agent.portfolio import PortfolioState
from agent.risk import models as m
from agent.risk.book import TOLERANCE, TradeCosts, room
from agent.risk.limits import dust_reason
from agent.risk.models import ClampEvent, RiskResult

if TYPE_CHECKING:
    from agent.market.exchange import MarketRules


def allocate(
    results: Mapping[str, RiskResult],
    portfolio: PortfolioState,
    marks: Mapping[str, float],
    costs: Mapping[str, TradeCosts],
    rules: Mapping[str, MarketRules],
    *,
    max_gross_exposure: float,
    min_cash_fraction: float,
) -> dict[str, RiskResult]:
    """The tick's results with the increases scaled to fit the book (see the module contract)."""
    out = dict(results)
    ups = {
        s: r
        for s, r in results.items()
        if r.changes and r.target_exposure > r.current_exposure and r.source != "rule"
    }
    if not ups:
        return out
    equity = _equity(portfolio, marks)
    if equity is None:
        why = "the book cannot be valued (a held symbol has no usable mark)"
        for symbol, r in ups.items():
            out[symbol] = _refused(r, portfolio, why)
        return out
    downs = [r for r in results.values() if r.changes and r.target_exposure < r.current_exposure]
    cash = portfolio.cash / equity + sum(
        (r.current_exposure - r.target_exposure) * costs[r.symbol].sell for r in downs
    )
    held = sum(p.amount * marks[s] for s, p in portfolio.positions.items()) / equity
    held -= sum(r.current_exposure - r.target_exposure for r in downs)
    wanted = sum(r.target_exposure - r.current_exposure for r in ups.values())
    paid = sum((r.target_exposure - r.current_exposure) * costs[s].buy for s, r in ups.items())
    fits = room(cash, held, wanted, paid, max_gross_exposure, min_cash_fraction)
    k = min(fits.limit, 1.0)
    if k >= 1.0 - TOLERANCE:
        return out
    why = (
        f"{len(ups)} increase(s) this tick want {wanted:.4f} of equity; the book has room for "
        f"{k * wanted:.4f} (binding: {fits.binding}): each increase scaled by {k:.4f}"
    )
    for symbol, r in ups.items():
        out[symbol] = _scaled(r, k, why, portfolio, equity, marks[symbol], rules[symbol])
    return out


def _equity(portfolio: PortfolioState, marks: Mapping[str, float]) -> float | None:
    """Equity at `marks`, or None when a held symbol has no usable mark or equity is not positive."""
    for symbol in portfolio.positions:
        mark = marks.get(symbol)
        if mark is None or not math.isfinite(mark) or mark <= 0:
            return None
    equity = portfolio.equity(dict(marks))
    return equity if math.isfinite(equity) and equity > 0 else None


def _scaled(
    r: RiskResult,
    k: float,
    why: str,
    portfolio: PortfolioState,
    equity: float,
    price: float,
    rules: MarketRules,
) -> RiskResult:
    """`r` with its increase scaled by `k`, or refused when nothing or only dust is left."""
    target = r.current_exposure + k * (r.target_exposure - r.current_exposure)
    if target <= r.current_exposure:
        return _refused(r, portfolio, f"{why}; nothing is left")
    event = ClampEvent(m.PORTFOLIO_ROOM, "target_exposure", r.target_exposure, target, why)
    pos = portfolio.positions.get(r.symbol)
    dust = dust_reason(target, equity, pos.amount if pos else 0.0, price, rules)
    if dust:
        dusted = ClampEvent(m.DUST, "target_exposure", target, "hold", dust)
        return _hold(r, portfolio, (event, dusted))
    return replace(r, target_exposure=target, events=(*r.events, event))


def _refused(r: RiskResult, portfolio: PortfolioState, why: str) -> RiskResult:
    event = ClampEvent(m.PORTFOLIO_ROOM, "target_exposure", r.target_exposure, "hold", why)
    return _hold(r, portfolio, (event,))


def _hold(r: RiskResult, portfolio: PortfolioState, events: tuple[ClampEvent, ...]) -> RiskResult:
    """`r` refused: HOLD at the current exposure with the position's exit plan."""
    pos = portfolio.positions.get(r.symbol)
    plan = (pos.stop_loss, pos.take_profit) if pos else (None, None)
    return replace(
        r,
        action=Action.HOLD,
        target_exposure=r.current_exposure,
        stop_loss=plan[0],
        take_profit=plan[1],
        rejected=True,
        events=(*r.events, *events),
    )
