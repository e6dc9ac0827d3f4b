"""The daemon's health: one typed record computed from the lease, the tick journal and recent failures.

`tradegraph status` shows it (a dashboard can reuse it). A fresh heartbeat alone is not health:

    stopped   no daemon holds the lease for the run (none ever ran, or it was released: the note says why)
    stalled   the lease is held but nothing has run for more than `STALL_BARS` bar intervals of the daemon's
              clock (no bar processed, no attempt journalled), or the heartbeat is older than the lease
              TTL (the process died or hangs)
    degraded  a tick or wake-up failed within the last `RECENT_BARS` bars journalled, however long it has
              been failing (the last error says what), or the heartbeat is late: older than two heartbeat
              intervals, but within the TTL (the daemon cannot write to its database)
    alive     none of the above

Contracts:
- `assess(...)` is pure: lease, journal rows (newest first), the reader's wall-clock now and the run's
  bars (`RunBars`: interval, first bar, last bar in the ledger) in, `Health` out.
  `read_health(factory, now_ms, run_id)` reads those inputs and calls it.
- The heartbeat's age is judged by the database's clock at the read (`LeaseInfo.age_s()`), as the lease is.
- The daemon's clock is what it writes into the lease at every heartbeat (`clock_ms`): the wall clock when
  live, the simulated now in a replay (a live lease without it falls back to `now_ms`). "Nothing has run"
  compares that clock with the close of the last bar processed (the ledger's, or the journal's last
  `done`/`resumed`; before any, the run's first bar), and the journal: a daemon still writing rows, ticks
  or failures (catching up after downtime, or failing: then degraded), within `STALL_BARS` bar intervals of
  wall time when live or one heartbeat interval in a replay, is not stalled.
- Failures are the journal's `error` and `skipped` rows; `discarded` (a poisoned checkpoint dropped) and
  `already_done` are neither failures nor ticks.
- `heartbeat_interval_s(ttl)` is how often the daemon renews its lease; the daemon and this module share it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from agent.daemon import journal
from agent.daemon.journal import FAILED, TICKED, JournalEntry
from agent.daemon.lease import LeaseInfo, read_lease
from agent.db.models import BalanceSnapshot, Run
from agent.market.candles import timeframe_ms

HealthState = Literal["alive", "degraded", "stalled", "stopped"]
STALL_BARS = 2
"""A held lease with no tick for more than this many bar intervals of the daemon's clock is stalled."""
RECENT_BARS = 2
"""A failure within this many bars of the newest journalled bar makes the daemon degraded."""
JOURNAL_ROWS = 50
"""Journal rows `read_health` looks at."""


@dataclass(frozen=True)
class RunBars:
    """What health needs to know about the run's bars."""

    tf_ms: int
    first_bar_ms: int | None = None
    """The run's first bar (open time)."""
    processed_ms: int | None = None
    """The newest bar the ledger holds for the run (the truth about what was processed)."""


@dataclass(frozen=True)
class Health:
    """How the daemon is doing, and why."""

    state: HealthState
    reason: str | None = None
    """One line: why the state is not `alive` (None when it is)."""
    last_error: JournalEntry | None = None
    """The newest failed tick or wake-up among the rows read (however old)."""
    last_tick: JournalEntry | None = None
    """The newest tick that ran (`done` or `resumed`)."""
    failures: int = 0
    """Failures journalled since `last_tick`."""


def heartbeat_interval_s(ttl_s: float) -> float:
    """How often a daemon renews its lease: a third of the TTL, at most 10 s, at least 50 ms."""
    return max(0.05, min(ttl_s / 3.0, 10.0))


