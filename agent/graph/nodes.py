"""The graph's nodes, built as closures over an `AgentRuntime`; each returns a partial state update.

    observe  point-in-time candles, marks and ATR per symbol; stale data is skipped with a reason
    settle   the paper broker settles bar t: pending targets at its open, exits inside it, marks at its close
    screen   the risk layer's allowance per symbol, computed before any model is asked
    analyse  prompts for the symbols with a real choice, sent to the LLM gateway concurrently; a tokenizer
             that gave way to the estimate is recorded once per run (risk event `tokenizer_fallback`)
    decide   the proposal per symbol: the model's (llm), the rule's (rule), the rule confirmed by the model
             (hybrid), or the configured fallback (`fallback`: rule or HOLD, with the reason) when the model
             gives no usable decision: unavailable, or its result abstained, whatever the `LLMFault`
    risk     `apply_limits` per symbol, then `allocate` shares the book's gross and cash room between the
             tick's increases: every clamp and rejection recorded
    execute  targets that change become pending orders for the next bar's open
    record   one ledger transaction for the whole tick, then the runtime's book is advanced

Only `analyse` (the gateway) and `record` (the ledger) do I/O; the rest are pure functions of the state.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from agent.asyncutil import run_sync
from agent.backtest.market import sizing_rules
from agent.backtest.plan import rule_plan
from agent.broker.models import Bar, FillTerms, PendingTarget
from agent.broker.paper import process_bar
from agent.errors import DataError, LLMUnavailable
from agent.graph import names
from agent.graph.mode import StrategyKind, StrategyMode
from agent.graph.runtime import AgentRuntime
from agent.graph.state import LLMStatus, Node, TickState
from agent.graph.stream import Prepared, ask_bar
from agent.ledger.writer import DecisionEntry, TickRecord, write_tick
from agent.llm.context import BudgetTooSmall, MarketContextBuilder
from agent.llm.faults import LLMFault
from agent.llm.protocol import ContextInput, PastDecision, Prompt
from agent.llm.schema import (
    RATIONALE_MAX,
    Action,
    Analysis,
    DecisionRequest,
    TradeDecision,
    hold,
)
from agent.market.candles import timeframe_ms
from agent.market.indicators import atr
from agent.market.source import ts_ms
from agent.risk.allocation import allocate
from agent.risk.allowance import allowance
from agent.risk.book import TradeCosts
from agent.risk.breakers import kill_switch_active
from agent.risk.inputs import Market, Proposal
from agent.risk.limits import apply_limits, no_call_decision, rule_decision
from agent.risk.models import Allowance, DecisionSource, RiskResult

ATR_WINDOW = 500
"""Bars of history used to compute ATR (Wilder smoothing converges well within this)."""


def make_nodes(rt: AgentRuntime) -> dict[str, Node]:
    """All nodes of the tick graph, bound to `rt`."""
    return {
        names.OBSERVE: _observe(rt),
        names.SETTLE: _settle(rt),
        names.SCREEN: _screen(rt),
        names.ANALYSE: _analyse(rt),
        names.DECIDE: _decide(rt),
        names.RISK: _risk(rt),
        names.EXECUTE: _execute(rt),
        names.RECORD: _record(rt),
    }


# --------------------------------------------------------------------------------------------- observe


def _observe(rt: AgentRuntime) -> Node:
    bar_ms = timeframe_ms(rt.settings.timeframe)

    def observe(state: TickState) -> TickState:
        t = state["bar_ts"]
        marks: dict[str, float] = {}
        atrs: dict[str, float] = {}
        bars: dict[str, Bar] = {}
        skipped: dict[str, str] = {}
        for symbol in state["symbols"]:
            w = rt.source.window(symbol, t, ATR_WINDOW)
            if not len(w):
                skipped[symbol] = "no data at or before this bar"
                continue
            last = int(w.open_ms[-1])
            if last != t:
                age = (t - last) // bar_ms
                skipped[symbol] = f"stale data: no bar at t, the last one is {age} bar(s) older"
                continue
            o, h, lo, c, v = (float(x[-1]) for x in (w.open, w.high, w.low, w.close, w.volume))
            bars[symbol] = Bar(o, h, lo, c, v)
            marks[symbol] = c
            value = atr(w.high, w.low, w.close, rt.settings.risk.atr_period)[-1]
            atrs[symbol] = float(value) if np.isfinite(value) else math.nan
        return {
            "marks": marks,
            "atr": atrs,
            "skipped": skipped,
            "bars": bars,
            "portfolio": rt.portfolio,
            "pending": dict(rt.pending),
            "outcome": None,
            "settle_error": None,
            "strategy": rt.strategy,
        }

    return observe


# ---------------------------------------------------------------------------------------------- settle


def _settle(rt: AgentRuntime) -> Node:
    terms = FillTerms.of(rt.settings)

    def settle(state: TickState) -> TickState:
        pending = state.get("pending", {})
        try:
            outcome = process_bar(
                state["portfolio"],
                state["bars"],
                pending,
                state["bar_ts"],
                rt.rules,
                terms,
                rt.run_id,
            )
        except DataError as e:
            # A symbol we hold has no usable bar: nothing is settled, and nothing is traded this tick.
            return {"skipped": {s: f"tick skipped: {e}" for s in state["symbols"]}, "settle_error": str(e)}
        return {"portfolio": outcome.state, "outcome": outcome, "pending": {}}

    return settle


# ---------------------------------------------------------------------------------------------- screen


def _screen(rt: AgentRuntime) -> Node:
    def screen(state: TickState) -> TickState:
        portfolio = state["portfolio"]
        controls = rt.factory if rt.operated else None  # the file still stops every run
        kill = kill_switch_active(rt.settings.risk.kill_switch_file, controls, rt.run_id)
        allowances: dict[str, Allowance] = {}
        for symbol in state["symbols"]:
            if symbol in state.get("skipped", {}):
                continue
            allowances[symbol] = allowance(
                _market(rt, state, symbol), portfolio, state["marks"], rt.settings.risk, kill
            )
        return {"allowances": allowances, "llm_status": LLMStatus.SKIPPED, "llm_reason": None}

    return screen


def _market(rt: AgentRuntime, state: TickState, symbol: str) -> Market:
    """What the risk layer reads about `symbol` at this tick's close: its mark, ATR, rules and fill costs."""
    rules = rt.rules[symbol]
    costs = TradeCosts.of_market(rules, rt.settings.broker)
    price = state["marks"].get(symbol, math.nan)
    return Market(symbol, state["bar_ts"], price, state["atr"].get(symbol, math.nan), rules, costs)


