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
- Rows go in as SQLAlchemy Core inserts, one statement per table and tick (the decisions' and orders' ids
  come back through `RETURNING`, in input order, for the rows that point at them): no ORM objects, no
  unit-of-work flush; the column defaults of `agent.db.models` apply as they do through the ORM.
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

from sqlalchemy import Connection, Table, bindparam, exists, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from agent.broker.models import BarOutcome, FillRecord, OrderRecord
from agent.db.fence import check_fence
from agent.db.models import (
    BalanceSnapshot,
    Base,
    Decision,
    Fill,
    Order,
    PositionSnapshot,
    RiskEvent,
)
from agent.db.session import transaction
from agent.llm.schema import Action, Analysis
from agent.portfolio import Position
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
            conn = session.connection()
            written, partial = _probe(conn, tick)
            if written:
                return WriteSummary(False)
            return WriteSummary(True, _write(conn, tick, partial))
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


def _probe(conn: Connection, tick: TickRecord) -> tuple[bool, bool]:
    """Whether the tick is written (its balance snapshot), and whether a decision of its symbols, a position
    snapshot or a risk event of its bar is there: one query."""
    symbols = [for_storage(e.result.symbol) for e in tick.decisions]  # as `_decision_row` stores them
    params = {"run_id": tick.run_id, "bar_ts": tick.bar_ts, "symbols": symbols}
    row = conn.execute(_PROBE, params).one()
    return bool(row[0]), bool(row[1])


def _write(conn: Connection, tick: TickRecord, partial: bool = True) -> dict[str, int]:
    """Insert the tick's rows, one statement per table (Core, no ORM objects); with `partial` False (nothing
    of its bar is there) without reading back."""
    counts = {"decisions": 0, "orders": 0, "fills": 0, "positions": 0, "risk_events": 0}
    decision_ids = _write_decisions(conn, tick, counts, partial)
    order_ids = _write_orders(conn, tick.run_id, tick.outcome.orders, counts)
    fills = [
        _fill_row(order_ids[f.client_order_id], f)
        for f in tick.outcome.fills
        if f.client_order_id in order_ids
    ]
    _insert(conn, _INSERT_FILL, fills)
    counts["fills"] = len(fills)
    outcome = tick.outcome
    _insert(conn, _INSERT_BALANCE, [_balance_row(tick)])
    stored: set[str] = set()
    if partial:
        stored = set(conn.scalars(_POSITIONS_THERE, {"run_id": tick.run_id, "bar_ts": tick.bar_ts}))
    positions = [
        _position_row(tick, symbol, pos)
        for symbol, pos in outcome.state.positions.items()
        if symbol not in stored
    ]
    _insert(conn, _INSERT_POSITION, positions)
    counts["positions"] = len(positions)
    events = [
        (decision_ids.get(entry.result.symbol), entry.result.symbol, e.kind, _event_text(e))
        for entry in tick.decisions
        for e in entry.events
    ]
    events += [(None, e.symbol, e.kind, e.detail) for e in outcome.events]
    seen: set[tuple[str | None, str, str]] = set()
    if partial:
        there = conn.execute(_EVENTS_THERE, {"run_id": tick.run_id, "bar_ts": tick.bar_ts})
        seen = {(r[0], r[1], r[2]) for r in there}
    rows = []
    for decision_id, symbol, kind, detail in events:
        symbol, kind, detail = for_storage(symbol), for_storage(kind[:32]), for_storage(detail)
        if (symbol, kind, detail) not in seen:
            rows.append(
                {
                    "run_id": tick.run_id,
                    "decision_id": decision_id,
                    "bar_ts": tick.bar_ts,
                    "symbol": symbol,
                    "kind": kind,
                    "detail": detail,
                }
            )
    _insert(conn, _INSERT_RISK_EVENT, rows)
    counts["risk_events"] = len(rows)
    return counts


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


