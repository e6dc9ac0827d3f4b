"""The daemon's tick journal (`daemon_ticks`): one row per bar ticked and per wake-up skipped.

Contracts:
- `record` writes one row in its own transaction, after the tick's ledger transaction: the ledger (a balance
  snapshot per bar) stays the truth about what was processed, the journal says when and why.
- Statuses (`TickStatus`): `done`, `resumed` (finished from a checkpoint), `already_done`, `skipped`
  (nothing traded; the reason says why: exchange fault, stale data, a bar the graph could not settle),
  `error` (an unexpected fault, in a tick or anywhere in a wake-up; the bar is retried at the next
  wake-up), `discarded` (the bar's checkpoint was deleted after failing too often in a row; the bar is
  re-run from scratch right after). `TICKED` ran, `FAILED` did not.
- `failures_in_a_row(bar)` counts the bar's `error` rows since its last row of any other status: the
  persisted retry count (it survives restarts).
- Reasons are one line, at most `MAX_REASON` characters, stored through `agent.textsafe.for_storage` (a
  reason may quote an exchange's or a model's text: NUL and lone surrogates become U+FFFD).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import DaemonTick, utcnow
from agent.db.session import transaction
from agent.textsafe import for_storage

MAX_REASON = 2000
TickStatus = Literal["done", "resumed", "already_done", "skipped", "error", "discarded"]
TICKED: tuple[TickStatus, ...] = ("done", "resumed")
FAILED: tuple[TickStatus, ...] = ("skipped", "error")
PROBLEMS: tuple[TickStatus, ...] = ("skipped", "error", "discarded")


@dataclass(frozen=True)
class JournalEntry:
    """One row of the journal."""

    run_id: str
    bar_ts: int
    status: TickStatus
    reason: str | None = None
    orders: int = 0
    fills: int = 0
    equity: float | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


def one_line(text: str) -> str:
    """`text` on one line, cut to `MAX_REASON` characters, storable."""
    flat = " ".join(str(text).split())
    return for_storage(flat if len(flat) <= MAX_REASON else flat[: MAX_REASON - 3] + "...")


def record(factory: sessionmaker[Session], entry: JournalEntry, holder: str | None = None) -> None:
    """Append `entry` to the journal."""
    now = utcnow()
    with transaction(factory) as session:
        session.add(
            DaemonTick(
                run_id=entry.run_id,
                bar_ts=entry.bar_ts,
                status=entry.status,
                reason=one_line(entry.reason) if entry.reason else None,
                orders=entry.orders,
                fills=entry.fills,
                equity=entry.equity,
                holder=holder,
                started_at=entry.started_at or now,
                finished_at=entry.finished_at or now,
            )
        )


def failures_in_a_row(factory: sessionmaker[Session], run_id: str, bar_ts: int) -> tuple[int, str | None]:
    """How often in a row `bar_ts` failed (`error` rows since its last other row), and the last reason."""
    query = (
        select(DaemonTick.status, DaemonTick.reason)
        .where(DaemonTick.run_id == run_id, DaemonTick.bar_ts == bar_ts)
        .order_by(DaemonTick.id.desc())
    )
    count, last = 0, None
    with factory() as session:
        for status, reason in session.execute(query):
            if status != "error":
                break
            last = last if count else reason
            count += 1
    return count, last


def recent(
    factory: sessionmaker[Session],
    run_id: str,
    statuses: tuple[TickStatus, ...] | None = None,
    limit: int = 10,
) -> list[JournalEntry]:
    """The newest rows of `run_id` (optionally only some statuses), newest first."""
    query = select(DaemonTick).where(DaemonTick.run_id == run_id)
    if statuses:
        query = query.where(DaemonTick.status.in_(statuses))
    with factory() as session:
        rows = session.scalars(query.order_by(DaemonTick.id.desc()).limit(limit)).all()
    return [
        JournalEntry(
            r.run_id,
            int(r.bar_ts),
            _status(r.status),
            r.reason,
            r.orders,
            r.fills,
            r.equity,
            r.started_at,
            r.finished_at,
        )
        for r in rows
    ]


def _status(value: str) -> TickStatus:
    """A stored status as the closed set it belongs to (a value outside it is a corrupt journal)."""
    for status in get_args(TickStatus):
        if value == status:
            return status  # type: ignore[no-any-return]
    raise ValueError(f"unknown tick status in the journal: {value!r}")
