"""The dashboard's pages (server-rendered HTML): overview, runs (list, compare, detail), decisions
(timeline, one decision) and LLM.

Contracts:
- Each page passes the guard's read check. Opening any page with `?token=...` (the right token) sets the
  `tg_token` cookie (HttpOnly, SameSite=Strict) and redirects to the page without it, so the token does not
  stay in the address bar or the history.
- The page carries the token for its own script (controls) only when the request presented it, or when
  reads are open (a token made at start, loopback only).
- Records come from the query layer; the bodies from `agent.web.pages`; charts from `agent.web.figures`
  with this response's nonce.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from agent.db.controls import read_controls
from agent.runs import queries as q
from agent.web import figures, pages
from agent.web.deps import Web, web
from agent.web.drawn import run_charts
from agent.web.html import Safe, page
from agent.web.security import TOKEN_COOKIE
from agent.web.state import daemon_view

router = APIRouter(include_in_schema=False)


def _open(request: Request) -> Web | Response:
    """The state after the read check, or the redirect that stores a token given in the address."""
    w = web(request)
    given = request.query_params.get("token")
    if given is not None:
        if given != w.guard.token:
            raise HTTPException(401, "wrong token")
        response = RedirectResponse(request.url.remove_query_params("token").path, status_code=303)
        response.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict", path="/")
        return response
    w.guard.check_read(request)
    return w


def _html(request: Request, w: Web, title: str, body: str, active: str, charts: bool = False) -> HTMLResponse:
    shown = not w.guard.protect_reads or w.guard.presented(request, cookie=True)
    text = page(
        title, body, request.state.nonce, active=active, token=w.guard.token if shown else None, charts=charts
    )
    return HTMLResponse(text)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    """Daemon health, equity against buy & hold, positions, today's PnL, controls, latest decisions."""
    w = _open(request)
    if isinstance(w, Response):
        return w
    view = daemon_view(w.reader)
    parts = [pages.health(view), pages.controls(read_controls(w.reader), True)]
    chart = ""
    if view.run_id is not None and (run := q.get_run(w.reader, view.run_id)) is not None:
        parts.append(pages.book_card(q.book(w.reader, run.id)))
        chart = _equity_chart(request, w, run)
    recent = q.decisions_page(w.reader, run_id=view.run_id, limit=10)
    newest = recent.items[0].id if recent.items else None
    body = (
        f'<div class="cards">{"".join(parts)}</div>{chart}<h2>Latest decisions</h2>'
        f"{pages.decisions(q.Page(recent.items, 10), view.run_id, newest)}"
    )
    return _html(request, w, "Overview", body, "/", charts=bool(chart))


@router.get("/runs", response_class=HTMLResponse)
def runs(
    request: Request,
    kind: str = "",
    status: str = "",
    strategy: str = "",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """The run list with filters."""
    w = _open(request)
    if isinstance(w, Response):
        return w
    found = q.runs_page(w.reader, kind=kind, status=status, strategy=strategy, limit=50, offset=offset)
    body = pages.runs(found, {"kind": kind, "status": status, "strategy": strategy})
    return _html(request, w, "Runs", body, "/runs")


@router.get("/runs/compare", response_class=HTMLResponse)
def compare(request: Request, ids: Annotated[list[str], Query()] = []) -> Response:  # noqa: B006
    """Two or more runs side by side."""
    w = _open(request)
    if isinstance(w, Response):
        return w
    rows = [r for r in (q.get_run(w.reader, i) for i in ids[:20]) if r is not None]
    body = pages.compare(rows) if len(rows) >= 2 else Safe("<p>select two or more runs to compare</p>")
    return _html(request, w, "Compare runs", body, "/runs")


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run(request: Request, run_id: str) -> Response:
    """A run: metrics, book, equity/drawdown and trades on the price chart."""
    w = _open(request)
    if isinstance(w, Response):
        return w
    found = q.get_run(w.reader, run_id)
    if found is None:
        raise HTTPException(404, f"no run {run_id!r}")
    chart = figures.embed("".join(run_charts(w.charts, w.reader, w.data_dir, found)), request.state.nonce)
    body = pages.run(found, q.book(w.reader, run_id), chart, q.symbol_pnl(w.reader, run_id))
    return _html(request, w, f"Run {run_id}", body, "/runs", charts=bool(chart))


@router.get("/decisions", response_class=HTMLResponse)
def decisions(request: Request, run_id: str = "", before: int | None = None) -> Response:
    """The decision timeline (live at the top)."""
    w = _open(request)
    if isinstance(w, Response):
        return w
    found = q.decisions_page(w.reader, run_id=run_id or None, before_id=before, limit=50)
    newest = q.newest_decision_id(w.reader, run_id or None) if before is None else -1
    body = pages.decisions(found, run_id or None, newest)
    return _html(request, w, "Decisions", body, "/decisions")


@router.get("/decisions/{decision_id}", response_class=HTMLResponse)
def decision(request: Request, decision_id: int) -> Response:
    """One decision with its prompt, raw answer and figures."""
    w = _open(request)
    if isinstance(w, Response):
        return w
    found = q.decision_detail(w.reader, decision_id)
    if found is None:
        raise HTTPException(404, f"no decision {decision_id}")
    return _html(request, w, f"Decision {decision_id}", pages.decision(found), "/decisions")


@router.get("/llm", response_class=HTMLResponse)
def llm(request: Request, run_id: str = "") -> Response:
    """Model traffic."""
    w = _open(request)
    if isinstance(w, Response):
        return w
    return _html(request, w, "LLM", pages.llm(q.llm_stats(w.reader, run_id or None)), "/llm")


def _equity_chart(request: Request, w: Web, run: q.RunRow) -> str:
    """The run's equity against buy & hold (drawn again only when its ledger changed)."""
    html = run_charts(w.charts, w.reader, w.data_dir, run)[0]
    return figures.embed(html, request.state.nonce) if html else ""
