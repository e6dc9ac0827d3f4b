"""`/api/v1` and the pages through FastAPI's test client, on SQLite and PostgreSQL: every page and list
answers, pagination, the token and cross-site rules for controls and reads, escaping of model text, the
security headers, controls recorded with who, and the database opened read-only for the queries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from agent.db.controls import read_controls
from agent.db.session import open_db
from agent.web import close, create_app
from agent.web.live import new_decisions
from tests.web.helpers import BASE, HOSTILE, RUN, client, seeded

TOKEN = "s3cret-token-for-tests"
HEADERS = {"X-Tradegraph-Token": TOKEN, "Origin": BASE, "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[tuple[TestClient, TestClient, int, str]]:
    """(open client: a generated token, guarded client: a given token, hostile decision id, url)."""
    cfg, hostile = seeded(tmp_path, db_url)
    open_app = create_app(cfg)
    guarded = create_app(cfg, token=TOKEN)
    try:
        with client(open_app) as a, client(guarded) as b:
            yield a, b, hostile, db_url
    finally:
        close(open_app)
        close(guarded)


def test_every_page_and_list_answers_and_model_text_is_escaped(
    world: tuple[TestClient, TestClient, int, str],
) -> None:
    web, _, hostile, _ = world
    for path in (
        "/",
        "/runs",
        f"/runs/{RUN}",
        "/decisions",
        f"/decisions/{hostile}",
        "/llm",
        f"/runs/compare?ids={RUN}&ids={RUN}",
    ):
        page = web.get(path)
        assert page.status_code == 200, path
        assert "<script>window.pwned" not in page.text and "<b>bold</b>" not in page.text, path
        nonce = page.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
        assert page.text.count("<script") == page.text.count(f'nonce="{nonce}"'), path  # no script without it
    detail = web.get(f"/decisions/{hostile}").text
    assert "&lt;/script&gt;&lt;script&gt;window.pwned=1&lt;/script&gt;" in detail
    assert "&lt;img src=x&gt;" in detail and "be careful" in detail  # the exact prompt
    assert "hit (response cache)" in detail or "miss (asked)" in detail
    run_page = web.get(f"/runs/{RUN}").text
    assert 'id="equity-chart"' in web.get("/").text and 'id="trades-0"' in run_page
    assert 'id="symbol-pnl"' in run_page and "BTC/USDT" in run_page
    headers = web.get("/").headers
    assert "script-src 'nonce-" in headers["content-security-policy"]
    assert "unsafe-inline" not in headers["content-security-policy"].split("script-src")[1].split(";")[0]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"


def test_the_api_lists_pages_and_details(world: tuple[TestClient, TestClient, int, str]) -> None:
    web, _, hostile, _ = world
    runs = web.get("/api/v1/runs", params={"limit": 1}).json()
    assert runs["total"] == 1 and runs["items"][0]["id"] == RUN and "sharpe" in runs["items"][0]["metrics"]
    assert web.get("/api/v1/runs", params={"kind": "backtest"}).json()["total"] == 0
    first = web.get("/api/v1/decisions", params={"limit": 5}).json()
    assert first["items"][0]["id"] == hostile and first["items"][0]["rationale"] == HOSTILE
    second = web.get("/api/v1/decisions", params={"limit": 5, "before": first["next_cursor"]}).json()
    ids = [d["id"] for d in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 10
    detail = web.get(f"/api/v1/decisions/{hostile}").json()
    assert detail["call"]["response_text"] == HOSTILE and detail["messages"][1][1].startswith("<img")
    assert web.get("/api/v1/decisions/999999").status_code == 404
    assert len(web.get(f"/api/v1/runs/{RUN}/equity").json()) == 30
    book = web.get(f"/api/v1/runs/{RUN}/book").json()
    assert book["equity"] is not None and "positions" in book and "today_pnl" in book
    pnl = web.get(f"/api/v1/runs/{RUN}/pnl").json()
    assert pnl and all(
        p["pnl"] == pytest.approx(p["sold"] - p["bought"] - p["fees"] + p["held_value"]) for p in pnl
    )
    final = web.get(f"/api/v1/runs/{RUN}/equity").json()[-1]["equity"]
    assert sum(p["pnl"] for p in pnl) == pytest.approx(final - 10_000.0, abs=1e-6)  # every PnL is a symbol's
    llm = web.get("/api/v1/llm").json()
    assert llm["calls_seen"] == 1 and llm["prompt_tokens"] == 120 and llm["cached_tokens"] == 64
    assert llm["prefix_cache_hit_rate"] == pytest.approx(64 / 120) and llm["latency_p50_ms"] == 210.0
    overview = web.get("/api/v1/overview").json()
    assert overview["daemon"]["state"] == "stopped" and overview["daemon"]["run_id"] == RUN
    assert len(web.get("/api/v1/runs/compare", params={"ids": [RUN, RUN]}).json()) == 2
    spec = web.get("/openapi.json").json()
    assert {"/api/v1/runs", "/api/v1/decisions", "/api/v1/kill-switch", "/api/v1/pause"} <= set(spec["paths"])
    assert new_decisions(web.app.state.web.reader, hostile - 1, None)[0].id == hostile  # type: ignore[attr-defined]


def test_controls_need_the_token_header_and_the_same_origin(
    world: tuple[TestClient, TestClient, int, str],
) -> None:
    _, web, _, url = world
    body = {"active": True, "who": "alice"}
    assert web.post("/api/v1/kill-switch", json=body).status_code == 401
    assert (
        web.post(
            "/api/v1/kill-switch", json=body, headers={**HEADERS, "X-Tradegraph-Token": "nope"}
        ).status_code
        == 401
    )
    assert (
        web.post(
            "/api/v1/kill-switch", json=body, headers={**HEADERS, "Origin": "https://evil.example"}
        ).status_code
        == 403
    )
    assert (
        web.post(
            "/api/v1/kill-switch", json=body, headers={**HEADERS, "Sec-Fetch-Site": "cross-site"}
        ).status_code
        == 403
    )
    web.cookies.set("tg_token", TOKEN)  # a cookie alone never authorises a control
    assert web.post("/api/v1/pause", json=body, headers={"Origin": BASE}).status_code == 401
    web.cookies.clear()
    assert (
        web.post("/api/v1/kill-switch", json=body, headers={**HEADERS, "Host": "evil.example"}).status_code
        == 400
    )
    engine, factory = open_db(url)
    try:
        assert not read_controls(factory).entries_stopped  # nothing refused was recorded
        done = web.post("/api/v1/kill-switch", json=body, headers=HEADERS)
        assert done.status_code == 200 and done.json()["who"] == "alice"
        assert (
            web.post("/api/v1/pause", json={"active": True, "who": "bob"}, headers=HEADERS).status_code == 200
        )
        state = read_controls(factory)
        assert state.killed and state.paused and state.pause is not None and state.pause.who == "bob"
    finally:
        engine.dispose()
    history = web.get("/api/v1/controls", headers={"Authorization": f"Bearer {TOKEN}"}).json()["history"]
    assert [(h["name"], h["who"]) for h in history] == [("pause", "bob"), ("kill_switch", "alice")]


def test_a_given_token_guards_reads_and_a_link_with_it_sets_a_strict_cookie(
    world: tuple[TestClient, TestClient, int, str],
) -> None:
    _, web, _, _ = world
    assert web.get("/api/v1/runs").status_code == 401 and web.get("/").status_code == 401
    assert web.get("/api/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    hop = web.get(f"/runs?token={TOKEN}", follow_redirects=False)
    assert hop.status_code == 303 and hop.headers["location"] == "/runs"
    cookie = hop.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = web.get("/runs")
    assert page.status_code == 200 and f'content="{TOKEN}"' in page.text
    assert web.get("/?token=wrong", follow_redirects=False).status_code == 401


def test_the_queries_connection_refuses_writes(world: tuple[TestClient, TestClient, int, str]) -> None:
    web, _, _, _ = world
    reader = web.app.state.web.reader  # type: ignore[attr-defined]
    with reader() as session, pytest.raises(DBAPIError):
        session.execute(text("DELETE FROM decisions"))
        session.commit()


def test_the_warmer_draws_the_daemon_runs_charts_once_per_ledger_version(
    world: tuple[TestClient, TestClient, int, str],
) -> None:
    web, _, _, _ = world
    state = web.app.state.web  # type: ignore[attr-defined]
    state.charts.clear()
    warmer = web.app.state.warmer  # type: ignore[attr-defined]
    assert warmer.warm_once()
    drawn = dict(state.charts._items)
    assert {key[0] for key in drawn} == {"equity", "trades"} and all(key[1] == RUN for key in drawn)
    assert warmer.warm_once() and dict(state.charts._items) == drawn  # same version: nothing redrawn


def test_walking_the_decision_cursor_visits_every_decision_once(
    world: tuple[TestClient, TestClient, int, str],
) -> None:
    web, _, _, _ = world
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 7} | ({"before": cursor} if cursor is not None else {})
        page = web.get("/api/v1/decisions", params=params).json()
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = web.get("/api/v1/decisions", params={"limit": 500}).json()
    assert seen == [d["id"] for d in everything["items"]] and len(seen) == len(set(seen)) > 7