_INSERT_DECISION = insert(_table(Decision)).returning(_table(Decision).c.id, sort_by_parameter_order=True)
_INSERT_ORDER = insert(_table(Order)).returning(_table(Order).c.id, sort_by_parameter_order=True)
_INSERT_FILL = insert(_table(Fill))
_INSERT_BALANCE = insert(_table(BalanceSnapshot))
_INSERT_POSITION = insert(_table(PositionSnapshot))
_INSERT_RISK_EVENT = insert(_table(RiskEvent))
"""Core inserts, run with a list of rows (one executemany; `insertmanyvalues` where ids come back): no ORM
objects, no unit-of-work flush. Column defaults (`created_at`, `fees_paid`, ...) apply as with the ORM."""
_DECISIONS_THERE = select(Decision.symbol, Decision.id).where(
    Decision.run_id == bindparam("run_id"), Decision.bar_ts == bindparam("bar_ts")
)
_POSITIONS_THERE = select(PositionSnapshot.symbol).where(
    PositionSnapshot.run_id == bindparam("run_id"), PositionSnapshot.bar_ts == bindparam("bar_ts")
)
_EVENTS_THERE = select(RiskEvent.symbol, RiskEvent.kind, RiskEvent.detail).where(
    RiskEvent.run_id == bindparam("run_id"), RiskEvent.bar_ts == bindparam("bar_ts")
)
_ORDERS_KNOWN = select(Order.client_order_id).where(
    Order.client_order_id.in_(bindparam("client_ids", expanding=True))
)
_DECIDED_AT = select(Decision.symbol, Decision.bar_ts, Decision.id).where(
    Decision.run_id == bindparam("run_id"),
    Decision.symbol.in_(bindparam("symbols", expanding=True)),
    Decision.bar_ts.in_(bindparam("decided", expanding=True)),
)


