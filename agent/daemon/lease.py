"""One writer per database: a lease row with a heartbeat, claimed and renewed by compare-and-swap, judged by
the database's clock, and fencing the holder's ledger writes.

Contracts:
- The lease is the single `daemon_leases` row named `LEASE_NAME`. Its `epoch` grows by one at every
  acquisition; claiming is `UPDATE ... WHERE epoch = <the epoch just read> AND <still claimable>`, so of two
  starters racing for a free or stale lease exactly one wins (plain SQL: the same on SQLite and PostgreSQL).
  The daemon holds it for its lifetime (`mode` live | replay), `tradegraph tick` for one tick (`tick`).
- Every time in the row is the database's clock (`agent.db.now.db_now_ms`), and staleness is decided in the
  claim's WHERE clause with that clock: a starter whose own clock runs ahead cannot take a live lease. No
  host's wall clock is read here.
- `acquire` succeeds when there is no row yet, when the row was released (`holder` NULL), when its
  heartbeat is older than its TTL (a crashed daemon), or when its holder ran on this host and that process
  no longer exists (a SIGKILLed daemon need not wait for the TTL). Otherwise it raises `LeaseHeld`, whose
  one-line message names the holder and the heartbeat's age.
- Acquiring fences the factory the lease was built with (`agent.db.fence`): from then on each ledger tick
  written through it checks, inside its own transaction, that this holder still has this epoch, and
  raises `LeaseLost` (writing nothing) once the lease was taken over or released. One `Lease` per factory
  (per process): another `Lease` acquiring through the same factory would fence it with its own epoch.
- `heartbeat` renews the lease (and stores the status fields `tradegraph status` shows) only while this
  process still holds it; if another process took it over, it raises `LeaseLost` and the caller must stop.
- `release` frees the lease if still held (idempotent). Its note (and a heartbeat's) is free text, stored
  through `agent.textsafe.for_storage`.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from agent.db.fence import LeaseFence, LeaseLost, fence_writes
from agent.db.models import DaemonLease
from agent.db.now import db_now_ms
from agent.db.session import transaction
from agent.errors import TradegraphError
from agent.textsafe import for_storage

__all__ = ["LEASE_NAME", "Holder", "Lease", "LeaseHeld", "LeaseInfo", "LeaseLost", "pid_alive", "read_lease"]

LEASE_NAME = "tradegraph-daemon"
STATUS_FIELDS = frozenset({"run_id", "mode", "clock_ms", "last_bar_ts", "next_tick_ms", "note"})


class LeaseHeld(TradegraphError):
    """Another live process (a daemon, or a `tradegraph tick`) holds this database's lease."""


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
    """The lease row as read, with the database's clock at the read (`read_ms`, left out of equality)."""

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
    read_ms: int = field(default=0, compare=False)

    def age_s(self, now_ms: int | None = None) -> float | None:
        """Seconds since the last heartbeat at `now_ms` (default: the database's clock at the read)."""
        now = self.read_ms if now_ms is None else now_ms
        return None if self.heartbeat_ms is None else (now - self.heartbeat_ms) / 1000.0

    def alive(self, now_ms: int | None = None) -> bool:
        """Held, with a heartbeat younger than the TTL (default: judged by the database's clock)."""
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
    """This process's handle on the database's lease."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        holder: Holder,
        ttl_s: float,
        *,
        name: str = LEASE_NAME,
        is_alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        self.factory = factory
        self.holder = holder
        self.ttl_s = float(ttl_s)
        self.name = name
        self.is_alive = is_alive
        self.epoch: int | None = None
        self.took_over: str | None = None
        """Why a previous holder's lease could be taken, when it was (for the start-up log)."""

    def read(self) -> LeaseInfo | None:
        """The lease row, or None when no process ever took it on this database."""
        return read_lease(self.factory, self.name)

    def acquire(self, run_id: str, mode: str) -> None:
        """Claim the lease (see the module contract); `LeaseHeld` if another live process has it."""
        info = self.read()
        if info is None and self._insert(run_id, mode):
            self._fence()
            return
        info = info or self.read()
        assert info is not None
        why = self.claimable(info)
        if why is None:
            raise LeaseHeld(self.describe(info))
        dead = info.holder if why.startswith("dead:") else None
        if not self.try_claim(info.epoch, run_id, mode, dead_holder=dead):
            raise LeaseHeld(self.describe(self.read() or info))
        self.took_over = why if info.holder is not None else None

    def claimable(self, info: LeaseInfo) -> str | None:
        """Why the lease `info` may be claimed, or None when its holder is alive (the database's clock)."""
        if info.holder is None:
            return "released"
        if not info.alive():
            return f"stale: {info.holder} last beat {info.age_s() or 0:.1f} s ago (ttl {info.ttl_s:g} s)"
        if info.host == self.holder.host and info.pid is not None and info.pid != self.holder.pid:
            if not self.is_alive(info.pid):
                return f"dead: {info.holder} (pid {info.pid}) no longer runs on this host"
        return None

    def try_claim(self, seen_epoch: int, run_id: str, mode: str, *, dead_holder: str | None = None) -> bool:
        """Compare-and-swap: take the lease if its epoch is still `seen_epoch` and it is still claimable.

        Claimable is decided in the UPDATE itself, by the database's clock: released, or a heartbeat older
        than the TTL, or (`dead_holder`, seen dead on this host by the caller) still that same holder.
        """
        lease = DaemonLease
        claimable: list[ColumnElement[bool]] = [
            lease.holder.is_(None),
            lease.heartbeat_ms.is_(None),
            lease.heartbeat_ms < db_now_ms() - lease.ttl_s * 1000,
        ]
        if dead_holder is not None:
            claimable.append(lease.holder == dead_holder)
        values = self._claim_values(run_id, mode) | {"epoch": seen_epoch + 1}
        with transaction(self.factory) as session:
            result = session.execute(
                update(lease)
                .where(and_(lease.name == self.name, lease.epoch == seen_epoch, or_(*claimable)))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            won = _rowcount(result) == 1
        if won:
            self.epoch = seen_epoch + 1
            self._fence()
        return won

    def heartbeat(self, **status: Any) -> None:
        """Renew the lease and store status fields; `LeaseLost` if this process no longer holds it."""
        unknown = set(status) - STATUS_FIELDS
        if unknown:
            raise ValueError(f"unknown lease status fields {sorted(unknown)}")
        if not self._update_own({"heartbeat_ms": db_now_ms(), **status}):
            raise LeaseLost(f"the lease was taken over by another process (this one held epoch {self.epoch})")

    def release(self, note: str | None = None) -> bool:
        """Free the lease if this process still holds it; True when it did."""
        if self.epoch is None:
            return False
        done = self._update_own({"holder": None, "released_ms": db_now_ms(), "note": note})
        self.epoch = None
        return done

    def describe(self, info: LeaseInfo) -> str:
        """One line about the holder of `info`, for the refusal message."""
        age = info.age_s()
        beat = "never beat" if age is None else f"heartbeat {age:.1f} s ago"
        where = f"pid {info.pid} on {info.host}" if info.pid is not None else str(info.holder)
        who = "a `tradegraph tick`" if info.mode == "tick" else "another daemon"
        return (
            f"{who} holds this database's lease (run {info.run_id}, {where}, {beat}); "
            f"stop it first, or wait {info.ttl_s:g} s for a crashed holder's lease to expire"
        )

    # ---- helpers -----------------------------------------------------------------------------------------

    def _claim_values(self, run_id: str, mode: str) -> dict[str, Any]:
        return {
            "holder": self.holder.id,
            "host": self.holder.host,
            "pid": self.holder.pid,
            "run_id": run_id,
            "mode": mode,
            "ttl_s": self.ttl_s,
            "acquired_ms": db_now_ms(),
            "heartbeat_ms": db_now_ms(),
            "released_ms": None,
            "clock_ms": None,
            "last_bar_ts": None,
            "next_tick_ms": None,
            "note": None,
        }

    def _insert(self, run_id: str, mode: str) -> bool:
        try:
            with transaction(self.factory) as session:
                session.execute(
                    insert(DaemonLease).values(name=self.name, epoch=1, **self._claim_values(run_id, mode))
                )
        except IntegrityError:
            return False
        self.epoch = 1
        return True

    def _fence(self) -> None:
        assert self.epoch is not None
        fence_writes(self.factory, LeaseFence(self.name, self.holder.id, self.epoch))

    def _update_own(self, values: dict[str, Any]) -> bool:
        if self.epoch is None:
            return False
        if "note" in values:  # free text (a stop reason may quote an error): storable whatever it holds
            values = {**values, "note": for_storage(values["note"])}
        with transaction(self.factory) as session:
            result = session.execute(
                update(DaemonLease)
                .where(
                    DaemonLease.name == self.name,
                    DaemonLease.epoch == self.epoch,
                    DaemonLease.holder == self.holder.id,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1


def read_lease(factory: sessionmaker[Session], name: str = LEASE_NAME) -> LeaseInfo | None:
    """The lease row of the database behind `factory`, with the database's clock (for `tradegraph status`)."""
    with factory() as session:
        row = session.execute(select(DaemonLease, db_now_ms()).where(DaemonLease.name == name)).first()
        return None if row is None else _info(row[0], int(row[1]))


def _info(row: DaemonLease, read_ms: int) -> LeaseInfo:
    return LeaseInfo(
        epoch=row.epoch,
        holder=row.holder,
        host=row.host,
        pid=row.pid,
        run_id=row.run_id,
        mode=row.mode,
        ttl_s=row.ttl_s,
        heartbeat_ms=row.heartbeat_ms,
        clock_ms=row.clock_ms,
        last_bar_ts=row.last_bar_ts,
        next_tick_ms=row.next_tick_ms,
        note=row.note,
        read_ms=read_ms,
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
