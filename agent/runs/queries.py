"""Typed, read-only, paginated reads of the ledger for the dashboard and `/api/v1` (`agent.web`).

Contracts:
- Read-only: every function only SELECTs, through the session factory it is given (the dashboard gives
  one whose connections refuse writes). Rows come back as frozen records, never ORM rows or dicts.
- Paging: `runs_page` by `limit`/`offset` with the total count (runs are few); `decisions_page` by a
  keyset cursor on the decision id (`before_id`: older than that id; `after_id`: newer, oldest first, for
  live updates), so a page costs the same at the 100,000th decision as at the first. `limit` is clamped to
  `MAX_LIMIT`.
- The records are in `agent.runs.query_records` (re-exported here).
- Model text (rationale, reasoning, abstain reasons, prompts, answers) is returned raw: escaping is the
  renderer's job (`agent.textsafe.for_html`).
- LLM figures are computed over a window of the newest `LLM_WINDOW` calls (of one run, or all), so the
  page costs the same however long the daemon has run; `llm_stats` says how many calls it looked at.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import BalanceSnapshot, Decision, Fill, LLMCall, Order, PositionSnapshot, Run
from agent.runs.llm_calls import call_messages, llm_call
from agent.runs.metrics import RunMetrics
from agent.runs.query_records import (
    Book,
    Clamp,
    CountBy,
    DecisionDetail,
    DecisionRow,
    EquityPoint,
    LLMStats,
    OrderRow,
    Page,
    Position,
    RunRow,
    SymbolPnl,
)

MAX_LIMIT = 500
LLM_WINDOW = 5000
"""LLM calls `llm_stats` looks at (the newest)."""
CIRCUIT_OPEN = "circuit open"
"""How an abstention caused by the gateway's open circuit begins (`agent.llm.circuit`)."""

_EPOCH = datetime(1970, 1, 1)

__all__ = [
    "Book",
    "Clamp",
    "CountBy",
    "DecisionDetail",
    "DecisionRow",
    "EquityPoint",
    "LLMStats",
    "OrderRow",
    "Page",
    "Position",
    "RunRow",
    "SymbolPnl",
    "book",
    "decision_detail",
    "decisions_page",
    "equity_curve",
    "get_run",
    "latest_run_id",
    "ledger_version",
    "llm_stats",
    "newest_decision_id",
    "run_orders",
    "runs_page",
    "symbol_pnl",
]
# ------------------------------------------------------------------------------------------------ runs


def runs_page(
    factory: sessionmaker[Session],
    *,
    kind: str | None = None,
    status: str | None = None,
    strategy: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page[RunRow]:
    """Runs newest first, filtered by kind, status and strategy (exact), with the total count."""
    limit, offset = _clamp(limit), max(offset, 0)
    query = select(Run)
    for column, value in ((Run.kind, kind), (Run.status, status), (Run.strategy, strategy)):
        if value:
            query = query.where(column == value)
    with factory() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(
            query.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit).offset(offset)
        ).all()
        items = tuple(_run(r) for r in rows)
    return Page(items, limit, offset, int(total))


def get_run(factory: sessionmaker[Session], run_id: str) -> RunRow | None:
    """One run, or None."""
    with factory() as session:
        row = session.get(Run, run_id)
        return _run(row) if row is not None else None


def latest_run_id(factory: sessionmaker[Session], kind: str | None = None) -> str | None:
    """The newest run's id (of `kind`), or None."""
    query = select(Run.id).order_by(Run.created_at.desc(), Run.id.desc()).limit(1)
    if kind:
        query = query.where(Run.kind == kind)
    with factory() as session:
        return session.scalar(query)


def equity_curve(factory: sessionmaker[Session], run_id: str) -> tuple[EquityPoint, ...]:
    """Equity and cash after every processed bar of the run, in bar order."""
    query = (
        select(BalanceSnapshot.bar_ts, BalanceSnapshot.equity, BalanceSnapshot.cash)
        .where(BalanceSnapshot.run_id == run_id)
        .order_by(BalanceSnapshot.bar_ts)
    )
    with factory() as session:
        return tuple(EquityPoint(int(b), float(e), float(c)) for b, e, c in session.execute(query))


def ledger_version(factory: sessionmaker[Session], run_id: str) -> tuple[int, int, int]:
    """(balance snapshots, newest bar, newest order id) of a run: changes whenever its charts would, so a
    drawn chart can be kept until then."""
    with factory() as session:
        count, newest = session.execute(
            select(func.count(), func.max(BalanceSnapshot.bar_ts)).where(BalanceSnapshot.run_id == run_id)
        ).one()
        order = session.scalar(select(func.max(Order.id)).where(Order.run_id == run_id))
    return int(count or 0), int(newest or 0), int(order or 0)


