"""Write fencing: ledger writes made by a lease holder check, inside their own transaction, that the lease is
still theirs, so a writer that lost its lease (a stalled daemon whose lease was taken over) writes nothing.

Contracts:
- A `LeaseFence` is what a writer knows about the lease it holds: the lease row's name, the holder id and
  the epoch it acquired. `fence.check(session, run_id)` runs, first in the caller's transaction,
  `UPDATE daemon_leases SET epoch = epoch WHERE name = ? AND epoch = ? AND holder = ? AND run_id = ?` and
  raises `LeaseLost` unless exactly one row matched. The UPDATE takes the row's write lock (PostgreSQL) or
  the database's write lock (SQLite) until the transaction ends, so the lease cannot change hands between
  the check and the commit: a takeover either committed before the check (the write is refused and rolled
  back whole) or waits for the commit.
- `fence_writes(factory, fence)` attaches the fence to a session factory (`None` removes it); every session
  the factory makes then carries it, and `check_fence(session, run_id)` applies it (a no-op for a factory
  without a fence: backtests and notebooks hold no lease). `agent.daemon.lease.Lease` fences the factory it
  was built with when it acquires the lease.
- `LeaseLost` is fatal for its writer: stop, write nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import DaemonLease
from agent.errors import TradegraphError

_FENCE_KEY = "tradegraph.lease_fence"


class LeaseLost(TradegraphError):
    """This writer's lease was taken over (or released): it must write nothing more, and stop."""


@dataclass(frozen=True)
class LeaseFence:
    """The lease a writer holds: lease row name, holder id, and the epoch it acquired."""

    name: str
    holder: str
    epoch: int

    def check(self, session: Session, run_id: str) -> None:
        """`LeaseLost` unless the lease row still has this holder, epoch and run (see the module contract)."""
        result = session.execute(
            update(DaemonLease)
            .where(
                DaemonLease.name == self.name,
                DaemonLease.epoch == self.epoch,
                DaemonLease.holder == self.holder,
                DaemonLease.run_id == run_id,
            )
            .values(epoch=DaemonLease.epoch)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            raise LeaseLost(
                f"the lease of run {run_id} was taken over or released (this writer held epoch "
                f"{self.epoch}); nothing was written"
            )


def fence_writes(factory: sessionmaker[Session], fence: LeaseFence | None) -> None:
    """Make every session of `factory` carry `fence` (None: no fence)."""
    info = {k: v for k, v in (factory.kw.get("info") or {}).items() if k != _FENCE_KEY}
    if fence is not None:
        info[_FENCE_KEY] = fence
    factory.configure(info=info)


def fence_of(session: Session) -> LeaseFence | None:
    """The fence `session`'s factory carries, if any."""
    fence = session.info.get(_FENCE_KEY)
    return fence if isinstance(fence, LeaseFence) else None


def check_fence(session: Session, run_id: str) -> None:
    """Apply the session's fence for a write to `run_id`; nothing when it has none."""
    fence = fence_of(session)
    if fence is not None:
        fence.check(session, run_id)
