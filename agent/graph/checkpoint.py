"""LangGraph checkpointers stored in the same database as the ledger (SQLite or PostgreSQL).

Contracts:
- `open_checkpointer(db_url)` is a context manager yielding a set-up saver; the thread id of a tick is
  `tick_thread_id(run_id, bar_ts)`, so an interrupted tick resumes from its last completed node.
- PostgreSQL: the saver draws its connections from a `psycopg_pool.ConnectionPool` that checks each one
  (`ConnectionPool.check_connection`) before lending it, as the ledger's engine pre-pings: after a server
  restart, a failover or a terminated backend, the next checkpoint read or write reconnects (the operation
  that was in flight fails once; a connection found dead costs the pool's first backoff, about 1 s). One
  connection is enough: the saver runs one statement at a time. A server that stays unreachable fails the
  operation after `POOL_TIMEOUT_S`.
- Both savers use a `JsonPlusSerializer` that knows the records and enums the graph state holds
  (`STATE_TYPES`): they round-trip exactly, without LangGraph's "unregistered type" warning.
- SQLite: one connection in WAL mode (`synchronous=NORMAL`, as the ledger) with the ledger's busy timeout (30
  s, or the URL's `?timeout=` in seconds); a lock held longer makes the operation fail, and the next one tries
  again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from sqlalchemy.engine import URL, make_url

from agent.broker.models import Bar, BarOutcome, BrokerEvent, FillRecord, OrderRecord, PendingTarget
from agent.graph.state import LLMStatus
from agent.llm.faults import LLMFault
from agent.llm.schema import Action, Analysis, TradeDecision
from agent.portfolio import PortfolioState, Position
from agent.risk.inputs import Proposal
from agent.risk.models import Allowance, ClampEvent, DecisionSource, RiskResult

CHECKPOINT_TABLES = frozenset(
    {"checkpoints", "writes", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"}
)
"""Tables the checkpointers own (created by their own `setup()`, not by Alembic)."""
SQLITE_TIMEOUT_S = 30.0
POOL_TIMEOUT_S = 10.0
"""Longest a checkpoint operation waits for a (re)connection to PostgreSQL."""


STATE_TYPES: tuple[type, ...] = (
    LLMStatus,
    DecisionSource,
    LLMFault,
    Action,
    PortfolioState,
    Position,
    Bar,
    PendingTarget,
    OrderRecord,
    FillRecord,
    BrokerEvent,
    BarOutcome,
    Allowance,
    ClampEvent,
    Analysis,
    TradeDecision,
    Proposal,
    RiskResult,
)
"""The non-plain types the graph state holds (`agent.graph.state.TickState`): allowed when a checkpoint is
read back."""


def serializer() -> JsonPlusSerializer:
    """The checkpoint serializer: LangGraph's, with the state's own types registered."""
    return JsonPlusSerializer(allowed_msgpack_modules=STATE_TYPES)


def tick_thread_id(run_id: str, bar_ts: int) -> str:
    """The checkpoint thread of one tick."""
    return f"{run_id}:{bar_ts}"


@contextmanager
def open_checkpointer(db_url: str) -> Iterator[BaseCheckpointSaver[str]]:
    """A checkpointer over the database at `db_url` (tables created on first use)."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        with _sqlite_saver(url) as saver:
            yield saver
        return
    with _postgres_saver(url) as saver:
        yield saver


@contextmanager
def _sqlite_saver(url: URL) -> Iterator[BaseCheckpointSaver[str]]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    timeout = float(str(url.query.get("timeout", SQLITE_TIMEOUT_S)))
    conn = sqlite3.connect(url.database or ":memory:", check_same_thread=False, timeout=timeout)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # as the ledger's engine: no fsync per checkpoint in WAL mode
    try:
        saver = SqliteSaver(conn, serde=serializer())
        saver.setup()
        yield saver
    finally:
        conn.close()


@contextmanager
def _postgres_saver(url: URL) -> Iterator[BaseCheckpointSaver[str]]:
    from langgraph.checkpoint.postgres import PostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import ConnectionPool

    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    options = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}  # PostgresSaver's needs
    with ConnectionPool(
        plain,
        min_size=1,
        max_size=1,
        kwargs=options,
        check=ConnectionPool.check_connection,
        timeout=POOL_TIMEOUT_S,
        open=True,
        name="tradegraph-checkpoints",
    ) as pool:
        saver = PostgresSaver(pool, serde=serializer())  # type: ignore[arg-type]
        saver.setup()
        yield saver
