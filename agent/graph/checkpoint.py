"""LangGraph checkpointers stored in the same database as the ledger (SQLite or PostgreSQL).

Contract: `open_checkpointer(db_url)` is a context manager yielding a set-up saver; the thread id of a tick
is `tick_thread_id(run_id, bar_ts)`, so an interrupted tick resumes from its last completed node.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy.engine import make_url

CHECKPOINT_TABLES = frozenset(
    {"checkpoints", "writes", "checkpoint_blobs", "checkpoint_writes", "checkpoint_migrations"}
)
"""Tables the checkpointers own (created by their own `setup()`, not by Alembic)."""


def tick_thread_id(run_id: str, bar_ts: int) -> str:
    """The checkpoint thread of one tick."""
    return f"{run_id}:{bar_ts}"


@contextmanager
def open_checkpointer(db_url: str) -> Iterator[BaseCheckpointSaver[str]]:
    """A checkpointer over the database at `db_url` (tables created on first use)."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(url.database or ":memory:", check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        try:
            saver = SqliteSaver(conn)
            saver.setup()
            yield saver
        finally:
            conn.close()
        return
    from langgraph.checkpoint.postgres import PostgresSaver

    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with PostgresSaver.from_conn_string(plain) as saver:
        saver.setup()
        yield saver
