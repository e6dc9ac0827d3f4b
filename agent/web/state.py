"""What the overview shows about the daemon: its health, lease and clocks, as one typed record.

Contracts:
- Read-only; built from `agent.daemon.health.read_health` (alive / degraded / stalled / stopped, computed
  once there) and `agent.daemon.lease.read_lease`, for the lease's run (or the newest daemon run).
- Times are milliseconds since the epoch, UTC: `clock_ms`, `last_bar_ts` and `next_bar_ts` on the daemon's
  clock (simulated in a replay, the wall clock live); `heartbeat_ms`, `next_tick_ms` and the journal's
  `finished_at` on the wall clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from agent.daemon.health import HealthState, read_health
from agent.daemon.lease import read_lease
from agent.market.candles import timeframe_ms
from agent.runs.queries import get_run, latest_run_id


@dataclass(frozen=True)
class TickView:
    """A journalled tick or failure."""

    bar_ts: int
    status: str
    reason: str | None
    finished_at: datetime | None


@dataclass(frozen=True)
class DaemonView:
    """The daemon's health and clocks (module contract)."""

    state: HealthState
    reason: str | None
    run_id: str | None
    holder: str | None
    mode: str | None
    host: str | None
    pid: int | None
    heartbeat_ms: int | None
    heartbeat_age_s: float | None
    clock_ms: int | None
    last_bar_ts: int | None
    next_tick_ms: int | None
    """When the daemon wakes up next, on the wall clock."""
    next_bar_ts: int | None
    """The bar its next tick processes (open time, daemon clock): the one after the last processed."""
    note: str | None
    last_tick: TickView | None
    last_error: TickView | None
    failures: int


def daemon_view(factory: sessionmaker[Session], now_ms: int | None = None) -> DaemonView:
    """The daemon's state on the database behind `factory`."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    lease = read_lease(factory)
    run_id = lease.run_id if lease is not None and lease.run_id else latest_run_id(factory, "daemon")
    health = read_health(factory, now, run_id)
    tick = health.last_tick
    run = get_run(factory, run_id) if run_id else None
    last = (
        lease.last_bar_ts
        if lease is not None and lease.last_bar_ts is not None
        else (tick.bar_ts if tick else None)
    )
    next_bar = last + timeframe_ms(run.timeframe) if run is not None and last is not None else None
    error = health.last_error
    return DaemonView(
        state=health.state,
        reason=health.reason,
        run_id=run_id,
        holder=lease.holder if lease else None,
        mode=lease.mode if lease else None,
        host=lease.host if lease else None,
        pid=lease.pid if lease else None,
        heartbeat_ms=lease.heartbeat_ms if lease else None,
        heartbeat_age_s=lease.age_s() if lease else None,
        clock_ms=lease.clock_ms if lease else None,
        last_bar_ts=lease.last_bar_ts if lease else None,
        next_tick_ms=lease.next_tick_ms if lease else None,
        next_bar_ts=next_bar,
        note=lease.note if lease else None,
        last_tick=TickView(tick.bar_ts, tick.status, tick.reason, tick.finished_at) if tick else None,
        last_error=TickView(error.bar_ts, error.status, error.reason, error.finished_at) if error else None,
        failures=health.failures,
    )