# --------------------------------------------------------------------------------------------- analyse


def _analyse(rt: AgentRuntime) -> Node:
    def analyse(state: TickState) -> TickState:
        if rt.gateway is None or rt.builder is None:
            return {"llm_status": LLMStatus.UNAVAILABLE, "llm_reason": None, "analyses": {}}
        t = state["bar_ts"]
        wanted = [s for s, a in state["allowances"].items() if a.llm_needed]
        try:
            if rt.stream is not None:  # stateless prompts, requested ahead (`agent.graph.stream`)
                analyses = rt.stream.answers(t, wanted)
            else:
                analyses = _ask_bar(rt, t, state, wanted)
        except LLMUnavailable as e:
            return {"llm_status": LLMStatus.UNAVAILABLE, "llm_reason": str(e), "analyses": {}}
        finally:
            _note_tokenizer_fallback(rt, t)
        asked = [a for a in analyses.values() if a.prompt_hash]
        rt.llm_calls += sum(not a.from_cache for a in asked)
        rt.cache_hits += sum(a.from_cache for a in asked)
        rt.tokens += sum((a.prompt_tokens or 0) + (a.completion_tokens or 0) for a in asked)
        rt.abstentions += sum(a.abstained for a in analyses.values())
        rt.latencies_ms.extend(a.latency_ms for a in asked if a.latency_ms is not None and not a.from_cache)
        rt.prompt_tokens += sum(a.prompt_tokens or 0 for a in asked)
        rt.cached_tokens += sum(a.cached_tokens or 0 for a in asked)
        if asked and all(a.fault is LLMFault.CIRCUIT_OPEN for a in asked):
            return {"llm_status": LLMStatus.UNAVAILABLE, "llm_reason": "circuit open", "analyses": analyses}
        return {"llm_status": LLMStatus.OK, "llm_reason": None, "analyses": analyses}

    return analyse