def _insert(conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (nothing when there are none)."""
    if rows:
        conn.execute(stmt, rows)


def _insert_returning_ids(conn: Connection, stmt: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert `rows` in one statement; their new ids, in the same order."""
    if not rows:
        return []
    return list(conn.execute(stmt, rows).scalars())


def _write_decisions(
    conn: Connection, tick: TickRecord, counts: dict[str, int], partial: bool
) -> dict[str, int]:
    """Insert the tick's decisions (skipping existing ones, read only when `partial`); symbol → id."""
    ids: dict[str, int] = {}
    if partial:
        there = conn.execute(_DECISIONS_THERE, {"run_id": tick.run_id, "bar_ts": tick.bar_ts})
        ids = {r[0]: r[1] for r in there}
    rows: dict[str, dict[str, Any]] = {}
    for entry in tick.decisions:  # one per symbol: the last entry of a symbol wins
        if entry.result.symbol not in ids:
            rows[entry.result.symbol] = _decision_row(tick.run_id, tick.bar_ts, entry)
    new_ids = _insert_returning_ids(conn, _INSERT_DECISION, list(rows.values()))
    counts["decisions"] += len(rows)
    return ids | dict(zip(rows, new_ids, strict=True))


def _decision_row(run_id: str, bar_ts: int, entry: DecisionEntry) -> dict[str, Any]:
    result, llm, proposed = entry.result, entry.llm, entry.result.proposed
    try:
        action = Action(proposed.action).value
    except ValueError:
        action = result.action.value
    rationale = proposed.rationale if isinstance(proposed.rationale, str) else repr(proposed.rationale)
    return {
        "run_id": run_id,
        "symbol": for_storage(result.symbol),
        "bar_ts": bar_ts,
        "source": result.source.value,
        "action": action,
        "target_exposure": _finite(proposed.target_exposure),
        "confidence": _finite(proposed.confidence),
        "final_exposure": result.target_exposure if result.changes else None,
        "stop_loss": result.stop_loss,
        "take_profit": result.take_profit,
        "trailing_stop": result.trailing_stop,
        "invalidation": for_storage(result.invalidation),
        "rationale": for_storage(rationale[:RATIONALE_STORED]),
        "abstained": bool(llm and llm.abstained),
        "abstain_reason": for_storage(llm.reason) if llm and llm.abstained else None,
        "llm_call_id": llm.llm_call_id if llm else None,
        "prompt_hash": llm.prompt_hash if llm else None,
        "model": for_storage(llm.model) if llm else None,
        "reasoning": for_storage(llm.reasoning) if llm else None,
        "prompt_tokens": llm.prompt_tokens if llm else None,
        "completion_tokens": llm.completion_tokens if llm else None,
        "latency_ms": llm.latency_ms if llm else None,
        "clamps": [clamp_json(e) for e in entry.events],
    }


def _write_orders(
    conn: Connection, run_id: str, orders: Iterable[OrderRecord], counts: dict[str, int]
) -> dict[str, int]:
    """Insert orders not yet known by client id; client id → new order id (existing ones are left out)."""
    orders = list(orders)
    if not orders:
        return {}
    known = set(conn.scalars(_ORDERS_KNOWN, {"client_ids": [o.client_order_id for o in orders]}))
    new = {o.client_order_id: o for o in orders if o.client_order_id not in known}  # the last one wins
    decided = _decision_ids(conn, run_id, new.values())
    rows = [
        _order_row(o, decided.get((o.symbol, o.decided_ts)) if o.decided_ts is not None else None)
        for o in new.values()
    ]
    ids = _insert_returning_ids(conn, _INSERT_ORDER, rows)
    counts["orders"] += len(rows)
    return dict(zip(new, ids, strict=True))


def _decision_ids(conn: Connection, run_id: str, orders: Iterable[OrderRecord]) -> dict[tuple[str, int], int]:
    """(symbol, bar) → id of the run's decisions the orders execute (their `decided_ts`): one query."""
    wanted = {(o.symbol, o.decided_ts) for o in orders if o.decided_ts is not None}
    if not wanted:
        return {}
    params = {
        "run_id": run_id,
        "symbols": sorted({s for s, _ in wanted}),
        "decided": sorted({ts for _, ts in wanted}),
    }
    return {(r[0], r[1]): r[2] for r in conn.execute(_DECIDED_AT, params) if (r[0], r[1]) in wanted}


def _order_row(order: OrderRecord, decision_id: int | None) -> dict[str, Any]:
    return {
        "run_id": order.run_id,
        "client_order_id": order.client_order_id,
        "decision_id": decision_id,
        "symbol": order.symbol,
        "bar_ts": order.bar_ts,
        "side": order.side,
        "type": order.type,
        "amount": order.amount,
        "price": order.price,
        "status": order.status,
        "reason": for_storage(order.reason),
    }


def _fill_row(order_id: int, fill: FillRecord) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "run_id": fill.run_id,
        "symbol": fill.symbol,
        "bar_ts": fill.bar_ts,
        "side": fill.side,
        "amount": fill.amount,
        "price": fill.price,
        "fee": fill.fee,
        "fee_currency": fill.fee_currency,
    }


def _balance_row(tick: TickRecord) -> dict[str, Any]:
    outcome = tick.outcome
    return {
        "run_id": tick.run_id,
        "bar_ts": tick.bar_ts,
        "cash": outcome.state.cash,
        "equity": outcome.equity,
        "fees_paid": outcome.state.fees_paid,
    }


def _position_row(tick: TickRecord, symbol: str, pos: Position) -> dict[str, Any]:
    return {
        "run_id": tick.run_id,
        "bar_ts": tick.bar_ts,
        "symbol": symbol,
        "amount": pos.amount,
        "avg_price": pos.avg_price,
        "mark_price": tick.outcome.marks[symbol],
        "stop_loss": pos.stop_loss,
        "take_profit": pos.take_profit,
    }


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
