"""Reading the `runs` table back: the newest runs, sweeps as one entry each, and runs by id
(`tradegraph runs list|show|compare`).

Contracts:
- `list_runs` gives the newest runs first (creation time, then id), optionally of one kind.
- `list_entries` is the same list with each sweep's trials folded into one `SweepGroup` (its best trial,
  rank 1 = `<sweep id>-0001`, and its trial count), placed where the sweep's newest trial would be;
  `limit` counts entries, so one sweep of 1,000 trials takes one row. `sweep_trials` lists one sweep's
  trials in rank order.
- `get_runs` keeps the order of the ids given; an unknown id raises `ConfigError` naming the first one.
- Rows are returned detached from their session (read-only snapshots).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import Run
from agent.errors import ConfigError
from agent.runs.lifecycle import RunKind, sweep_of, trial_run_id

_BEST = trial_run_id("x", 1)[1:]
"""The id suffix of a sweep's best trial (`-0001`)."""


@dataclass(frozen=True)
class SweepGroup:
    """One sweep in a run list: its best trial and how many trials it recorded."""

    sweep_id: str
    best: Run
    trials: int


def list_runs(factory: sessionmaker[Session], kind: str | None = None, limit: int = 20) -> list[Run]:
    """The most recent runs (newest first), optionally of one kind."""
    query = select(Run).order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
    if kind:
        query = query.where(Run.kind == kind)
    with factory() as session:
        return list(session.scalars(query))


def list_entries(
    factory: sessionmaker[Session], kind: str | None = None, limit: int = 20
) -> list[Run | SweepGroup]:
    """The most recent runs, newest first, each sweep folded into one `SweepGroup`."""
    sweep = RunKind.SWEEP.value
    query = (
        select(Run)
        .where(or_(Run.kind != sweep, Run.id.endswith(_BEST, autoescape=True)))
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(limit)
    )
    if kind:
        query = query.where(Run.kind == kind)
    with factory() as session:
        rows = list(session.scalars(query))
        counts = {
            r.id: session.scalar(
                select(func.count())
                .select_from(Run)
                .where(Run.kind == sweep, Run.id.startswith(sweep_of(r.id) + "-", autoescape=True))
            )
            for r in rows
            if r.kind == sweep
        }
    return [SweepGroup(sweep_of(r.id), r, int(counts[r.id] or 0)) if r.id in counts else r for r in rows]


def sweep_trials(factory: sessionmaker[Session], sweep_id: str) -> list[Run]:
    """The trials of one sweep, best first; `ConfigError` when it recorded none."""
    query = (
        select(Run)
        .where(Run.kind == RunKind.SWEEP.value, Run.id.startswith(sweep_id + "-", autoescape=True))
        .order_by(Run.id)
    )
    with factory() as session:
        trials = [r for r in session.scalars(query) if sweep_of(r.id) == sweep_id]
    if not trials:
        raise ConfigError(f"no sweep with id {sweep_id!r} (see: tradegraph runs list --kind sweep)")
    return trials


def get_runs(factory: sessionmaker[Session], ids: Sequence[str]) -> list[Run]:
    """Runs by id, in the order given."""
    with factory() as session:
        found = {r.id: r for r in session.scalars(select(Run).where(Run.id.in_(list(ids))))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ConfigError(f"no run with id {missing[0]!r} (see: tradegraph runs list)")
    return [found[i] for i in ids]