def _ask_bar(rt: AgentRuntime, t: int, state: TickState, wanted: list[str]) -> dict[str, Analysis]:
    """Bar t's answers: each request sent as soon as its prompt is built, and the next bar's market part
    prepared while they are on their way (`stream.ask_bar`); a gateway without a background loop (test
    fakes) is asked the whole bar at once."""
    submit = getattr(rt.gateway, "submit_many", None)
    if submit is None:
        return _ask(rt, [prepare(rt, s, t, state) for s in wanted])
    return ask_bar(wanted, lambda s: prepare(rt, s, t, state)[1], submit, lambda: _prepare_next(rt, t))


def _prepare_next(rt: AgentRuntime, t: int) -> None:
    """Build the market part of the next bar's prompts ahead (`MarketContextBuilder.warm`) when the run knows
    its next bar (`rt.next_bar`: an agent backtest; a daemon's next bar has not closed yet)."""
    following = rt.next_bar(t) if rt.next_bar is not None else None
    warm = getattr(rt.builder, "warm", None)
    if following is None or warm is None:
        return
    for symbol in rt.symbols:
        warm(symbol, rt.source.history(symbol, following))


def _ask(rt: AgentRuntime, prepared: list[tuple[str, Prepared]]) -> dict[str, Analysis]:
    """Send the prepared requests of one bar through the gateway (concurrently) and map the answers back;
    a prompt that could not be built is its abstained answer."""
    assert rt.gateway is not None
    out = {s: p for s, p in prepared if isinstance(p, Analysis)}
    asked = [(s, p) for s, p in prepared if not isinstance(p, Analysis)]
    requests = [p[0] for _, p in asked]
    sync = getattr(rt.gateway, "decide_many_sync", None)
    results = sync(requests) if sync else run_sync(rt.gateway.decide_many(requests))
    for (symbol, (_, price_scale, alias)), res in zip(asked, results, strict=True):
        out[symbol] = Analysis.of(res, price_scale, alias)  # by position: aliases may repeat
    return {s: out[s] for s, _ in prepared}


def context_input(rt: AgentRuntime, symbol: str, t: int, state: TickState | None) -> ContextInput:
    """What the prompt for `symbol` at bar t shows.

    Stateful (`llm.prompt_mode`, the default): the account, the positions, the allowance and the symbol's
    past decisions from `state`. Stateless (or `state` None): only the market up to t and the question, so it
    can be built for any bar ahead (`agent.graph.stream`); the risk layer then applies the allowance to the
    answer."""
    hist = rt.source.history(symbol, t)
    if state is None or rt.settings.llm.prompt_mode == "stateless":
        return ContextInput(symbol=symbol, candles=hist, portfolio=None, marks={})
    a = state["allowances"][symbol]
    return ContextInput(
        symbol=symbol,
        candles=hist,
        portfolio=state["portfolio"],
        marks=state["marks"],
        recent_decisions=_with_outcomes(rt.recent_for(symbol), hist),
        allowed_actions=a.actions,
        max_exposure=a.max_exposure,
    )


def prepare(rt: AgentRuntime, symbol: str, t: int, state: TickState | None) -> tuple[str, Prepared]:
    """The request for `symbol` at bar t (what `context_input` shows) with its prompt's mapping back, or,
    when the prompt cannot be built, the abstained answer (budget, or a tokenizer without a fallback)."""
    ctx = context_input(rt, symbol, t, state)
    try:
        request, prompt = _request(rt, ctx, t, rt.budget_tokens)
    except BudgetTooSmall as e:  # the current state alone outgrew the budget: abstain, recorded
        return symbol, _abstain(symbol, f"context budget too small: {e}", LLMFault.BUDGET)
    except LLMUnavailable as e:  # the prompt could not be counted: not asked, the fallback decides
        return symbol, _abstain(symbol, f"tokenizer failed: {e}", LLMFault.TOKENIZER)
    return symbol, (request, prompt.price_scale, prompt.alias)