def book(factory: sessionmaker[Session], run_id: str) -> Book:
    """The run's last balance, open positions and today's PnL."""
    with factory() as session:
        last = session.execute(
            select(BalanceSnapshot.bar_ts, BalanceSnapshot.cash, BalanceSnapshot.equity)
            .where(BalanceSnapshot.run_id == run_id)
            .order_by(BalanceSnapshot.bar_ts.desc())
            .limit(1)
        ).first()
        if last is None:
            return Book(None, None, None, None, ())
        bar_ts = int(last[0])
        day = bar_ts - bar_ts % 86_400_000
        before = session.scalar(
            select(BalanceSnapshot.equity)
            .where(BalanceSnapshot.run_id == run_id, BalanceSnapshot.bar_ts < day)
            .order_by(BalanceSnapshot.bar_ts.desc())
            .limit(1)
        )
        if before is None:
            before = session.scalar(
                select(BalanceSnapshot.equity)
                .where(BalanceSnapshot.run_id == run_id)
                .order_by(BalanceSnapshot.bar_ts)
                .limit(1)
            )
        rows = session.scalars(
            select(PositionSnapshot)
            .where(PositionSnapshot.run_id == run_id, PositionSnapshot.bar_ts == bar_ts)
            .order_by(PositionSnapshot.symbol)
        ).all()
        positions = tuple(
            Position(p.symbol, bar_ts, p.amount, p.avg_price, p.mark_price, p.stop_loss, p.take_profit)
            for p in rows
        )
    return Book(bar_ts, float(last[1]), float(last[2]), None if before is None else float(before), positions)


def run_orders(factory: sessionmaker[Session], run_id: str, limit: int = MAX_LIMIT) -> tuple[OrderRow, ...]:
    """The run's newest filled orders (up to `limit`), in bar order."""
    query = (
        select(Order)
        .where(Order.run_id == run_id, Order.status == "filled")
        .order_by(Order.bar_ts.desc(), Order.id.desc())
        .limit(_clamp(limit))
    )
    with factory() as session:
        return tuple(reversed([_order(o) for o in session.scalars(query)]))


def symbol_pnl(factory: sessionmaker[Session], run_id: str) -> tuple[SymbolPnl, ...]:
    """Each traded symbol's PnL in the run (`SymbolPnl`), by symbol."""
    buy = Fill.side == "buy"
    query = (
        select(
            Fill.symbol,
            func.count(),
            func.sum(case((buy, Fill.amount * Fill.price), else_=0.0)),
            func.sum(case((buy, 0.0), else_=Fill.amount * Fill.price)),
            func.sum(Fill.fee),
        )
        .where(Fill.run_id == run_id)
        .group_by(Fill.symbol)
        .order_by(Fill.symbol)
    )
    with factory() as session:
        rows = session.execute(query).all()
    held = {p.symbol: p.amount * p.mark_price for p in book(factory, run_id).positions}
    return tuple(
        SymbolPnl(str(s), int(n), float(b or 0.0), float(v or 0.0), float(f or 0.0), held.get(str(s), 0.0))
        for s, n, b, v, f in rows
    )


# ------------------------------------------------------------------------------------------- decisions


