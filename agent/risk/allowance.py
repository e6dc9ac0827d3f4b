"""What may be proposed for a symbol at the close of bar t, computed before any model is asked.

Contracts:
- Pure: the same inputs give the same `Allowance`. Inputs: the symbol's `inputs.Market` (symbol, bar, price,
  ATR, exchange rules, trade costs), the book (`PortfolioState` and every symbol's mark, `market.price` being
  the symbol's own), the `risk` section of the settings (nothing else of them) and whether the kill switch
  is on (`breakers.kill_switch_active`, read by the caller).
- `max_exposure` (fraction of equity to hold in the symbol) is the smallest of these caps, recorded in
  `Allowance.caps` with the binding one named in `Allowance.binding`:
  `max_position_exposure`; `max_gross_exposure`: the current exposure plus the largest buy after which the
  whole book's gross exposure is at most the cap, and `cash`: ... after which cash is at least
  `min_cash_fraction` of equity, both once the fee and slippage are paid (`book.room`; this symbol alone:
  the other symbols' proposals of the same tick share the room later, in `allocation`); `vol_target`:
  `sizing.stop_risk_exposure` with the default ATR stop (`exits.default_levels`), costs included: the size
  whose stop-out loses `risk_per_trade` of equity (0 while ATR is warming up); when several caps tie,
  `binding` names them all, joined by '+'.
  It is 0 when the kill switch is on, the daily-loss limit or the drawdown breaker has tripped, or the symbol
  is cooling down after a stop-out (`breakers.entry_blocks`); each breaker is a `ClampEvent`.
- Actions: HOLD always; BUY when the room above the current exposure is worth at least one minimum order;
  SELL and CLOSE when a position is held. When BUY is left out, an event says why.
- Bad market data (non-finite or non-positive price, a held symbol without a finite mark, equity <= 0)
  allows HOLD only, recorded as `bad_market_data`.
- `llm_needed` is False when HOLD is the only action: the caller then asks no model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from agent.llm.schema import Action
from agent.portfolio import PortfolioState
from agent.risk import breakers
from agent.risk.book import room
from agent.risk.exits import default_levels
from agent.risk.models import BAD_MARKET_DATA, DUST, EXPOSURE_CAP, NO_VOLATILITY, Allowance, ClampEvent
from agent.risk.sizing import stop_risk_exposure

if TYPE_CHECKING:
    from agent.config import RiskSettings
    from agent.risk.inputs import Market


def allowance(
    market: Market,
    portfolio: PortfolioState,
    marks: Mapping[str, float],
    risk: RiskSettings,
    kill_switch: bool,
) -> Allowance:
    """The allowed actions and the maximum exposure for `market.symbol` at `market.bar_ts` (see the module
    contract)."""
    symbol, bar_ts, price, atr_value, rules = (
        market.symbol,
        market.bar_ts,
        market.price,
        market.atr,
        market.rules,
    )
    problem = _market_data_problem(symbol, price, portfolio, marks)
    if problem:
        event = ClampEvent(BAD_MARKET_DATA, "actions", None, "hold", problem)
        return Allowance(symbol, bar_ts, (Action.HOLD,), 0.0, 0.0, math.nan, {}, BAD_MARKET_DATA, (event,))
    equity = portfolio.equity(dict(marks))
    current = portfolio.exposure(symbol, dict(marks))
    caps = _caps(portfolio, marks, equity, current, market, risk)
    lowest = min(caps.values())
    binding = "+".join(name for name, cap in caps.items() if cap == lowest)
    max_exposure = min(max(lowest, 0.0), 1.0)
    events: list[ClampEvent] = []
    for breach in breakers.entry_blocks(portfolio, symbol, equity, bar_ts, risk, kill_switch):
        events.append(ClampEvent(breach.kind, "max_exposure", max_exposure, 0.0, breach.detail))
    if events:
        binding, max_exposure = events[0].kind, 0.0
    actions = {Action.HOLD}
    held = symbol in portfolio.positions and portfolio.positions[symbol].amount > 0
    if held:
        actions |= {Action.SELL, Action.CLOSE}
    room = (max_exposure - current) * equity
    smallest = max(rules.min_notional, rules.min_amount * price, rules.amount_step * price)
    if room > 0 and room >= smallest:
        actions.add(Action.BUY)
    elif not events:
        events.append(_no_buy_event(binding, max_exposure, current, room, smallest, atr_value))
    ordered = tuple(a for a in Action if a in actions)
    return Allowance(symbol, bar_ts, ordered, max_exposure, current, equity, caps, binding, tuple(events))


def _market_data_problem(
    symbol: str, price: float, portfolio: PortfolioState, marks: Mapping[str, float]
) -> str:
    """Why the price or the marks cannot be used, or '' when they can."""
    if not math.isfinite(price) or price <= 0:
        return f"no usable price for {symbol}: {price!r}"
    for held in portfolio.positions:
        mark = marks.get(held)
        if mark is None or not math.isfinite(mark) or mark <= 0:
            return f"no usable mark for the held position {held}: {mark!r}"
    equity = portfolio.equity(dict(marks))
    if not math.isfinite(equity) or equity <= 0:
        return f"equity {equity!r} is not positive"
    return ""


def _caps(
    portfolio: PortfolioState,
    marks: Mapping[str, float],
    equity: float,
    current: float,
    market: Market,
    risk: RiskSettings,
) -> dict[str, float]:
    """Each exposure cap by name."""
    held = sum(p.value(marks[s]) for s, p in portfolio.positions.items()) / equity
    costs = market.costs
    cash = portfolio.cash / equity
    fits = room(cash, held, 1.0, costs.buy, risk.max_gross_exposure, risk.min_cash_fraction)
    default = default_levels(market.price, market.atr, risk)
    vol = 0.0
    if default is not None:
        vol = float(stop_risk_exposure(market.price, default[0], risk.risk_per_trade, costs.buy, costs.sell))
    return {
        "max_position_exposure": risk.max_position_exposure,
        "max_gross_exposure": current + fits.gross,
        "cash": current + fits.cash,
        "vol_target": vol,
    }


def _no_buy_event(
    binding: str, max_exposure: float, current: float, room: float, smallest: float, atr_value: float
) -> ClampEvent:
    """Why BUY is not among the allowed actions."""
    if "vol_target" in binding and not (math.isfinite(atr_value) and atr_value > 0):
        return ClampEvent(NO_VOLATILITY, "actions", "buy", None, f"ATR is not available ({atr_value!r})")
    if room > 0:
        return ClampEvent(
            DUST,
            "actions",
            "buy",
            None,
            f"room to buy {room:.2f} is below the minimum order {smallest:.2f}",
        )
    return ClampEvent(
        EXPOSURE_CAP,
        "actions",
        "buy",
        None,
        f"no room to buy: max exposure {max_exposure:.4f} (binding: {binding}) <= current {current:.4f}",
    )