def _note_tokenizer_fallback(rt: AgentRuntime, t: int) -> None:
    """Once per run: the tokenizer failed and the estimate took over (a `tokenizer_fallback` risk event)."""
    if not isinstance(rt.builder, MarketContextBuilder):
        return
    event = rt.builder.take_tokenizer_fallback()
    if event is None:
        return
    from sqlalchemy import select

    from agent.db.models import RiskEvent
    from agent.db.session import transaction

    with transaction(rt.factory) as session:
        kind = "tokenizer_fallback"
        seen = session.scalar(
            select(RiskEvent.id).where(RiskEvent.run_id == rt.run_id, RiskEvent.kind == kind).limit(1)
        )
        if seen is None:  # a resumed run whose tokenizer fails again is still one event
            detail = event.describe()
            session.add(RiskEvent(run_id=rt.run_id, bar_ts=t, symbol=None, kind=kind, detail=detail))


def _request(
    rt: AgentRuntime, ctx: ContextInput, t: int, budget: int | None
) -> tuple[DecisionRequest, Prompt]:
    """The gateway request for `ctx`; on a context-length error it can rebuild itself with half the budget."""
    assert rt.builder is not None
    prompt = rt.builder.build(ctx, budget)

    def shrink() -> DecisionRequest | None:
        smaller = (budget or prompt.estimated_tokens) // 2
        try:
            return _request(rt, ctx, t, smaller)[0]
        except BudgetTooSmall:
            return None  # the instructions and current state alone do not fit: give up (abstain)

    request = DecisionRequest(
        symbol=prompt.alias or ctx.symbol,
        messages=prompt.messages,
        prompt_hash=prompt.prompt_hash,
        allowed_actions=ctx.allowed_actions,
        max_exposure=ctx.max_exposure,
        run_id=rt.run_id,
        bar_ts=t,
        shrink=shrink,
        stored=prompt.stored,
    )
    return request, prompt


def _abstain(symbol: str, reason: str, fault: LLMFault) -> Analysis:
    """An abstained answer for a symbol the model was not asked about."""
    return Analysis(symbol, hold(symbol, reason), abstained=True, fault=fault, reason=reason)


def _index_ticks(index: pd.Index) -> tuple[np.ndarray, int]:
    """A candle frame's open times in the index's own unit (a view, not a converted copy of years of bars)
    and the nanoseconds per unit; `TypeError` for an index that is not of times (as `ts_ms`)."""
    if not isinstance(index, pd.DatetimeIndex):
        ts_ms(index)  # raises, with its message
    assert isinstance(index, pd.DatetimeIndex)
    return index.asi8, int(pd.Timedelta(1, unit=index.unit).value)


def _with_outcomes(recent: tuple[PastDecision, ...], hist: pd.DataFrame) -> tuple[PastDecision, ...]:
    """Past decisions with the return from their bar's close to the current close (known at t)."""
    if not recent:
        return ()
    times, per = _index_ticks(hist.index)
    closes = hist["close"].to_numpy()
    out = []
    for d in recent:
        key, off = divmod(d.bar_ts * 1_000_000, per)  # the bar's open time in the index's unit, if whole
        i = int(np.searchsorted(times, key)) if not off else len(times)
        realised = None
        if i < len(times) and times[i] == key and closes[i] > 0:
            realised = float(closes[-1] / closes[i] - 1.0)
        out.append(PastDecision(d.bar_ts, d.action, d.target_exposure, d.confidence, d.rationale, realised))
    return tuple(out)


# ---------------------------------------------------------------------------------------------- decide


def _decide(rt: AgentRuntime) -> Node:
    def decide(state: TickState) -> TickState:
        proposals: dict[str, Proposal] = {}
        plans = _rule_targets(rt, state) if rt.rule is not None else {}
        if rt.rule is not None and not StrategyMode.of(rt.strategy).asks_model:
            for symbol in state.get("allowances", {}):
                proposals[symbol] = _rule_proposal(rt, state, symbol, plans[symbol])
            return {"proposals": proposals, "rule_targets": {s: p.target for s, p in plans.items()}}
        rule_targets = {s: (p.target, p.previous) for s, p in plans.items()}
        for symbol, a in state.get("allowances", {}).items():
            decision, source = _proposal(rt, state, symbol, a.llm_needed, rule_targets)
            if not a.llm_needed:
                decision, source = no_call_decision(a), DecisionSource.RISK
            analysis = state.get("analyses", {}).get(symbol) if source is DecisionSource.LLM else None
            if analysis is not None:  # the model's prices and name are in its prompt's terms
                proposals[symbol] = Proposal(decision, source, analysis.alias, analysis.price_scale)
            else:
                proposals[symbol] = Proposal(decision, source)
        return {"proposals": proposals, "rule_targets": {s: v[0] for s, v in rule_targets.items()}}

    return decide


