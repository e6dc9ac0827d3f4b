"""What every tool runs with: the settings, a read-only view of the database and where charts go.

Contracts:
- `ToolContext` is built once per question (or per MCP server) and passed to every tool call.
- The database is opened lazily and read-only twice over: without migrations (`open_db(migrate=False)`),
  and with the connection itself refusing writes (SQLite `PRAGMA query_only`, PostgreSQL
  `default_transaction_read_only`). A tool that tried to write would fail; none does. A database that
  does not exist yet reads as an empty in-memory schema (`open_db`), nothing to protect.
- `reports_dir` is where chart files are saved (`<data_dir>/reports/ask/` by default).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker


@dataclass
class ToolContext:
    """Settings, a lazily opened read-only database, and the chart folder."""

    settings: Settings
    reports_dir: Path | None = None
    _db: tuple[Engine, sessionmaker[Session]] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def charts_dir(self) -> Path:
        """The folder charts are written to."""
        return self.reports_dir or self.settings.reports_dir / "ask"

    @property
    def factory(self) -> sessionmaker[Session]:
        """A session factory whose connections refuse writes."""
        with self._lock:  # the MCP server calls tools from worker threads
            if self._db is None:
                self._db = open_read_only(self.settings.db_url)
            return self._db[1]

    def close(self) -> None:
        """Dispose of the database engine, if one was opened."""
        with self._lock:
            if self._db is not None:
                self._db[0].dispose()
                self._db = None


def open_read_only(url: str) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and factory over `url` whose every connection refuses writes."""
    from sqlalchemy import event

    from agent.db.session import open_db

    engine, factory = open_db(url, migrate=False)
    sqlite = engine.dialect.name == "sqlite"

    def _read_only(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA query_only = ON" if sqlite else "SET default_transaction_read_only = on")
        cur.close()
        if not sqlite:  # the SET ran in the driver's implicit transaction: keep it past the pool's rollback
            dbapi_conn.commit()

    if engine.url.database not in (None, "", ":memory:"):  # a missing database reads as an empty schema
        event.listen(engine, "connect", _read_only)
        engine.dispose()  # no connection opened before the listener survives
    return engine, factory