def decisions_page(
    factory: sessionmaker[Session],
    *,
    run_id: str | None = None,
    before_id: int | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> Page[DecisionRow]:
    """Decisions newest first (`before_id` pages back); with `after_id`, the newer ones, oldest first."""
    limit = _clamp(limit)
    query = select(Decision)
    if run_id:
        query = query.where(Decision.run_id == run_id)
    if after_id is not None:
        query = query.where(Decision.id > after_id).order_by(Decision.id)
    else:
        if before_id is not None:
            query = query.where(Decision.id < before_id)
        query = query.order_by(Decision.id.desc())
    with factory() as session:
        rows = session.scalars(query.limit(limit)).all()
        orders = _orders_of(session, [r.id for r in rows])
        items = tuple(_decision(r, orders.get(r.id, ())) for r in rows)
    more = len(items) == limit and after_id is None
    return Page(items, limit, next_cursor=items[-1].id if more and items else None)


def newest_decision_id(factory: sessionmaker[Session], run_id: str | None = None) -> int | None:
    """The id of the newest decision (of `run_id`), or None: what live updates poll."""
    query = select(func.max(Decision.id))
    if run_id:
        query = query.where(Decision.run_id == run_id)
    with factory() as session:
        found = session.scalar(query)
    return None if found is None else int(found)


def decision_detail(factory: sessionmaker[Session], decision_id: int) -> DecisionDetail | None:
    """One decision with its prompt, the call's answer and figures; None for an unknown id."""
    with factory() as session:
        row = session.get(Decision, decision_id)
        if row is None:
            return None
        record = _decision(row, _orders_of(session, [row.id]).get(row.id, ()))
        fields = (
            row.model,
            row.reasoning,
            row.prompt_hash,
            row.prompt_tokens,
            row.completion_tokens,
            row.latency_ms,
        )
    call = llm_call(factory, record.llm_call_id) if record.llm_call_id is not None else None
    messages = call_messages(factory, record.llm_call_id) if record.llm_call_id is not None else None
    shown = tuple((str(m.get("role", "")), _content(m.get("content"))) for m in messages or ())
    return DecisionDetail(record, *fields, call=call, messages=shown)


# ------------------------------------------------------------------------------------------------- LLM


def llm_stats(
    factory: sessionmaker[Session], run_id: str | None = None, window: int = LLM_WINDOW
) -> LLMStats:
    """Calls, cache and prefix-cache use, latency percentiles, calls per hour, abstentions by reason and
    the circuit's last known state, over the newest `window` calls (of `run_id`, or all)."""
    calls = select(
        LLMCall.from_cache,
        LLMCall.error,
        LLMCall.prompt_tokens,
        LLMCall.completion_tokens,
        LLMCall.cached_tokens,
        LLMCall.latency_ms,
        LLMCall.created_at,
    ).order_by(LLMCall.id.desc())
    abstain = select(Decision.abstain_reason, func.count()).where(Decision.abstained.is_(True))
    newest_llm = select(Decision.abstain_reason).where(Decision.source == "llm")
    if run_id:
        calls = calls.where(LLMCall.run_id == run_id)
        abstain = abstain.where(Decision.run_id == run_id)
        newest_llm = newest_llm.where(Decision.run_id == run_id)
    with factory() as session:
        rows = session.execute(calls.limit(window)).all()
        reasons = session.execute(abstain.group_by(Decision.abstain_reason)).all()
        last = session.execute(newest_llm.order_by(Decision.id.desc()).limit(1)).first()
    real = [r for r in rows if not r[0]]
    latencies = sorted(float(r[5]) for r in real if r[5] is not None)
    hours = Counter(_hour_index(r[6]) for r in rows)
    return LLMStats(
        calls_seen=len(rows),
        real_calls=len(real),
        cache_hits=len(rows) - len(real),
        errors=sum(r[1] is not None for r in rows),
        prompt_tokens=sum(int(r[2] or 0) for r in real),
        completion_tokens=sum(int(r[3] or 0) for r in real),
        cached_tokens=sum(int(r[4] or 0) for r in real),
        latency_p50_ms=_percentile(latencies, 0.50),
        latency_p90_ms=_percentile(latencies, 0.90),
        latency_p99_ms=_percentile(latencies, 0.99),
        calls_per_hour=tuple(CountBy(_hour_label(h), n) for h, n in sorted(hours.items())),
        abstentions=tuple(
            sorted((CountBy(str(r or "unspecified"), int(n)) for r, n in reasons), key=lambda c: -c.count)
        ),
        circuit=_circuit(last),
    )


# ---- helpers -----------------------------------------------------------------------------------------------


def _clamp(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def _run(r: Run) -> RunRow:
    measured = RunMetrics.from_json(r.metrics)
    metrics = measured.strategy.numbers() if measured is not None else {}
    return RunRow(
        r.id,
        r.kind,
        r.strategy,
        tuple(str(s) for s in r.symbols or ()),
        r.timeframe,
        r.status,
        _utc(r.created_at),
        None if r.finished_at is None else _utc(r.finished_at),
        r.start_ts,
        r.end_ts,
        r.error,
        metrics,
    )


def _order(o: Order) -> OrderRow:
    return OrderRow(o.id, o.decision_id, o.symbol, o.bar_ts, o.side, o.amount, o.price, o.status, o.reason)


def _orders_of(session: Session, ids: list[int]) -> dict[int, tuple[OrderRow, ...]]:
    if not ids:
        return {}
    found: dict[int, list[OrderRow]] = {}
    for o in session.scalars(select(Order).where(Order.decision_id.in_(ids)).order_by(Order.id)):
        found.setdefault(int(o.decision_id or 0), []).append(_order(o))
    return {k: tuple(v) for k, v in found.items()}


def _decision(r: Decision, orders: tuple[OrderRow, ...]) -> DecisionRow:
    clamps = tuple(
        Clamp(str(c.get("kind", "")), str(c.get("detail", ""))) for c in r.clamps or () if isinstance(c, dict)
    )
    return DecisionRow(
        r.id,
        r.run_id,
        r.symbol,
        r.bar_ts,
        r.source,
        r.action,
        r.target_exposure,
        r.final_exposure,
        r.confidence,
        bool(r.abstained),
        r.abstain_reason,
        r.rationale,
        clamps,
        orders,
        r.llm_call_id,
        _utc(r.created_at),
    )


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", p)) if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def _utc(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _hour_index(when: datetime) -> int:
    """Hours since the epoch (a naive time is UTC, as SQLite returns them)."""
    if when.tzinfo is None:
        return int((when - _EPOCH).total_seconds()) // 3600
    return int(when.timestamp()) // 3600


def _hour_label(index: int) -> str:
    return datetime.fromtimestamp(index * 3600, UTC).strftime("%Y-%m-%d %H:00")


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _circuit(last: Any) -> str:
    if last is None:
        return "not recorded"
    reason = last[0]
    return "open" if isinstance(reason, str) and reason.startswith(CIRCUIT_OPEN) else "closed"
