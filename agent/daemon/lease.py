"""One daemon per database: a lease row with a heartbeat, claimed and renewed by compare-and-swap.

Contracts:
- The lease is the single `daemon_leases` row named `LEASE_NAME`. Its `epoch` grows by one at every
  acquisition; claiming is `UPDATE ... WHERE epoch = <the epoch just read>`, so of two starters racing for
  a free or stale lease exactly one wins (plain SQL: the same on SQLite and PostgreSQL).
- `acquire` succeeds when there is no row yet, when the row was released (`holder` NULL), when its
  heartbeat is older than its TTL (a crashed daemon), or when its holder ran on this host and that process
  no longer exists (a SIGKILLed daemon need not wait for the TTL). Otherwise it raises `LeaseHeld`, whose
  one-line message names the holder and the heartbeat's age.
- `heartbeat` renews the lease (and stores the status fields `tradegraph status` shows) only while this
  process still holds it; if another daemon took it over, it raises `LeaseLost` and the caller must stop.
- `release` frees the lease if still held (idempotent). Times are wall-clock ms from the injected clock.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from agent.daemon.clock import Clock, SystemClock
from agent.db.models import DaemonLease
from agent.db.session import transaction
from agent.errors import TradegraphError

LEASE_NAME = "tradegraph-daemon"
STATUS_FIELDS = frozenset({"run_id", "mode", "clock_ms", "last_bar_ts", "next_tick_ms", "note"})


class LeaseHeld(TradegraphError):
    """Another live daemon holds this database's lease."""


class LeaseLost(TradegraphError):
    """This daemon's lease was taken over (its heartbeat stalled past the TTL)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: a unique id, plus host and pid to recognise a dead local holder."""

    id: str
    host: str
    pid: int

    @classmethod
    def current(cls) -> Holder:
        """This process."""
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"{host}:{pid}:{uuid.uuid4().hex[:8]}"[:128], host, pid)


