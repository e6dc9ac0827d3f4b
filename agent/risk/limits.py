"""Limits: turn a proposal (the model's or a rule's `TradeDecision`) into a safe target, recording changes.

Contracts (pure; same inputs, same `RiskResult`):
- Inputs: `apply_limits(proposal, allowance, market, portfolio, risk, symbols)`: the `inputs.Proposal`
  (decision, source, prompt alias and price scale, a rule's trailing stop), the symbol's `Allowance`, its
  `inputs.Market` (price = the close of bar t, ATR, exchange rules, trade costs), the book, the `risk`
  section of the settings and the configured symbols; nothing else of the settings is read.
- Rejections (the result is a HOLD at the current exposure, `rejected=True`, one event naming the rule):
  a symbol other than the one asked (or its prompt alias) or not configured (`unknown_symbol`); NaN,
  infinity or a non-number in any numeric field (`non_finite`); values outside the schema's ranges
  (`out_of_range`); an unusable price (`bad_market_data`); an action the allowance does not allow
  (`action_not_allowed`, or `nothing_to_sell` for SELL/CLOSE without a position); confidence below
  `min_confidence` (`low_confidence`); BUY to a target not above the current exposure or SELL to one not
  below it (`inconsistent_action`); an entry needing an ATR default while ATR is unusable (`no_volatility`);
  an order that would be dust at the exchange's precision and minimums (`dust`).
- Clamps (the proposal goes ahead, changed, one event each): a BUY target above `allowance.max_exposure`
  is lowered to it (`exposure_cap`, the detail names the binding cap, e.g. cash); CLOSE always targets 0
  (`close_target`); an entry's missing or unsound stop-loss / take-profit is replaced by the ATR default
  (`agent.risk.exits`); an increase whose stop-out would lose more than `risk_per_trade` of equity is
  shrunk to the size that loses exactly that (`stop_risk`, refused when the position already risks it).
  The stop sized on is the wider (lower) of the position's plan (the repaired proposal of an entry, the
  held plan of an add) and the default ATR stop; the loss counts the whole target position bought at `price`
  and sold at the stop, fee and slippage included (`sizing.stop_risk_exposure`). Not bounded: a gap through
  the stop, and a next open far from `price`.
- Several symbols in one tick: `apply_limits` sees one symbol; `allocation.allocate` then shares the
  book's gross and cash room between the tick's increases.
- HOLD keeps the current exposure and exit plan: no order, no event.
- Entries (from flat) carry the proposal's exit plan, repaired as above; adds keep the position's plan
  (as the broker does; a differing proposed level is recorded as `exit_plan_kept`, and a position without
  a complete plan cannot be added to: `no_exit_plan`); reductions keep the position's plan.
- Text fields are never interpreted: instructions in a rationale change nothing.
- Rule strategies enter through `rule_decision` (their target wrapped as a `TradeDecision`, source "rule"),
  which emits HOLD when the rule's target did not change: orders only on a target change, as in the
  backtest engine. A rule's decision (source "rule") is checked by `rule_limits` instead of the clamps
  above: it is sized by its strategy's plan and exits on its own plan, exactly as the compiled engine runs
  it; only the breakers refuse its increases. `no_call_decision` is the HOLD recorded when the allowance
  leaves nothing to ask.
- With leakage control, the proposal carries the prompt's `alias` and `price_scale` (real price = prompt
  price × scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from agent.execution import costs
from agent.llm.schema import INVALIDATION_MAX, RATIONALE_MAX, Action, TradeDecision, hold
from agent.portfolio import PortfolioState
from agent.risk import models as m
from agent.risk.exits import default_levels, entry_plan
from agent.risk.models import Allowance, ClampEvent, DecisionSource, RiskResult
from agent.risk.sizing import stop_risk_exposure

if TYPE_CHECKING:
    from agent.config import RiskSettings
    from agent.market.exchange import MarketRules
    from agent.risk.book import TradeCosts
    from agent.risk.inputs import Market, Proposal


class Rejection(NamedTuple):
    """Why a proposal is refused: the rule, the field, its value and one sentence."""

    kind: str
    field: str
    before: Any
    detail: str


def apply_limits(
    proposal: Proposal,
    allowance: Allowance,
    market: Market,
    portfolio: PortfolioState,
    risk: RiskSettings,
    symbols: Sequence[str],
) -> RiskResult:
    """Check and clamp `proposal` for `market.symbol` at `market.price` (the close of bar t); see the module
    contract."""
    if proposal.source is DecisionSource.RULE:
        return rule_limits(proposal, allowance, market, portfolio, symbols)
    decision, source = proposal.decision, proposal.source
    symbol, price, atr_value = market.symbol, market.price, market.atr
    pos = portfolio.positions.get(symbol)
    current = allowance.current_exposure if math.isfinite(allowance.current_exposure) else 0.0
    keep = (pos.stop_loss, pos.take_profit) if pos else (None, None)
    invalidation = decision.invalidation[:INVALIDATION_MAX] if isinstance(decision.invalidation, str) else ""

    def result(
        action: Action,
        target: float,
        plan: tuple[float | None, float | None],
        events: list[ClampEvent],
        rejected: bool = False,
    ) -> RiskResult:
        return RiskResult(
            symbol,
            source,
            decision,
            action,
            target,
            current,
            plan[0],
            plan[1],
            invalidation,
            rejected,
            tuple(events),
        )

    def reject(problem: Rejection, events: tuple[ClampEvent, ...] = ()) -> RiskResult:
        kind, field, before, detail = problem
        event = ClampEvent(kind, field, _shown(before), "hold", detail)
        return result(Action.HOLD, current, keep, [*events, event], True)

    problem = _screen_fields(decision, allowance, market, symbols, proposal.alias)
    problem = problem or _screen_action(decision, allowance, symbol, pos is not None, risk.min_confidence)
    if problem:
        return reject(problem)
    action = Action(decision.action)
    if action is Action.HOLD:
        return result(Action.HOLD, current, keep, [])
    sized = _target(action, float(decision.target_exposure), current, allowance)
    if isinstance(sized, Rejection):
        return reject(sized)
    target, events = sized
    plan: tuple[float | None, float | None] = keep
    if target > current:
        scale = proposal.price_scale
        scaled = (_scaled(decision.stop_loss, scale), _scaled(decision.take_profit, scale))
        planned = _increase_plan(scaled, keep if pos else None, price, atr_value, risk)
        if isinstance(planned, Rejection):
            return reject(planned, tuple(events))
        plan, events = planned[0], events + planned[1]
        at_risk = _stop_sized(target, current, plan[0], price, atr_value, risk, market.costs)
        if isinstance(at_risk, Rejection):
            return reject(at_risk, tuple(events))
        target, events = at_risk[0], events + at_risk[1]
    dust = dust_reason(target, allowance.equity, pos.amount if pos else 0.0, price, market.rules)
    if dust:
        return reject(Rejection(m.DUST, "target_exposure", target, dust), tuple(events))
    return result(action, target, plan, events)


def _increase_plan(
    proposed: tuple[float | None, float | None],
    held: tuple[float | None, float | None] | None,
    price: float,
    atr_value: float,
    risk: RiskSettings,
) -> tuple[tuple[float, float], list[ClampEvent]] | Rejection:
    """The exit plan of an increase: an entry's repaired proposal, or the held position's plan (an add
    keeps it, as the broker does), with events; or why there is none."""
    if held is None:
        entry = entry_plan(proposed[0], proposed[1], price, atr_value, risk)
        if entry is None:
            why = f"an entry needs a stop from ATR, which is unusable ({atr_value!r})"
            return Rejection(m.NO_VOLATILITY, "stop_loss", proposed[0], why)
        return (entry[0], entry[1]), entry[2]
    if held[0] is None or held[1] is None:
        why = "cannot add to a position without a full exit plan"
        return Rejection(m.NO_EXIT_PLAN, "stop_loss", held[0], why)
    events = [
        ClampEvent(m.EXIT_PLAN_KEPT, name, value, kept, f"an add keeps the position's {name}")
        for name, value, kept in (("stop_loss", proposed[0], held[0]), ("take_profit", proposed[1], held[1]))
        if value is not None and value != kept
    ]
    return (held[0], held[1]), events


def _stop_sized(
    target: float,
    current: float,
    stop: float | None,
    price: float,
    atr_value: float,
    risk: RiskSettings,
    trade: TradeCosts,
) -> tuple[float, list[ClampEvent]] | Rejection:
    """An increase to `target` shrunk so that the loss at the wider of `stop` and the default ATR stop is at
    most `risk_per_trade` of equity, with its event; or why no increase is left."""
    default = default_levels(price, atr_value, risk)
    stops = [s for s in (stop, default[0] if default else None) if s is not None]
    if not stops:
        return target, []
    wider = min(stops)
    cap = float(stop_risk_exposure(price, wider, risk.risk_per_trade, trade.buy, trade.sell))
    if target <= cap:
        return target, []
    detail = (
        f"a stop-out at {wider:.10g} ({1.0 - wider / price:.2%} below the price) would lose more than "
        f"risk_per_trade {risk.risk_per_trade:.2%} of equity above exposure {cap:.4f}"
    )
    if cap <= current:
        return Rejection(m.STOP_RISK, "target_exposure", target, f"{detail}, already held ({current:.4f})")
    return cap, [ClampEvent(m.STOP_RISK, "target_exposure", target, cap, detail)]


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else value * scale


def _target(
    action: Action, target: float, current: float, allowance: Allowance
) -> tuple[float, list[ClampEvent]] | Rejection:
    """The target a BUY, SELL or CLOSE moves to, with its clamps, or why it is refused."""
    if action is Action.CLOSE:
        if target == 0.0:
            return 0.0, []
        return 0.0, [ClampEvent(m.CLOSE_TARGET, "target_exposure", target, 0.0, "close means target 0")]
    if action is Action.SELL:
        if target >= current:
            return Rejection(
                m.INCONSISTENT_ACTION,
                "target_exposure",
                target,
                f"sell to {target:.4f} is not below the current exposure {current:.4f}",
            )
        return target, []
    if target <= current:
        return Rejection(
            m.INCONSISTENT_ACTION,
            "target_exposure",
            target,
            f"buy to {target:.4f} is not above the current exposure {current:.4f}",
        )
    if target <= allowance.max_exposure:
        return target, []
    cap, binding = allowance.max_exposure, allowance.binding
    if cap <= current:
        return Rejection(
            m.EXPOSURE_CAP,
            "target_exposure",
            target,
            f"no room above the current exposure {current:.4f} (binding: {binding})",
        )
    detail = f"above the allowed {cap:.4f} (binding: {binding})"
    return cap, [ClampEvent(m.EXPOSURE_CAP, "target_exposure", target, cap, detail)]


def _screen_fields(
    decision: TradeDecision,
    allowance: Allowance,
    market: Market,
    symbols: Sequence[str],
    alias: str | None,
) -> Rejection | None:
    """Symbol, numbers and ranges: the first reason to reject outright, or None."""
    symbol, price = market.symbol, market.price
    named = decision.symbol if isinstance(decision.symbol, str) else None
    if named is None or named not in {symbol, alias} - {None} or symbol not in symbols:
        why = f"decision for {decision.symbol!r}, asked about {symbol} (configured: {list(symbols)})"
        return Rejection(m.UNKNOWN_SYMBOL, "symbol", decision.symbol, why)
    if allowance.symbol != symbol:
        why = f"allowance for {allowance.symbol}, not {symbol}"
        return Rejection(m.UNKNOWN_SYMBOL, "symbol", allowance.symbol, why)
    for name in ("target_exposure", "confidence", "stop_loss", "take_profit"):
        value = getattr(decision, name)
        if value is None and name in ("stop_loss", "take_profit"):
            continue
        if not _is_number(value) or not math.isfinite(value):
            return Rejection(m.NON_FINITE, name, value, f"{name} is not a finite number: {value!r}")
        low, high = (0.0, 1.0) if name in ("target_exposure", "confidence") else (0.0, math.inf)
        if not low <= value <= high or (high == math.inf and value == 0):
            return Rejection(m.OUT_OF_RANGE, name, value, f"{name} {value!r} is outside its range")
    if not (_is_number(price) and math.isfinite(price) and price > 0):
        return Rejection(m.BAD_MARKET_DATA, "price", price, f"price {price!r} for {symbol} is unusable")
    return None


def _screen_action(
    decision: TradeDecision, allowance: Allowance, symbol: str, held: bool, minimum: float
) -> Rejection | None:
    """Whether the action may be taken now: the first reason to reject, or None."""
    action = _known_action(decision, symbol, held)
    if isinstance(action, Rejection):
        return action
    if action not in allowance.actions:
        why = "; ".join(e.detail for e in allowance.events) or f"binding: {allowance.binding}"
        allowed = "/".join(a.value for a in allowance.actions)
        why = f"{action.value} not allowed ({allowed}; {why})"
        return Rejection(m.ACTION_NOT_ALLOWED, "action", action.value, why)
    if action is not Action.HOLD and decision.confidence < minimum:
        return Rejection(
            m.LOW_CONFIDENCE,
            "confidence",
            decision.confidence,
            f"confidence {decision.confidence:g} is below min_confidence {minimum:g}",
        )
    return None


def dust_reason(target: float, equity: float, held: float, price: float, rules: MarketRules) -> str:
    """Why the order to `target` would be dust, or '' when it can fill."""
    delta = costs.order_for_target(target, equity, held, price)
    amount = costs.floor_to_step(abs(delta), rules.amount_step)
    if amount <= 0 or amount < rules.min_amount or amount * price < rules.min_notional:
        return (
            f"order of {abs(delta):.10g} ({abs(delta) * price:.4f} quote) is below the exchange minimum "
            f"(step {rules.amount_step:g}, min amount {rules.min_amount:g}, "
            f"min notional {rules.min_notional:g})"
        )
    return ""


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: Any) -> float | str | None:
    """A value as an event stores it: finite numbers as floats, anything else (NaN too) as text."""
    if value is None or isinstance(value, str):
        return value
    if _is_number(value) and math.isfinite(value):
        return float(value)
    return str(value) if _is_number(value) else repr(value)


def rule_decision(
    symbol: str,
    target: float,
    previous_target: float | None,
    current_exposure: float,
    strategy: str,
    stop_loss: float | None = None,
    take_profit: float | None = None,
) -> TradeDecision:
    """A rule strategy's target as a decision for `apply_limits` (source "rule"); HOLD when unchanged.

    `previous_target` is the rule's target at the run's previous tick, None on its first tick: the target is
    then compared with the current exposure only, so a rule already long when a run starts enters at once,
    as the backtest engine does (its targets start from 0)."""
    if not isinstance(target, int | float) or not math.isfinite(target):
        return hold(symbol, f"rule {strategy}: no signal ({target!r})")
    if previous_target is not None and target == previous_target:
        return hold(symbol, f"rule {strategy}: target unchanged at {target:g}")
    if target > current_exposure:
        action = Action.BUY
    elif target < current_exposure:
        action = Action.CLOSE if target == 0 else Action.SELL
    else:
        return hold(symbol, f"rule {strategy}: already at {target:g}")
    return TradeDecision.model_construct(
        symbol=symbol,
        action=action,
        target_exposure=float(target),
        confidence=1.0,
        stop_loss=stop_loss,
        take_profit=take_profit,
        invalidation="",
        rationale=f"rule {strategy}: target {previous_target!r} -> {target:g}"[:RATIONALE_MAX],
    )


def rule_limits(
    proposal: Proposal,
    allowance: Allowance,
    market: Market,
    portfolio: PortfolioState,
    symbols: Sequence[str],
) -> RiskResult:
    """A rule strategy's decision (`rule_decision`) checked exactly as the backtest engine runs the rule.

    Its target is already sized by the strategy's plan (`agent.backtest.plan.rule_plan`: fraction, per-symbol
    and gross caps) and the book's limits hold at the fill (`agent.execution.bar`), so no cap, stop-risk size,
    default exit or allocation applies. Refused (HOLD, `rejected=True`): bad fields or prices, an unknown
    action, a sale with nothing held, and an increase while a breaker, the kill switch or a cooldown blocks
    entries. An entry carries the rule's own exit plan (levels decided at this close and the trailing
    distance `proposal.trailing_stop`; none when the rule has none); adds and reductions keep the position's.
    The result's source is "rule" whatever `proposal.source` says.
    """
    decision, symbol = proposal.decision, market.symbol
    pos = portfolio.positions.get(symbol)
    current = allowance.current_exposure if math.isfinite(allowance.current_exposure) else 0.0
    kept = (pos.stop_loss, pos.take_profit, pos.trailing_stop) if pos else (None, None, None)

    def result(
        action: Action,
        target: float,
        plan: tuple[float | None, ...],
        events: tuple[ClampEvent, ...] = (),
        rejected: bool = False,
    ) -> RiskResult:
        return RiskResult(
            symbol,
            DecisionSource.RULE,
            decision,
            action,
            target,
            current,
            plan[0],
            plan[1],
            "",
            rejected,
            events,
            plan[2],
        )

    problem = _screen_fields(decision, allowance, market, symbols, None) or _rule_problem(
        decision, allowance, pos is not None, current
    )
    if problem is not None:
        kind, field, before, detail = problem
        event = ClampEvent(kind, field, _shown(before), "hold", detail)
        return result(Action.HOLD, current, kept, (event,), True)
    action = Action(decision.action)
    if action is Action.HOLD:
        return result(Action.HOLD, current, kept)
    target = 0.0 if action is Action.CLOSE else float(decision.target_exposure)
    entry = pos is None and target > current
    plan = (decision.stop_loss, decision.take_profit, proposal.trailing_stop) if entry else kept
    return result(action, target, plan)


def _known_action(decision: TradeDecision, symbol: str, held: bool) -> Action | Rejection:
    """The decision's action, or why it is refused: not an action at all, or a sale with nothing held."""
    try:
        action = Action(decision.action)
    except ValueError:
        why = f"unknown action {decision.action!r}"
        return Rejection(m.ACTION_NOT_ALLOWED, "action", decision.action, why)
    if action in (Action.SELL, Action.CLOSE) and not held:
        return Rejection(m.NOTHING_TO_SELL, "action", action.value, f"{action.value} with no {symbol} held")
    return action


def _rule_problem(
    decision: TradeDecision, allowance: Allowance, held: bool, current: float
) -> Rejection | None:
    """Why a rule's decision is refused (unknown action, a sale of nothing, a blocked increase), or None."""
    action = _known_action(decision, allowance.symbol, held)
    if isinstance(action, Rejection):
        return action
    blocked = allowance.entries_blocked or allowance.binding == m.BAD_MARKET_DATA
    if action is Action.BUY and float(decision.target_exposure) > current and blocked:
        why = "; ".join(e.detail for e in allowance.events) or f"binding: {allowance.binding}"
        return Rejection(m.ACTION_NOT_ALLOWED, "action", action.value, f"no increase now ({why})")
    return None


def no_call_decision(allowance: Allowance) -> TradeDecision:
    """The HOLD recorded (source "risk") when the allowance leaves HOLD as the only action."""
    why = "; ".join(f"{e.kind}: {e.detail}" for e in allowance.events) or f"binding: {allowance.binding}"
    return hold(allowance.symbol, f"risk: only HOLD is allowed ({why})")