def _rule_targets(rt: AgentRuntime, state: TickState) -> dict[str, RuleStep]:
    """The rule strategy's step at bar t per symbol: its target and exit plan at t and its target at the run's
    previous tick (None on the first), from `rule_plan` on the symbols' history up to t (the backtest
    engine's computation, on the same bars)."""
    assert rt.rule is not None
    t = state["bar_ts"]
    frames = {s: h for s in state["symbols"] if not (h := rt.source.history(s, t)).empty}
    plan = rule_plan(frames, rt.rule, sizing_rules(rt.settings))
    times = ts_ms(plan.index)
    now = int(np.searchsorted(times, t, side="right")) - 1
    before = None if rt.last_bar is None else int(np.searchsorted(times, rt.last_bar, side="right")) - 1
    out = {}
    for j, symbol in enumerate(plan.symbols):
        if symbol not in state.get("allowances", {}):
            continue
        levels = plan.plan[:, now, j] if plan.plan is not None else (math.nan, math.nan, math.nan)
        previous = float(plan.targets[before, j]) if before is not None and before >= 0 else None
        out[symbol] = RuleStep(float(plan.targets[now, j]), previous, *(_finite(v) for v in levels))
    return out


def _rule_proposal(rt: AgentRuntime, state: TickState, symbol: str, step: RuleStep) -> Proposal:
    """A rule run's proposal: the rule's target as a decision (orders only when it changes, as in the
    backtest engine), with its exit plan; the risk layer checks it (`apply_limits`, source `RULE`)."""
    assert rt.rule is not None
    current = state["portfolio"].exposure(symbol, state["marks"])
    decision = rule_decision(
        symbol, step.target, step.previous, current, rt.rule.name, step.stop_loss, step.take_profit
    )
    return Proposal(decision, DecisionSource.RULE, trailing_stop=step.trailing_stop)


class RuleStep(NamedTuple):
    """A rule strategy at one bar for one symbol."""

    target: float
    previous: float | None
    stop_loss: float | None
    take_profit: float | None
    trailing_stop: float | None


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _proposal(
    rt: AgentRuntime,
    state: TickState,
    symbol: str,
    llm_needed: bool,
    rule_targets: dict[str, tuple[float, float | None]],
) -> tuple[TradeDecision, DecisionSource]:
    current = state["portfolio"].exposure(symbol, state["marks"])
    mode = StrategyMode.of(rt.strategy)
    status = LLMStatus(state.get("llm_status", LLMStatus.OK))
    analysis = state.get("analyses", {}).get(symbol)

    def rule(source: DecisionSource) -> tuple[TradeDecision, DecisionSource]:
        if rt.rule is None:
            return hold(symbol, f"{source}: no rule strategy configured"), source
        target, previous = rule_targets[symbol]
        return rule_decision(symbol, target, previous, current, rt.rule.name), source

    def fallback(why: str) -> tuple[TradeDecision, DecisionSource]:
        if rt.settings.fallback != "rule":
            return hold(symbol, f"fallback HOLD: {why}"), DecisionSource.FALLBACK
        decision, _ = rule(DecisionSource.FALLBACK)
        rationale = f"fallback ({why}): {decision.rationale}"[:RATIONALE_MAX]
        return decision.model_copy(update={"rationale": rationale}), DecisionSource.FALLBACK

    if not mode.asks_model:
        return rule(DecisionSource.RULE)
    if status is not LLMStatus.OK or analysis is None:
        if not llm_needed:
            return hold(symbol, "no choice to make"), DecisionSource.RISK
        return fallback(_llm_why(state))
    result = analysis
    proposal = rule(DecisionSource.HYBRID)[0] if mode.kind is StrategyKind.HYBRID else None
    if proposal is not None and proposal.action is Action.HOLD:
        return proposal, DecisionSource.HYBRID  # nothing for the model to confirm
    if result.abstained:  # no usable model decision (call, answer, tokenizer or budget): the fallback's turn
        return fallback(f"llm {result.fault or 'abstained'}: {result.reason}")
    if proposal is None:
        return result.decision, DecisionSource.LLM
    # hybrid: the rule proposes, the model confirms or vetoes
    if (proposal.action is Action.BUY) != (result.decision.action is Action.BUY):
        why = f"model says {result.decision.action.value}"
        return hold(symbol, f"hybrid: rule {proposal.action.value} vetoed ({why})"), DecisionSource.HYBRID
    return proposal, DecisionSource.HYBRID


