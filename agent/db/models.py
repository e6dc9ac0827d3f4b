"""SQLAlchemy 2 typed models: the ledger and audit trail.

Contracts:
- The schema is owned by Alembic migrations (`agent/db/migrations`); never `create_all` in production code.
  A new column means a new migration.
- Bar times are stored as `*_ts` integers: milliseconds since the epoch, UTC (unambiguous on SQLite and
  PostgreSQL alike). Wall-clock audit times are `created_at` timestamps.
- Every decision keeps its prompt hash, response, reasoning, model, tokens, latency, rationale, the risk
  layer's clamps and the resulting orders (principle 4).
- `orders.client_order_id` is unique: derived from (run, symbol, bar time), so a retried tick cannot
  fill twice.
- The ledger enforces its own invariants with CHECK constraints (named `ck_<table>_<rule>`, created by
  migration 0003), whatever code writes it: cash never below `-CASH_TOLERANCE`; order, fill and position
  amounts and fill prices strictly positive; closed sets for order and fill `side` (`ORDER_SIDES`), order
  `status` (`ORDER_STATUSES`) and run `status` (`RUN_STATUSES`). A row that breaks one raises
  `IntegrityError` and its transaction writes nothing.
- A prompt's messages are stored once, in `llm_prompts`, keyed by the sha256 of their canonical JSON;
  `llm_calls.messages_hash` names the messages each call sent (`agent.db.prompts`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

CASH_TOLERANCE = 1e-6
"""Largest shortfall (quote units) a balance snapshot's cash may show: the float dust a buy of all the cash
can leave (amount x price x (1 + fee) rounds to a few ulps above the cash); anything more is a bug."""
ORDER_SIDES = ("buy", "sell")
ORDER_STATUSES = ("filled", "rejected", "canceled")
RUN_STATUSES = ("running", "done", "failed")


def one_of(column: str, values: tuple[str, ...]) -> str:
    """SQL text of a CHECK that `column` holds one of `values` (a closed set)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def utcnow() -> datetime:
    """Timezone-aware now, for audit columns."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base; `metadata` is what Alembic compares against."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Run(Base):
    """One backtest, sweep trial, paper session or daemon lifetime."""

    __tablename__ = "runs"
    __table_args__ = (CheckConstraint(one_of("status", RUN_STATUSES), name="ck_runs_status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # backtest | sweep | paper | demo | daemon
    strategy: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    symbols: Mapped[list[Any]] = mapped_column(default=list)
    timeframe: Mapped[str] = mapped_column(String(8))
    start_ts: Mapped[int | None] = mapped_column(BigInteger)
    end_ts: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    report_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LLMCall(Base):
    """One request to the LLM endpoint (or a cache hit of one); doubles as the response cache."""

    __tablename__ = "llm_calls"
    __table_args__ = (
        Index("ix_llm_calls_request_hash", "request_hash"),
        Index("ix_llm_calls_messages_hash", "messages_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    request_hash: Mapped[str] = mapped_column(String(64))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(Text)
    profile: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(Text)
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What was sent, without the messages (those are `messages_hash` → `llm_prompts`)."""
    messages_hash: Mapped[str | None] = mapped_column(
        ForeignKey("llm_prompts.prompt_hash", name="fk_llm_calls_messages_hash")
    )
    """The messages this call sent (NULL for a cache hit, which sent nothing)."""
    response_text: Mapped[str | None] = mapped_column(Text)
    reasoning: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cached_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    from_cache: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LLMPrompt(Base):
    """The messages of a prompt, stored once however many calls sent them (`llm_calls.messages_hash`)."""

    __tablename__ = "llm_prompts"

    prompt_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    """sha256 of the canonical JSON of `messages` (`agent.db.prompts.prompt_digest`)."""
    messages: Mapped[list[Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Decision(Base):
    """What was decided for one symbol at one bar, by whom, and what the risk layer made of it."""

    __tablename__ = "decisions"
    __table_args__ = (UniqueConstraint("run_id", "symbol", "bar_ts", name="uq_decisions_run_symbol_bar"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    bar_ts: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))  # llm | rule | hybrid | fallback | risk
    action: Mapped[str] = mapped_column(String(8))  # buy | sell | hold | close
    target_exposure: Mapped[float | None] = mapped_column(Float)
    final_exposure: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    stop_loss: Mapped[float | None] = mapped_column(Float)
    take_profit: Mapped[float | None] = mapped_column(Float)
    trailing_stop: Mapped[float | None] = mapped_column(Float)  # a rule's trailing distance (migration 0004)
    invalidation: Mapped[str | None] = mapped_column(Text)
    rationale: Mapped[str | None] = mapped_column(Text)
    abstained: Mapped[bool] = mapped_column(Boolean, default=False)
    abstain_reason: Mapped[str | None] = mapped_column(Text)
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id", ondelete="SET NULL"))
    prompt_hash: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(Text)
    reasoning: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    clamps: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Order(Base):
    """A paper order; `client_order_id` = f(run, symbol, bar time, leg) makes retries idempotent."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_orders_amount"),
        CheckConstraint(one_of("side", ORDER_SIDES), name="ck_orders_side"),
        CheckConstraint(one_of("status", ORDER_STATUSES), name="ck_orders_status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    client_order_id: Mapped[str] = mapped_column(String(96), unique=True)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id", ondelete="SET NULL"))
    symbol: Mapped[str] = mapped_column(String(32))
    bar_ts: Mapped[int] = mapped_column(BigInteger)
    side: Mapped[str] = mapped_column(String(4))  # buy | sell
    type: Mapped[str] = mapped_column(String(16), default="market")
    amount: Mapped[float] = mapped_column(Float)
    price: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))  # filled | rejected | canceled
    reason: Mapped[str | None] = mapped_column(Text)  # entry | exit | stop_loss | take_profit | ...
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Fill(Base):
    """An execution of an order at a price, with its fee."""

    __tablename__ = "fills"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_fills_amount"),
        CheckConstraint("price > 0", name="ck_fills_price"),
        CheckConstraint(one_of("side", ORDER_SIDES), name="ck_fills_side"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    bar_ts: Mapped[int] = mapped_column(BigInteger)
    side: Mapped[str] = mapped_column(String(4))
    amount: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    fee_currency: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BalanceSnapshot(Base):
    """Cash and equity after a bar was processed."""

    __tablename__ = "balance_snapshots"
    __table_args__ = (
        UniqueConstraint("run_id", "bar_ts", name="uq_balance_run_bar"),
        CheckConstraint(f"cash >= {-CASH_TOLERANCE!r}", name="ck_balance_snapshots_cash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    bar_ts: Mapped[int] = mapped_column(BigInteger)
    cash: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)
    fees_paid: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PositionSnapshot(Base):
    """One open position after a bar was processed, with its exit plan."""

    __tablename__ = "position_snapshots"
    __table_args__ = (
        UniqueConstraint("run_id", "bar_ts", "symbol", name="uq_position_run_bar_symbol"),
        CheckConstraint("amount > 0", name="ck_position_snapshots_amount"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    bar_ts: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str] = mapped_column(String(32))
    amount: Mapped[float] = mapped_column(Float)
    avg_price: Mapped[float] = mapped_column(Float)
    mark_price: Mapped[float] = mapped_column(Float)
    stop_loss: Mapped[float | None] = mapped_column(Float)
    take_profit: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RiskEvent(Base):
    """A clamp, rejection or circuit-breaker event raised by the risk layer (or a skipped tick)."""

    __tablename__ = "risk_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id", ondelete="SET NULL"))
    bar_ts: Mapped[int] = mapped_column(BigInteger)
    symbol: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DaemonLease(Base):
    """The one-daemon-per-database lease (`agent.daemon.lease`), with the holder's heartbeat and status.

    `epoch` grows by one at every acquisition: claims and heartbeats are compare-and-swap UPDATEs on it, so
    two starters cannot both win and a daemon whose lease was taken over learns it at its next heartbeat.
    Times are wall-clock milliseconds since the epoch (`*_ms`); `last_bar_ts` is a bar open time.
    """

    __tablename__ = "daemon_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    holder: Mapped[str | None] = mapped_column(String(128))  # NULL = released
    run_id: Mapped[str | None] = mapped_column(String(32))
    mode: Mapped[str | None] = mapped_column(String(16))  # live | replay
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    ttl_s: Mapped[float] = mapped_column(Float, default=30.0)
    acquired_ms: Mapped[int | None] = mapped_column(BigInteger)
    heartbeat_ms: Mapped[int | None] = mapped_column(BigInteger)
    released_ms: Mapped[int | None] = mapped_column(BigInteger)
    clock_ms: Mapped[int | None] = mapped_column(BigInteger)  # the daemon's now (simulated in replay)
    last_bar_ts: Mapped[int | None] = mapped_column(BigInteger)
    next_tick_ms: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)  # e.g. why the daemon stopped


class DaemonTick(Base):
    """One bar the daemon ticked, or one wake-up it skipped, with why and when (the daemon's audit trail).

    The ledger stays the truth about what was processed (a balance snapshot per bar); this row is written
    after the tick's ledger transaction, so a crash in between leaves a processed bar without its row.
    """

    __tablename__ = "daemon_ticks"
    __table_args__ = (Index("ix_daemon_ticks_run_bar", "run_id", "bar_ts"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    bar_ts: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # done | resumed | already_done | skipped | error
    reason: Mapped[str | None] = mapped_column(Text)
    orders: Mapped[int] = mapped_column(Integer, default=0)
    fills: Mapped[int] = mapped_column(Integer, default=0)
    equity: Mapped[float | None] = mapped_column(Float)
    holder: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


CONTROL_NAMES = ("kill_switch", "pause")


class ControlEvent(Base):
    """One operator control set on or off (kill switch, pause of new entries), with who and when.

    Append-only: the newest row of a name is its state (`agent.db.controls`). Written by `tradegraph serve`
    (the only table it writes); read by the daemon's risk screen at every tick (migration 0005).
    """

    __tablename__ = "control_events"
    __table_args__ = (
        CheckConstraint(one_of("name", CONTROL_NAMES), name="ck_control_events_name"),
        Index("ix_control_events_name_id", "name", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(16))  # kill_switch | pause
    active: Mapped[bool] = mapped_column(Boolean)
    who: Mapped[str] = mapped_column(String(128))
    origin: Mapped[str | None] = mapped_column(String(255))  # the client address the request came from
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
