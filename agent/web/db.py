"""The dashboard's two ways into the database: read-only for every query, writable for the controls only.

Contracts:
- `open_reader(url)`: every connection refuses writes. SQLite: a read-only URI connection (`mode=ro`) with
  `PRAGMA query_only` on top; PostgreSQL: `default_transaction_read_only` set at connect. A SQLite file
  that does not exist is an error (the dashboard never creates a database).
- `open_controls(url)`: an ordinary connection, used only by `agent.db.controls.set_control` (the
  `control_events` table). The schema must be at this tradegraph's head (`SchemaError` otherwise, naming
  `tradegraph db upgrade`); nothing here migrates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from agent.db.session import make_engine, open_db
from agent.errors import ConfigError

BUSY_TIMEOUT_S = 5.0


def open_reader(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and factory over `url` whose connections refuse writes (see the module contract)."""
    open_db(url, migrate=False)[0].dispose()  # refuses a database older or newer than this tradegraph
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if not db or db == ":memory:" or not Path(db).exists():
            raise ConfigError(
                f"no SQLite database at {db!r}: start the daemon (or any command that writes) first"
            )
        path = Path(db).resolve().as_posix()
        engine = create_engine(
            f"sqlite:///file:{path}?mode=ro&uri=true",
            connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        event.listen(engine, "connect", _sqlite_query_only)
    else:
        engine = make_engine(url, connect_args={"options": "-c default_transaction_read_only=on"})
    return engine, sessionmaker(engine, expire_on_commit=False)


def open_controls(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and factory for writing `control_events` (see the module contract)."""
    return open_db(url, migrate=False)


def _sqlite_query_only(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only = ON")
    cur.close()
