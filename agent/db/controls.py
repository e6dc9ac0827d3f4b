"""The operator's controls: the kill switch and the pause of new entries, kept in `control_events`.

Contracts:
- Append-only: `set_control` adds one row (name, on/off, who, client origin, when) and never updates or
  deletes; the newest row of a name is its state, and the rows are the audit trail (who and when).
- `read_controls` is one read of both states; a control never set is off.
- Both controls stop new entries at the daemon's next tick (the risk screen reads them through
  `agent.risk.breakers.kill_switch_active`); held positions may still be sold or closed. The kill switch is
  the emergency stop, the pause the routine one: they are separate so that resuming the one does not undo
  the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import CONTROL_NAMES, ControlEvent
from agent.db.session import transaction

ControlName = Literal["kill_switch", "pause"]
assert get_args(ControlName) == CONTROL_NAMES


@dataclass(frozen=True)
class ControlChange:
    """One recorded change of a control."""

    id: int
    name: ControlName
    active: bool
    who: str
    origin: str | None
    at: datetime


@dataclass(frozen=True)
class Controls:
    """The current state of both controls (None: never set, so off)."""

    kill_switch: ControlChange | None = None
    pause: ControlChange | None = None

    @property
    def killed(self) -> bool:
        """The kill switch is on."""
        return self.kill_switch is not None and self.kill_switch.active

    @property
    def paused(self) -> bool:
        """New entries are paused."""
        return self.pause is not None and self.pause.active

    @property
    def entries_stopped(self) -> bool:
        """Either control stops new entries."""
        return self.killed or self.paused


def set_control(
    factory: sessionmaker[Session], name: ControlName, active: bool, who: str, origin: str | None = None
) -> ControlChange:
    """Record `name` set to `active` by `who` (from `origin`), now; returns the recorded change."""
    if name not in CONTROL_NAMES:
        raise ValueError(f"unknown control {name!r}")
    row = ControlEvent(name=name, active=active, who=who[:128], origin=(origin or None) and origin[:255])
    with transaction(factory) as session:
        session.add(row)
        session.flush()
        return _change(row)


def read_controls(factory: sessionmaker[Session]) -> Controls:
    """The newest change of each control (see the module contract)."""
    newest = select(func.max(ControlEvent.id)).group_by(ControlEvent.name)
    with factory() as session:
        rows = list(session.scalars(select(ControlEvent).where(ControlEvent.id.in_(newest))))
    found = {r.name: _change(r) for r in rows}
    return Controls(found.get("kill_switch"), found.get("pause"))


def control_history(factory: sessionmaker[Session], limit: int = 50, offset: int = 0) -> list[ControlChange]:
    """Recorded changes, newest first."""
    query = select(ControlEvent).order_by(ControlEvent.id.desc()).limit(limit).offset(offset)
    with factory() as session:
        return [_change(r) for r in session.scalars(query)]


def _change(row: ControlEvent) -> ControlChange:
    at = row.created_at if row.created_at.tzinfo is not None else row.created_at.replace(tzinfo=UTC)
    name: ControlName = "kill_switch" if row.name == "kill_switch" else "pause"
    return ControlChange(int(row.id), name, bool(row.active), row.who, row.origin, at)