def assess(
    lease: LeaseInfo | None, rows: Sequence[JournalEntry], now_ms: int, bars: RunBars | None
) -> Health:
    """The health of the daemon advancing the run whose journal `rows` are given (see the module contract)."""
    last_tick = next((r for r in rows if r.status in TICKED), None)
    last_error = next((r for r in rows if r.status in FAILED), None)
    failures = 0
    for row in rows:
        if row.status in TICKED:
            break
        failures += row.status in FAILED

    def health(state: HealthState, reason: str | None = None) -> Health:
        return Health(state, reason, last_error, last_tick, failures)

    if lease is None:
        return health("stopped", "no daemon runs on this database")
    if lease.holder is None:
        return health("stopped", lease.note or "stopped")
    age = lease.age_s() or 0.0
    if not lease.alive():
        return health(
            "stalled",
            f"no heartbeat for {age:.1f} s (lease ttl {lease.ttl_s:g} s): the daemon process died or hangs",
        )
    stalled = _stalled(lease, rows, now_ms, bars) if bars is not None else None
    if stalled:
        return health("stalled", stalled)
    every = heartbeat_interval_s(lease.ttl_s)
    if age > 2 * every:
        return health(
            "degraded",
            f"heartbeat {age:.1f} s old (renewed every {every:g} s): the daemon cannot "
            "write to its database, or hangs",
        )
    failed = _recent_failure(rows, bars.tf_ms) if bars is not None else (last_error if failures else None)
    if failed is not None:
        if failures:
            what = "attempt" if failures == 1 else "attempts"
            return health("degraded", f"{failures} failed {what} since the last tick: {_describe(failed)}")
        return health(
            "degraded",
            f"trading resumed after a failure within the last {RECENT_BARS} bars: {_describe(failed)}",
        )
    return health("alive")


def read_health(factory: sessionmaker[Session], now_ms: int, run_id: str | None = None) -> Health:
    """The health of the daemon on the database behind `factory`, for `run_id` (default: the lease's run)."""
    lease = read_lease(factory)
    run_id = run_id or (lease.run_id if lease is not None else None)
    if run_id is None:
        return assess(lease, [], now_ms, None)
    bars = None
    with factory() as session:
        run = session.get(Run, run_id)
        if run is not None:
            processed = session.scalar(
                select(func.max(BalanceSnapshot.bar_ts)).where(BalanceSnapshot.run_id == run_id)
            )
            first = int(run.start_ts) if run.start_ts is not None else None
            bars = RunBars(timeframe_ms(run.timeframe), first, None if processed is None else int(processed))
    rows = journal.recent(factory, run_id, limit=JOURNAL_ROWS)
    if lease is not None and lease.run_id != run_id:  # the daemon on this database advances another run
        return replace(assess(None, rows, now_ms, bars), reason=f"the daemon here runs {lease.run_id}")
    return assess(lease, rows, now_ms, bars)


# ---- helpers -----------------------------------------------------------------------------------------------


def _stalled(lease: LeaseInfo, rows: Sequence[JournalEntry], now_ms: int, bars: RunBars) -> str | None:
    """Why nothing has run for more than `STALL_BARS` bars of the daemon's clock, or None."""
    tf = bars.tf_ms
    live = lease.mode != "replay"
    daemon_now = lease.clock_ms if lease.clock_ms is not None or not live else now_ms
    ticked = next((r.bar_ts for r in rows if r.status in TICKED), None)
    processed = max((b for b in (ticked, bars.processed_ms) if b is not None), default=None)
    last = processed if processed is not None else bars.first_bar_ms
    since = None if last is None else last + tf  # the close of the last bar processed, or of the first one
    if daemon_now is None or since is None or daemon_now - since <= STALL_BARS * tf:
        return None
    written = _ms(rows[0].finished_at) if rows else None
    active_ms = STALL_BARS * tf if live else heartbeat_interval_s(lease.ttl_s) * 1000
    if written is not None and now_ms - written <= active_ms:
        return None  # still at work: catching up, or failing (degraded)
    what = f"bar {_iso(processed)}" if processed is not None else "none yet"
    behind = (daemon_now - since) / tf
    return f"no tick has run for {behind:.1f} bars of the daemon's clock (last processed: {what})"


def _recent_failure(rows: Sequence[JournalEntry], tf_ms: int) -> JournalEntry | None:
    """The newest failure within `RECENT_BARS` bars of the newest journalled bar."""
    if not rows:
        return None
    horizon = max(r.bar_ts for r in rows) - RECENT_BARS * tf_ms
    return next((r for r in rows if r.status in FAILED and r.bar_ts >= horizon), None)


def _describe(entry: JournalEntry) -> str:
    return f"{entry.status} at bar {_iso(entry.bar_ts)}: {entry.reason or 'no reason recorded'}"


def _ms(when: datetime | None) -> int | None:
    if when is None:
        return None
    return int((when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