def _llm_why(state: TickState) -> str:
    """Why the model gave nothing this tick, as the fallback's rationale says it (`llm unavailable: ...`)."""
    status = LLMStatus(state.get("llm_status", LLMStatus.UNAVAILABLE))
    reason = state.get("llm_reason")
    return f"llm {status.value}: {reason}" if reason else f"llm {status.value}"


# ------------------------------------------------------------------------------------------------ risk


def _risk(rt: AgentRuntime) -> Node:
    def risk(state: TickState) -> TickState:
        portfolio = state["portfolio"]
        results: dict[str, RiskResult] = {}
        markets: dict[str, Market] = {}
        for symbol, proposal in state.get("proposals", {}).items():
            market = _market(rt, state, symbol)
            markets[symbol] = market
            result = apply_limits(
                proposal,
                state["allowances"][symbol],
                market,
                portfolio,
                rt.settings.risk,
                rt.settings.symbols,
            )
            results[symbol] = result
        settings = rt.settings
        costs = {s: markets[s].costs for s in results}
        shared = allocate(
            results,
            portfolio,
            state["marks"],
            costs,
            rt.rules,
            max_gross_exposure=settings.risk.max_gross_exposure,
            min_cash_fraction=settings.risk.min_cash_fraction,
        )
        return {"final": dict(shared)}

    return risk


# --------------------------------------------------------------------------------------------- execute


def _execute(rt: AgentRuntime) -> Node:
    def execute(state: TickState) -> TickState:
        pending: dict[str, PendingTarget] = {}
        for symbol, result in state.get("final", {}).items():
            p = PendingTarget.from_result(result, state["bar_ts"])
            if p is not None:
                pending[symbol] = p
        return {"pending": pending}

    return execute


# ---------------------------------------------------------------------------------------------- record


def _record(rt: AgentRuntime) -> Node:
    def record(state: TickState) -> TickState:
        t = state["bar_ts"]
        outcome = state.get("outcome")
        if outcome is None:
            _record_skip(rt, state)
            return {"recorded": False}
        analyses = state.get("analyses", {})
        entries = tuple(
            DecisionEntry(result, analyses.get(symbol), state["allowances"][symbol])
            for symbol, result in state.get("final", {}).items()
        )
        write_tick(rt.factory, TickRecord(rt.run_id, t, outcome, entries))
        rt.commit_tick(t, outcome.state, dict(state.get("pending", {})))
        for symbol, result in state.get("final", {}).items():
            prop = result.proposed
            if isinstance(prop.action, Action) and result.source is not DecisionSource.RISK:
                exposure, confidence = _num(prop.target_exposure), _num(prop.confidence)
                past = PastDecision(t, prop.action, exposure, confidence, str(prop.rationale)[:200])
                rt.remember(symbol, past)
        return {"recorded": True}

    return record


def _record_skip(rt: AgentRuntime, state: TickState) -> None:
    """A tick that could not be settled leaves a risk event and nothing else."""
    from agent.db.models import RiskEvent
    from agent.db.session import transaction

    with transaction(rt.factory) as session:
        session.add(
            RiskEvent(
                run_id=rt.run_id,
                bar_ts=state["bar_ts"],
                symbol=None,
                kind="tick_skipped",
                detail=state.get("settle_error") or "not settled",
            )
        )


def _num(value: float) -> float:
    """`value` for the decision memory: 0 when it is not a finite number (an unvalidated proposal's)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return float(value)
