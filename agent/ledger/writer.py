"""Writing one tick to the ledger: decisions, orders, fills, the balance and position snapshots and the risk
events of one bar, in ONE transaction.

Contracts:
- `write_tick` is atomic (`agent.db.session.transaction`): after a crash either the whole tick is in the
  database or none of it. The balance snapshot (unique per run and bar) marks a tick as written.
- Idempotent: writing a tick that is already there writes nothing and returns `written=False`; within a
  tick, a decision (unique per run, symbol, bar), an order (unique `client_order_id`, with its fill), a
  position snapshot or an identical risk event that already exists is skipped. A concurrent writer losing
  the race on a unique constraint gets `written=False` too, never a duplicate. One query tells whether
  the tick is there and whether any decision, position snapshot or risk event of its bar is (a tick is
  written whole, so there normally is none: another writer's risk event, or a lost balance snapshot);
  only then are those rows read back one by one to skip what exists.
- Decisions: `action`, `target_exposure`, `confidence` and `rationale` are the proposal as made (a
  non-finite number is stored as NULL and kept verbatim in `clamps`); `stop_loss`/`take_profit` (and a
  rule's `trailing_stop` distance) are the exit plan after the risk layer; `final_exposure` is the target
  sent to the broker, NULL when nothing was sent (hold, rejection, clamp back to the current exposure);
  `clamps` holds every `ClampEvent` (the allowance's breakers first) as JSON; the LLM fields come from
  the model's `Analysis` (the gateway's result as the graph carries it).
- Each clamp event is also a `risk_events` row linked to its decision; broker events (dust, nothing
  fillable, cooldown) are `risk_events` rows without a decision.
- An order is linked to the decision it executes: (run, symbol, `decided_ts`).
- Model text is data: every free-text column (rationale, invalidation, abstain reason, model, reasoning,
  risk-event details, order reasons) goes through `agent.textsafe.for_storage` (NUL and lone surrogates
  become U+FFFD), so no answer can make the insert fail.
- The run row must exist (`start_run`, idempotent: `agent.runs.lifecycle.create_run`, which checks the id).
- Fenced (`agent.db.fence`): when the factory carries a lease fence (the daemon, `tradegraph tick`), the
  tick's transaction first checks that the lease is still this writer's; if not, `LeaseLost` is raised and
  nothing of the tick is written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import bindparam, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from agent.broker.models import BarOutcome, OrderRecord
from agent.db.fence import check_fence
from agent.db.models import (
    BalanceSnapshot,
    Decision,
    Fill,
    Order,
    PositionSnapshot,
    RiskEvent,
)
from agent.db.session import transaction
from agent.llm.schema import Action, Analysis
from agent.risk.models import Allowance, ClampEvent, RiskResult
from agent.runs.lifecycle import RunKind, RunSpec, create_run
from agent.textsafe import for_storage

RATIONALE_STORED = 4000
"""Longest rationale kept (the schema allows far less; a bypassed schema must not break the write)."""


@dataclass(frozen=True)
class DecisionEntry:
    """One symbol's decision at the tick's bar: the risk layer's verdict and where the proposal came from."""

    result: RiskResult
    llm: Analysis | None = None
    allowance: Allowance | None = None

    @property
    def events(self) -> tuple[ClampEvent, ...]:
        """The allowance's events, then the risk layer's."""
        return (self.allowance.events if self.allowance else ()) + self.result.events


@dataclass(frozen=True)
class TickRecord:
    """Everything one tick (one closed bar t) produced."""

    run_id: str
    bar_ts: int
    outcome: BarOutcome
    decisions: Sequence[DecisionEntry] = ()


@dataclass(frozen=True)
class WriteSummary:
    """What `write_tick` did: `written=False` when the tick was already in the ledger."""

    written: bool
    counts: dict[str, int] = field(default_factory=dict)


def start_run(
    factory: sessionmaker[Session],
    run_id: str,
    *,
    kind: str,
    strategy: str,
    symbols: Sequence[str],
    timeframe: str,
    params: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    start_ts: int | None = None,
    end_ts: int | None = None,
) -> bool:
    """Create the run row unless it exists (`agent.runs.lifecycle.create_run`); True when it was created."""
    spec = RunSpec(
        id=run_id,
        kind=RunKind(kind),
        strategy=strategy,
        symbols=list(symbols),
        timeframe=timeframe,
        params=params or {},
        config=config or {},
        start_ts=start_ts,
        end_ts=end_ts,
    )
    return create_run(factory, spec)


def write_tick(factory: sessionmaker[Session], tick: TickRecord) -> WriteSummary:
    """Write `tick` in one transaction, unless it is already there (see the module contract)."""
    try:
        with transaction(factory) as session:
            check_fence(session, tick.run_id)  # first: a writer that lost its lease writes nothing
            written, partial = _probe(session, tick)
            if written:
                return WriteSummary(False)
            return WriteSummary(True, _write(session, tick, partial))
    except IntegrityError:
        with factory() as session:
            if _tick_exists(session, tick.run_id, tick.bar_ts):
                return WriteSummary(False)
        raise


