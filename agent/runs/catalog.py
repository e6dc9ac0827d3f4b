"""Reading the `runs` table back: the newest runs, and runs by id (`tradegraph runs list|show|compare`).

Contracts:
- `list_runs` gives the newest runs first (creation time, then id), optionally of one kind.
- `get_runs` keeps the order of the ids given; an unknown id raises `ConfigError` naming the first one.
- Rows are returned detached from their session (read-only snapshots).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import Run
from agent.errors import ConfigError


def list_runs(factory: sessionmaker[Session], kind: str | None = None, limit: int = 20) -> list[Run]:
    """The most recent runs (newest first), optionally of one kind."""
    query = select(Run).order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
    if kind:
        query = query.where(Run.kind == kind)
    with factory() as session:
        return list(session.scalars(query))


def get_runs(factory: sessionmaker[Session], ids: Sequence[str]) -> list[Run]:
    """Runs by id, in the order given."""
    with factory() as session:
        found = {r.id: r for r in session.scalars(select(Run).where(Run.id.in_(list(ids))))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ConfigError(f"no run with id {missing[0]!r} (see: tradegraph runs list)")
    return [found[i] for i in ids]
