"""What every route shares: the app's state (databases, guard, settings) and the JSON response that
turns NaN into null.

Contracts:
- `Web` is built once by `create_app` and kept on `app.state.web`; `web(request)` fetches it.
- `SafeJSON` renders like FastAPI's JSON response but with non-finite floats as null (metrics hold NaN).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from agent.web.figures import ChartCache
from agent.web.live import finite
from agent.web.security import Guard


@dataclass(frozen=True)
class Web:
    """The app's state."""

    reader: sessionmaker[Session]
    """Read-only: every query."""
    controls: sessionmaker[Session]
    """Writable: `control_events` only."""
    guard: Guard
    data_dir: Path
    charts: ChartCache


def web(request: Request) -> Web:
    """The app's state (`app.state.web`)."""
    state: Web = request.app.state.web
    return state


def guarded_read(request: Request) -> Web:
    """Dependency of every read: the guard's read check, then the state."""
    state = web(request)
    state.guard.check_read(request)
    return state


class SafeJSON(JSONResponse):
    """JSON with NaN and infinities as null."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            finite(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()
