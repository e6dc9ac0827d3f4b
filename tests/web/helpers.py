"""Test helpers for the dashboard: a database seeded by a short daemon replay plus one LLM decision whose
rationale is hostile markup, and a TestClient on the loopback name."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from agent.config import Settings
from agent.daemon import Daemon, DaemonOptions
from agent.db.models import Decision, LLMCall, LLMPrompt
from agent.db.prompts import prompt_digest
from agent.db.session import open_db, transaction
from tests.daemon.helpers import DATA_END, HOUR, SMA, data_dir, iso, settings

HOSTILE = "</script><script>window.pwned=1</script><b>bold</b> & co"
RUN = "dash"
BASE = "http://127.0.0.1:8765"


def seeded(tmp_path: Path, db_url: str, bars: int = 30) -> tuple[Settings, int]:
    """Settings over a database with a finished `bars`-bar replay of run `RUN` and one hostile LLM decision
    (its id returned) carrying a stored prompt and answer."""
    cfg = settings(data_dir(tmp_path), db_url)
    options = DaemonOptions(
        replay=True, speed=3600 * 50, start=iso(DATA_END - bars * HOUR), params=SMA, run_id=RUN
    )
    assert Daemon(cfg, options).run().finished
    return cfg, add_hostile_decision(db_url, DATA_END + HOUR)


def add_hostile_decision(db_url: str, bar_ts: int) -> int:
    """An LLM decision (with its call and prompt) whose rationale, reasoning and answer are markup."""
    engine, factory = open_db(db_url)
    messages = [
        {"role": "system", "content": "be careful"},
        {"role": "user", "content": f"<img src=x> {bar_ts}"},
    ]
    digest = prompt_digest(messages)
    try:
        with transaction(factory) as session:
            if session.get(LLMPrompt, digest) is None:
                session.add(LLMPrompt(prompt_hash=digest, messages=messages))
                session.flush()
            call = LLMCall(
                run_id=RUN,
                request_hash=digest,
                prompt_hash=digest,
                endpoint="http://emulator",
                profile="vllm",
                model="nemotron",
                messages_hash=digest,
                response_text=HOSTILE,
                reasoning=HOSTILE,
                finish_reason="stop",
                prompt_tokens=120,
                completion_tokens=30,
                cached_tokens=64,
                latency_ms=210.0,
            )
            session.add(call)
            session.flush()
            row = Decision(
                run_id=RUN,
                symbol="BTC/USDT",
                bar_ts=bar_ts,
                source="llm",
                action="hold",
                target_exposure=0.0,
                final_exposure=0.0,
                confidence=0.5,
                rationale=HOSTILE,
                llm_call_id=call.id,
                model="nemotron",
                reasoning=HOSTILE,
                prompt_tokens=120,
                completion_tokens=30,
                latency_ms=210.0,
                prompt_hash=digest,
                clamps=[{"kind": "kill_switch", "detail": "the kill switch is on"}],
            )
            session.add(row)
            session.flush()
            return int(row.id)
    finally:
        engine.dispose()


def client(app: FastAPI) -> TestClient:
    """A test client that calls the app by its loopback address."""
    return TestClient(app, base_url=BASE)


def newest_id(db_url: str) -> int:
    engine, factory = open_db(db_url)
    try:
        with factory() as session:
            return int(session.scalar(select(Decision.id).order_by(Decision.id.desc()).limit(1)) or 0)
    finally:
        engine.dispose()
