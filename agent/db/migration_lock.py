"""One migration at a time per database: a lock held while Alembic runs, so processes that start together on
a fresh (or older) database migrate it once, one after the other, and none fails.

Contracts:
- PostgreSQL: a session-level `pg_advisory_lock` on `MIGRATION_LOCK_KEY`, taken on a connection of its own
  (autocommit) and released when the migration ends, even on error (closing the connection releases it
  too, so a killed migrator never leaves it behind).
- SQLite: an exclusive `fcntl.flock` on the file `<database>.migrate.lock` next to the database (the lock
  goes away with the process). An in-memory database needs no lock.
- Whoever waited re-reads the schema revision after taking the lock (`agent.db.session.upgrade`), so the
  second migrator finds the work done.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

MIGRATION_LOCK_KEY = 0x7467_6D69_6772_6174  # "tgmigrat": any fixed 63-bit key, the same for every process
"""The PostgreSQL advisory lock key of tradegraph's migrations."""


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold the migration lock of the database at `url` for the duration of the block."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if not db or db == ":memory:":
            yield
            return
        with _file_lock(Path(f"{db}.migrate.lock")):
            yield
        return
    with _advisory_lock(url):
        yield


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def _advisory_lock(url: str) -> Iterator[None]:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
    finally:
        engine.dispose()
