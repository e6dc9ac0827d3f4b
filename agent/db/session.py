"""Engines, sessions and migrations for SQLite (default) and PostgreSQL.

Contracts:
- `make_engine(url)` turns on WAL and foreign keys for SQLite and creates the SQLite file's folder.
- `upgrade(url)` / `downgrade(url, rev)` run the packaged Alembic migrations (no alembic.ini is needed)
  under a migration lock (`agent.db.migration_lock`), so concurrent starts on a fresh database migrate it
  once and none fails. A database at a revision these migrations do not know (written by a newer
  tradegraph) raises `SchemaError` with one line naming both revisions, and is left untouched.
- `open_db(url)` = engine, upgraded to head, plus a `sessionmaker`: what commands that write call at start.
- `open_db(url, migrate=False)` is for commands that only read (`status`, `runs list`, `decisions`, ...):
  it never migrates nor creates anything. A database without a schema yet (fresh: no file, or no
  `alembic_version`) reads as an empty ledger: the factory is bound to an empty in-memory database at head.
  A database behind head, or ahead of it, raises `SchemaError` (one line, the way out in it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from agent.db.migration_lock import migration_lock
from agent.errors import TradegraphError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class SchemaError(TradegraphError):
    """The database's schema revision is not the one this code works with: stop, nothing written."""


@dataclass(frozen=True)
class Revisions:
    """The database's schema revision (None: no schema yet) and the newest one these migrations know."""

    current: str | None
    head: str
    known: frozenset[str]

    @property
    def newer(self) -> bool:
        """The database was migrated by a newer tradegraph."""
        return self.current is not None and self.current not in self.known


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout (30 s, or the URL's `?timeout=`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        if "timeout" not in parsed.query:  # the URL's own busy timeout (seconds) wins
            kwargs.setdefault("connect_args", {"timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and `url`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def revisions(url: str) -> Revisions:
    """The schema revision of the database at `url` (never creates it) and the migrations' head."""
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_current_head()
    assert head is not None, "the packaged migrations have one head"
    known = frozenset(s.revision for s in script.walk_revisions())
    if _missing_sqlite_file(url):
        return Revisions(None, head, known)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return Revisions(current, head, known)


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`, under the migration lock; `SchemaError` if the db is newer."""
    state = revisions(url)
    if revision == "head" and state.current == state.head:
        return  # the common start-up: nothing to migrate, no lock taken
    with migration_lock(url):
        _refuse_newer(url, revisions(url))
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Revert migrations down to `revision`, under the migration lock."""
    with migration_lock(url):
        _refuse_newer(url, revisions(url))
        command.downgrade(alembic_config(url), revision)


def open_db(url: str, *, migrate: bool = True) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory: upgraded to head (`migrate`), or read-only (see the module contract)."""
    if migrate:
        upgrade(url)
        engine = make_engine(url)
        return engine, sessionmaker(engine, expire_on_commit=False)
    state = revisions(url)
    _refuse_newer(url, state)
    if state.current is None:
        engine = _empty_schema()
    elif state.current != state.head:
        raise SchemaError(
            f"the database at {_mask_free_url(url)} is at schema revision {state.current}, older than this "
            f"tradegraph's {state.head}: run `tradegraph db upgrade` (or any command that writes) first"
        )
    else:
        engine = make_engine(url)
    return engine, sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    with factory() as session, session.begin():
        yield session


def _refuse_newer(url: str, state: Revisions) -> None:
    if state.newer:
        raise SchemaError(
            f"the database at {_mask_free_url(url)} is at schema revision {state.current}, newer than this "
            f"tradegraph knows (its latest is {state.head}): upgrade tradegraph, or use another database"
        )


def _missing_sqlite_file(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    db = parsed.database
    return not db or db == ":memory:" or not Path(db).exists()


def _empty_schema() -> Engine:
    """An in-memory SQLite database migrated to head: how a database without a schema reads."""
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    cfg = alembic_config("sqlite://")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return engine


def _mask_free_url(url: str) -> str:
    """`url` with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)
