"""`/api/v1`: everything the pages show, as JSON, paginated; read-only except the two controls.

Contracts:
- Reads (GET) pass the guard's read check (`agent.web.security`); lists are paginated (`limit`/`offset`
  for runs, the `before` cursor for decisions: `next_cursor` in the answer), `limit` at most
  `agent.runs.queries.MAX_LIMIT`.
- `POST /api/v1/kill-switch` and `POST /api/v1/pause` ({"active": bool, "who": str}) pass the control
  check (token header, same origin) and are recorded in `control_events` with who and the client's
  address (`agent.db.controls`); the daemon honours them at its next tick.
- `GET /api/v1/events` is the server-sent event stream of the pages (`agent.web.live`).
- Model text is returned raw in JSON (a JSON string is not markup); the pages escape it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from agent.db.controls import (
    ControlChange,
    ControlName,
    Controls,
    control_history,
    read_controls,
    set_control,
)
from agent.runs import queries as q
from agent.web.deps import SafeJSON, Web, guarded_read, web
from agent.web.live import stream
from agent.web.state import DaemonView, daemon_view

router = APIRouter(prefix="/api/v1", default_response_class=SafeJSON, tags=["api"])
Read = Annotated[Web, Depends(guarded_read)]
Limit = Annotated[int, Query(ge=1, le=q.MAX_LIMIT)]


class ControlRequest(BaseModel):
    """A control set on or off, by whom."""

    model_config = ConfigDict(extra="forbid")
    active: bool
    who: str = Field("dashboard", min_length=1, max_length=64)


class ControlsView(BaseModel):
    """The controls' state and their recorded changes (newest first)."""

    kill_switch: bool
    paused: bool
    history: list[ControlChange]


class Overview(BaseModel):
    """The overview page's figures."""

    daemon: DaemonView
    book: q.Book | None
    controls: ControlsView


@router.get("/health")
def health(w: Read) -> DaemonView:
    """The daemon's health, lease and clocks."""
    return daemon_view(w.reader)


@router.get("/overview")
def overview(w: Read) -> Overview:
    """Health, the daemon run's book (positions, today's PnL) and the controls."""
    view = daemon_view(w.reader)
    book = q.book(w.reader, view.run_id) if view.run_id else None
    return Overview(daemon=view, book=book, controls=_controls(w, 20, 0))


@router.get("/runs")
def runs(
    w: Read,
    kind: str | None = None,
    status: str | None = None,
    strategy: str | None = None,
    limit: Limit = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> q.Page[q.RunRow]:
    """Runs, newest first, filtered."""
    return q.runs_page(w.reader, kind=kind, status=status, strategy=strategy, limit=limit, offset=offset)


@router.get("/runs/compare")
def compare(w: Read, ids: Annotated[list[str], Query(min_length=2, max_length=20)]) -> list[q.RunRow]:
    """Two or more runs with the same metric set."""
    found = [q.get_run(w.reader, i) for i in ids]
    missing = [i for i, r in zip(ids, found, strict=True) if r is None]
    if missing:
        raise HTTPException(404, f"no run {missing[0]!r}")
    return [r for r in found if r is not None]


@router.get("/runs/{run_id}")
def run(w: Read, run_id: str) -> q.RunRow:
    """One run with its metric set."""
    return _run(w, run_id)


@router.get("/runs/{run_id}/book")
def run_book(w: Read, run_id: str) -> q.Book:
    """A run's last balance, open positions (exit plans) and today's PnL."""
    _run(w, run_id)
    return q.book(w.reader, run_id)


@router.get("/runs/{run_id}/pnl")
def pnl(w: Read, run_id: str) -> list[q.SymbolPnl]:
    """Each traded symbol's PnL: fill cash flows, fees and the value still held."""
    _run(w, run_id)
    return list(q.symbol_pnl(w.reader, run_id))


@router.get("/runs/{run_id}/equity")
def equity(
    w: Read, run_id: str, limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000, offset: int = 0
) -> list[q.EquityPoint]:
    """Equity and cash after each bar (bar order), a page of it."""
    _run(w, run_id)
    return list(q.equity_curve(w.reader, run_id)[max(offset, 0) : max(offset, 0) + limit])


@router.get("/runs/{run_id}/trades")
def trades(w: Read, run_id: str, limit: Limit = q.MAX_LIMIT) -> list[q.OrderRow]:
    """The run's newest filled orders, in bar order."""
    _run(w, run_id)
    return list(q.run_orders(w.reader, run_id, limit))


@router.get("/decisions")
def decisions(
    w: Read, run_id: str | None = None, before: int | None = None, limit: Limit = 50
) -> q.Page[q.DecisionRow]:
    """Decisions newest first; page back with `before` = the answer's `next_cursor`."""
    return q.decisions_page(w.reader, run_id=run_id, before_id=before, limit=limit)


@router.get("/decisions/{decision_id}")
def decision(w: Read, decision_id: int) -> q.DecisionDetail:
    """A decision with its exact prompt, raw answer, reasoning, latency, tokens and cache state."""
    found = q.decision_detail(w.reader, decision_id)
    if found is None:
        raise HTTPException(404, f"no decision {decision_id}")
    return found


@router.get("/llm")
def llm(w: Read, run_id: str | None = None) -> q.LLMStats:
    """Model traffic over the newest calls (of a run, or all)."""
    return q.llm_stats(w.reader, run_id)


@router.get("/controls")
def controls(w: Read, limit: Limit = 50, offset: Annotated[int, Query(ge=0)] = 0) -> ControlsView:
    """The kill switch and pause states and their recorded changes."""
    return _controls(w, limit, offset)


@router.post("/kill-switch")
def kill_switch(request: Request, body: ControlRequest) -> ControlChange:
    """Turn the kill switch on or off (recorded with who and when)."""
    return _set(request, "kill_switch", body)


@router.post("/pause")
def pause(request: Request, body: ControlRequest) -> ControlChange:
    """Pause or resume new entries (recorded with who and when)."""
    return _set(request, "pause", body)


@router.get("/events", response_class=EventSourceResponse)
async def events(request: Request, w: Read, after: int = 0, run_id: str | None = None) -> EventSourceResponse:
    """Server-sent events: new decisions and health changes while the daemon ticks."""
    return EventSourceResponse(stream(w.reader, after, run_id or None, request.is_disconnected), ping=15)


def _run(w: Web, run_id: str) -> q.RunRow:
    found = q.get_run(w.reader, run_id)
    if found is None:
        raise HTTPException(404, f"no run {run_id!r}")
    return found


def _controls(w: Web, limit: int, offset: int) -> ControlsView:
    state: Controls = read_controls(w.reader)
    history = control_history(w.reader, limit, offset)
    return ControlsView(kill_switch=state.killed, paused=state.paused, history=history)


def _set(request: Request, name: ControlName, body: ControlRequest) -> ControlChange:
    w = web(request)
    w.guard.check_control(request)
    client = request.client.host if request.client else None
    return set_control(w.controls, name, body.active, body.who, client)
