"""Backtest and sweep runs in the `runs` table: create, finish, fail, list, fetch.

Contracts:
- A run row is written when the work starts (`status="running"`), after all user input was validated, and
  is then finished (`done`, with metrics and the report path) or failed (`failed`, with the error) — never
  left half-written; each step is one transaction.
- Run ids sort by creation time: `bt-YYYYmmdd-HHMMSS-xxxxxx` (backtest), `sw-...` (sweep; its trials are
  `sw-...-NNNN`), at most 32 characters.
- JSON columns hold plain data only: NaN and infinities become null (PostgreSQL's JSON has no NaN).
- Unknown ids in `get_runs` raise `ConfigError` naming the first one.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import Run, utcnow
from agent.db.session import transaction
from agent.errors import ConfigError

PREFIXES = {"backtest": "bt", "sweep": "sw"}


def new_run_id(kind: str) -> str:
    """A fresh, time-sortable run id for `kind`."""
    return f"{PREFIXES.get(kind, kind[:2])}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def json_safe(value: Any) -> Any:
    """`value` with NaN/inf floats replaced by None and numpy scalars made plain, recursively."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def start_runs(factory: sessionmaker[Session], runs: Iterable[Mapping[str, Any]]) -> None:
    """Insert runs (keyword dicts of `Run` columns) in one transaction; status defaults to running."""
    with transaction(factory) as session:
        for fields in runs:
            data = {
                k: json_safe(v) if k in ("params", "config", "metrics", "symbols") else v
                for k, v in fields.items()
            }
            data.setdefault("status", "running")
            session.add(Run(**data))


def finish_run(
    factory: sessionmaker[Session],
    run_id: str,
    metrics: Mapping[str, Any],
    report_path: str | None = None,
) -> None:
    """Mark a run done with its metrics and report path."""
    with transaction(factory) as session:
        run = session.get_one(Run, run_id)
        run.status = "done"
        run.metrics = json_safe(metrics)
        run.report_path = report_path
        run.finished_at = utcnow()


def fail_run(factory: sessionmaker[Session], run_id: str, error: str) -> None:
    """Mark a run failed with a one-line error."""
    with transaction(factory) as session:
        run = session.get(Run, run_id)
        if run is not None:
            run.status = "failed"
            run.error = error.splitlines()[0][:2000] if error else "failed"
            run.finished_at = utcnow()


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