@dataclass(frozen=True)
class LeaseInfo:
    """The lease row as read."""

    epoch: int
    holder: str | None
    host: str | None
    pid: int | None
    run_id: str | None
    mode: str | None
    ttl_s: float
    heartbeat_ms: int | None
    clock_ms: int | None
    last_bar_ts: int | None
    next_tick_ms: int | None
    note: str | None

    def age_s(self, now_ms: int) -> float | None:
        """Seconds since the last heartbeat."""
        return None if self.heartbeat_ms is None else (now_ms - self.heartbeat_ms) / 1000.0

    def alive(self, now_ms: int) -> bool:
        """Held, with a heartbeat younger than the TTL."""
        age = self.age_s(now_ms)
        return self.holder is not None and age is not None and age <= self.ttl_s


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Lease:
    """This process's handle on the database's daemon lease."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        holder: Holder,
        ttl_s: float,
        *,
        clock: Clock | None = None,
        name: str = LEASE_NAME,
        is_alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self.factory = factory
        self.holder = holder
        self.ttl_s = float(ttl_s)
        self.clock = clock or SystemClock()
        self.name = name
        self.is_alive = is_alive
        self.epoch: int | None = None
        self.took_over: str | None = None
        """Why a previous holder's lease could be taken, when it was (for the start-up log)."""

    def read(self) -> LeaseInfo | None:
        """The lease row, or None when no daemon ever ran on this database."""
        return read_lease(self.factory, self.name)

    def acquire(self, run_id: str, mode: str) -> None:
        """Claim the lease (see the module contract); `LeaseHeld` if another live daemon has it."""
        info = self.read()
        if info is None and self._insert(run_id, mode):
            return
        info = info or self.read()
        assert info is not None
        why = self.claimable(info)
        if why is None:
            raise LeaseHeld(self.describe(info))
        if not self.try_claim(info.epoch, run_id, mode):
            raise LeaseHeld(self.describe(self.read() or info))
        self.took_over = why if info.holder is not None else None

    def claimable(self, info: LeaseInfo) -> str | None:
        """Why the lease `info` may be claimed now, or None when its holder is alive."""
        now = self.clock.now_ms()
        if info.holder is None:
            return "released"
        if not info.alive(now):
            return f"stale: {info.holder} last beat {info.age_s(now) or 0:.1f} s ago (ttl {info.ttl_s:g} s)"
        if info.host == self.holder.host and info.pid is not None and info.pid != self.holder.pid:
            if not self.is_alive(info.pid):
                return f"dead: {info.holder} (pid {info.pid}) no longer runs on this host"
        return None

    def try_claim(self, seen_epoch: int, run_id: str, mode: str) -> bool:
        """Compare-and-swap: take the lease if its epoch is still `seen_epoch`."""
        now = self.clock.now_ms()
        values = self._claim_values(run_id, mode, now) | {"epoch": seen_epoch + 1}
        with transaction(self.factory) as session:
            result = session.execute(
                update(DaemonLease)
                .where(DaemonLease.name == self.name, DaemonLease.epoch == seen_epoch)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            won = _rowcount(result) == 1
        if won:
            self.epoch = seen_epoch + 1
        return won

    def heartbeat(self, **status: Any) -> None:
        """Renew the lease and store status fields; `LeaseLost` if this process no longer holds it."""
        unknown = set(status) - STATUS_FIELDS
        if unknown:
            raise ValueError(f"unknown lease status fields {sorted(unknown)}")
        if not self._update_own({"heartbeat_ms": self.clock.now_ms(), **status}):
            raise LeaseLost(f"the daemon lease was taken over by another process (epoch {self.epoch})")

    def release(self, note: str | None = None) -> bool:
        """Free the lease if this process still holds it; True when it did."""
        if self.epoch is None:
            return False
        done = self._update_own({"holder": None, "released_ms": self.clock.now_ms(), "note": note})
        self.epoch = None
        return done

    def describe(self, info: LeaseInfo) -> str:
        """One line about the holder of `info`, for the refusal message."""
        age = info.age_s(self.clock.now_ms())
        beat = "never beat" if age is None else f"heartbeat {age:.1f} s ago"
        where = f"pid {info.pid} on {info.host}" if info.pid is not None else str(info.holder)
        return (
            f"another daemon holds this database's lease (run {info.run_id}, {where}, {beat}); "
            f"stop it first, or wait {info.ttl_s:g} s for a crashed daemon's lease to expire"
        )

    # ---- helpers -----------------------------------------------------------------------------------------

    def _claim_values(self, run_id: str, mode: str, now: int) -> dict[str, Any]:
        return {
            "holder": self.holder.id, "host": self.holder.host, "pid": self.holder.pid, "run_id": run_id,
            "mode": mode, "ttl_s": self.ttl_s, "acquired_ms": now, "heartbeat_ms": now, "released_ms": None,
            "clock_ms": None, "last_bar_ts": None, "next_tick_ms": None, "note": None,
        }

    def _insert(self, run_id: str, mode: str) -> bool:
        try:
            with transaction(self.factory) as session:
                values = self._claim_values(run_id, mode, self.clock.now_ms())
                session.add(DaemonLease(name=self.name, epoch=1, **values))
        except IntegrityError:
            return False
        self.epoch = 1
        return True

    def _update_own(self, values: dict[str, Any]) -> bool:
        if self.epoch is None:
            return False
        with transaction(self.factory) as session:
            result = session.execute(
                update(DaemonLease)
                .where(DaemonLease.name == self.name, DaemonLease.epoch == self.epoch,
                       DaemonLease.holder == self.holder.id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1


def read_lease(factory: sessionmaker[Session], name: str = LEASE_NAME) -> LeaseInfo | None:
    """The lease row of the database behind `factory` (for `tradegraph status`)."""
    with factory() as session:
        row = session.scalar(select(DaemonLease).where(DaemonLease.name == name))
        return None if row is None else _info(row)


def _info(row: DaemonLease) -> LeaseInfo:
    return LeaseInfo(
        epoch=row.epoch, holder=row.holder, host=row.host, pid=row.pid, run_id=row.run_id, mode=row.mode,
        ttl_s=row.ttl_s, heartbeat_ms=row.heartbeat_ms, clock_ms=row.clock_ms, last_bar_ts=row.last_bar_ts,
        next_tick_ms=row.next_tick_ms, note=row.note,
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
