"""Live updates for the dashboard: server-sent events while the daemon ticks.

Contracts:
- `stream(...)` yields SSE messages until the client goes away: every `poll_s` seconds it reads the
  decisions newer than the last one sent (`agent.runs.queries.decisions_page(after_id=...)`, oldest first,
  as `decision` events with the row as JSON) and, when it changed, the daemon's health (`health` events).
  Reads run in a worker thread (the queries are synchronous); the event loop never blocks on the database.
- Payloads are JSON of the query layer's records; the page's script shows them as text.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from typing import Any

from anyio import to_thread
from sqlalchemy.orm import Session, sessionmaker

from agent.runs.queries import DecisionRow, decisions_page
from agent.web.state import DaemonView, daemon_view

POLL_S = 0.5
BATCH = 200


def finite(value: Any) -> Any:
    """`value` with non-finite floats as None (JSON has no NaN), recursively through lists and dicts."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def to_json(record: Any) -> str:
    """A query record (a dataclass) as JSON text (datetimes as ISO strings, NaN as null)."""
    return json.dumps(finite(asdict(record)), default=str, allow_nan=False)


def new_decisions(factory: sessionmaker[Session], after: int, run_id: str | None) -> list[DecisionRow]:
    """Decisions newer than `after`, oldest first (at most `BATCH`)."""
    return list(decisions_page(factory, run_id=run_id, after_id=after, limit=BATCH).items)


async def stream(
    factory: sessionmaker[Session],
    after: int,
    run_id: str | None,
    disconnected: Callable[[], Any],
    poll_s: float = POLL_S,
) -> AsyncIterator[dict[str, str]]:
    """SSE messages (`event`, `data`) for the module contract."""
    last_health: str | None = None
    while not await disconnected():
        rows = await to_thread.run_sync(new_decisions, factory, after, run_id)
        for row in rows:
            after = max(after, row.id)
            yield {"event": "decision", "data": to_json(row), "id": str(row.id)}
        view: DaemonView = await to_thread.run_sync(daemon_view, factory)
        key = repr((view.state, view.reason, view.last_tick, view.last_error))
        if key != last_health:
            last_health = key
            yield {"event": "health", "data": to_json(view)}
        await asyncio.sleep(poll_s)