class TickWriter(Protocol):
    """The seam the graph records through: `LedgerWriter`, or a fake that keeps the records in memory."""

    def write_tick(self, tick: TickRecord) -> WriteSummary: ...


class LedgerWriter:
    """`start_run` and `write_tick` bound to a session factory (a `TickWriter`)."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def start_run(self, run_id: str, **kwargs: Any) -> bool:
        """See `start_run`."""
        return start_run(self.factory, run_id, **kwargs)

    def write_tick(self, tick: TickRecord) -> WriteSummary:
        """See `write_tick`."""
        return write_tick(self.factory, tick)


def _tick_exists(session: Session, run_id: str, bar_ts: int) -> bool:
    query = select(BalanceSnapshot.id).where(
        BalanceSnapshot.run_id == run_id, BalanceSnapshot.bar_ts == bar_ts
    )
    return session.scalar(query) is not None


def _there(table: Any) -> Any:
    return exists().where(table.run_id == bindparam("run_id"), table.bar_ts == bindparam("bar_ts"))


_DECIDED = exists().where(
    Decision.run_id == bindparam("run_id"),
    Decision.symbol.in_(bindparam("symbols", expanding=True)),
    Decision.bar_ts == bindparam("bar_ts"),
)
"""A decision of the tick's symbols at its bar (the whole unique index: no scan of the run's decisions)."""
_PROBE = select(_there(BalanceSnapshot), or_(_DECIDED, _there(PositionSnapshot), _there(RiskEvent)))
"""Whether the tick is written, and whether anything of its bar is there (built once: building a
statement costs more than running it)."""


def _probe(session: Session, tick: TickRecord) -> tuple[bool, bool]:
    """Whether the tick is written (its balance snapshot), and whether a decision of its symbols, a position
    snapshot or a risk event of its bar is there: one query."""
    symbols = [for_storage(e.result.symbol) for e in tick.decisions]  # as `_decision_row` stores them
    params = {"run_id": tick.run_id, "bar_ts": tick.bar_ts, "symbols": symbols}
    row = session.execute(_PROBE, params).one()
    return bool(row[0]), bool(row[1])


def _write(session: Session, tick: TickRecord, partial: bool = True) -> dict[str, int]:
    """Insert the tick's rows; with `partial` False (nothing of its bar is there) without reading back."""
    counts = {"decisions": 0, "orders": 0, "fills": 0, "positions": 0, "risk_events": 0}
    decision_ids = _write_decisions(session, tick, counts, partial)
    order_ids = _write_orders(session, tick.run_id, tick.outcome.orders, counts)
    for fill in tick.outcome.fills:
        if fill.client_order_id in order_ids:
            session.add(
                Fill(
                    order_id=order_ids[fill.client_order_id],
                    run_id=fill.run_id,
                    symbol=fill.symbol,
                    bar_ts=fill.bar_ts,
                    side=fill.side,
                    amount=fill.amount,
                    price=fill.price,
                    fee=fill.fee,
                    fee_currency=fill.fee_currency,
                )
            )
            counts["fills"] += 1
    outcome = tick.outcome
    session.add(
        BalanceSnapshot(
            run_id=tick.run_id,
            bar_ts=tick.bar_ts,
            cash=outcome.state.cash,
            equity=outcome.equity,
            fees_paid=outcome.state.fees_paid,
        )
    )
    stored: set[str] = set()
    if partial:
        positions_there = select(PositionSnapshot.symbol).where(
            PositionSnapshot.run_id == tick.run_id, PositionSnapshot.bar_ts == tick.bar_ts
        )
        stored = set(session.scalars(positions_there))
    for symbol, pos in outcome.state.positions.items():
        if symbol in stored:
            continue
        session.add(
            PositionSnapshot(
                run_id=tick.run_id,
                bar_ts=tick.bar_ts,
                symbol=symbol,
                amount=pos.amount,
                avg_price=pos.avg_price,
                mark_price=outcome.marks[symbol],
                stop_loss=pos.stop_loss,
                take_profit=pos.take_profit,
            )
        )
        counts["positions"] += 1
    events = [
        (decision_ids.get(entry.result.symbol), entry.result.symbol, e.kind, _event_text(e))
        for entry in tick.decisions
        for e in entry.events
    ]
    events += [(None, e.symbol, e.kind, e.detail) for e in outcome.events]
    seen: set[tuple[str | None, str, str]] = set()
    if partial:
        events_there = select(RiskEvent.symbol, RiskEvent.kind, RiskEvent.detail).where(
            RiskEvent.run_id == tick.run_id, RiskEvent.bar_ts == tick.bar_ts
        )
        seen = {(r[0], r[1], r[2]) for r in session.execute(events_there)}
    for decision_id, symbol, kind, detail in events:
        symbol, kind, detail = for_storage(symbol), for_storage(kind[:32]), for_storage(detail)
        if (symbol, kind, detail) not in seen:
            session.add(
                RiskEvent(
                    run_id=tick.run_id,
                    decision_id=decision_id,
                    bar_ts=tick.bar_ts,
                    symbol=symbol,
                    kind=kind,
                    detail=detail,
                )
            )
            counts["risk_events"] += 1
    return counts


