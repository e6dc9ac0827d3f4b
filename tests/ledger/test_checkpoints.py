"""LangGraph checkpoints are bounded: a tick's checkpoint thread exists only while the tick is in flight (so a
killed tick resumes), and is deleted once the ledger holds the tick. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from agent.db.session import make_engine, open_db
from agent.graph.checkpoint import CHECKPOINT_TABLES, tick_thread_id
from agent.graph.factory import open_agent
from tests.daemon.helpers import DATA_END, HOUR, SMA, data_dir, settings


def _checkpoint_rows(url: str, thread_id: str | None = None) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names()) & (CHECKPOINT_TABLES - {"checkpoint_migrations"})
            where = "" if thread_id is None else " WHERE thread_id = :t"
            return sum(
                int(conn.execute(text(f"SELECT COUNT(*) FROM {t}{where}"), {"t": thread_id}).scalar() or 0)
                for t in tables
            )
    finally:
        engine.dispose()


def test_a_recorded_tick_leaves_no_checkpoint_behind(tmp_path: Path, db_url: str) -> None:
    cfg = settings(data_dir(tmp_path), db_url)
    engine, factory = open_db(db_url)
    bars = [DATA_END - (5 - i) * HOUR for i in range(4)]
    try:
        with open_agent(
            cfg, run_id="cp", kind="paper", strategy="sma_cross", params=SMA, factory=factory
        ) as runner:
            outcomes = [runner.tick(bar) for bar in bars]
            assert [o.status for o in outcomes] == ["done"] * 4
            assert runner.checkpointer is not None
    finally:
        engine.dispose()
    for bar in bars:
        assert _checkpoint_rows(db_url, tick_thread_id("cp", bar)) == 0
    assert _checkpoint_rows(db_url) == 0