def _write_decisions(
    session: Session, tick: TickRecord, counts: dict[str, int], partial: bool
) -> dict[str, int]:
    """Insert the tick's decisions (skipping existing ones, read only when `partial`); symbol → id."""
    ids: dict[str, int] = {}
    if partial:
        query = select(Decision.symbol, Decision.id).where(
            Decision.run_id == tick.run_id, Decision.bar_ts == tick.bar_ts
        )
        ids = {r[0]: r[1] for r in session.execute(query)}
    rows = {
        e.result.symbol: _decision_row(tick.run_id, tick.bar_ts, e)
        for e in tick.decisions
        if e.result.symbol not in ids
    }
    session.add_all(rows.values())
    session.flush()
    counts["decisions"] += len(rows)
    return ids | {symbol: row.id for symbol, row in rows.items()}


def _decision_row(run_id: str, bar_ts: int, entry: DecisionEntry) -> Decision:
    result, llm, proposed = entry.result, entry.llm, entry.result.proposed
    try:
        action = Action(proposed.action).value
    except ValueError:
        action = result.action.value
    rationale = proposed.rationale if isinstance(proposed.rationale, str) else repr(proposed.rationale)
    return Decision(
        run_id=run_id,
        symbol=for_storage(result.symbol),
        bar_ts=bar_ts,
        source=result.source.value,
        action=action,
        target_exposure=_finite(proposed.target_exposure),
        confidence=_finite(proposed.confidence),
        final_exposure=result.target_exposure if result.changes else None,
        stop_loss=result.stop_loss,
        take_profit=result.take_profit,
        trailing_stop=result.trailing_stop,
        invalidation=for_storage(result.invalidation),
        rationale=for_storage(rationale[:RATIONALE_STORED]),
        abstained=bool(llm and llm.abstained),
        abstain_reason=for_storage(llm.reason) if llm and llm.abstained else None,
        llm_call_id=llm.llm_call_id if llm else None,
        prompt_hash=llm.prompt_hash if llm else None,
        model=for_storage(llm.model) if llm else None,
        reasoning=for_storage(llm.reasoning) if llm else None,
        prompt_tokens=llm.prompt_tokens if llm else None,
        completion_tokens=llm.completion_tokens if llm else None,
        latency_ms=llm.latency_ms if llm else None,
        clamps=[clamp_json(e) for e in entry.events],
    )


def _write_orders(
    session: Session, run_id: str, orders: Iterable[OrderRecord], counts: dict[str, int]
) -> dict[str, int]:
    """Insert orders not yet known by client id; client id → new order id (existing ones are left out)."""
    orders = list(orders)
    if not orders:
        return {}
    known = set(
        session.scalars(
            select(Order.client_order_id).where(
                Order.client_order_id.in_([o.client_order_id for o in orders])
            )
        )
    )
    decision_cache: dict[tuple[str, int], int | None] = {}
    rows: dict[str, Order] = {}
    for order in orders:
        if order.client_order_id in known:
            continue
        decision_id = None
        if order.decided_ts is not None:
            key = (order.symbol, order.decided_ts)
            if key not in decision_cache:
                decision_cache[key] = session.scalar(
                    select(Decision.id).where(
                        Decision.run_id == run_id,
                        Decision.symbol == order.symbol,
                        Decision.bar_ts == order.decided_ts,
                    )
                )
            decision_id = decision_cache[key]
        rows[order.client_order_id] = Order(
            run_id=order.run_id,
            client_order_id=order.client_order_id,
            decision_id=decision_id,
            symbol=order.symbol,
            bar_ts=order.bar_ts,
            side=order.side,
            type=order.type,
            amount=order.amount,
            price=order.price,
            status=order.status,
            reason=for_storage(order.reason),
        )
    session.add_all(rows.values())
    session.flush()
    counts["orders"] += len(rows)
    return {coid: row.id for coid, row in rows.items()}


def clamp_json(event: ClampEvent) -> dict[str, str | float | None]:
    """A clamp event as stored in `decisions.clamps`: JSON-safe (NaN and infinities as strings, so
    PostgreSQL's JSON accepts them)."""
    return {
        "kind": event.kind,
        "field": event.field,
        "before": _json_value(event.before),
        "after": _json_value(event.after),
        "detail": event.detail,
    }


def _json_value(value: float | str | None) -> float | str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _event_text(event: ClampEvent) -> str:
    plain = clamp_json(event)
    return f"{event.detail} [{event.field}: {plain['before']!r} -> {plain['after']!r}]"


def _finite(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
