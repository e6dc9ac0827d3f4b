"""A failing LLM stage never takes a run down: tokenizer faults fall back to the estimate (recorded once per
run), and a tick whose model call fails gets the configured fallback from the first failure on."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.db.models import Decision, RiskEvent, Run
from agent.db.session import open_db
from agent.graph.backtest import run_agent_backtest
from agent.graph.factory import rule_strategy
from agent.graph.runner import open_runner, replay_rules
from agent.llm.context import MarketContextBuilder
from agent.llm.tokens import ServerTokenCounter
from agent.testing.fakes import FakeGateway
from agent.testing.vllm_emulator import VLLMEmulator
from tests.graph.helpers import emulator_settings, short_source


def _rows(db_url: str, run_id: str) -> tuple[Run, list[Decision], list[RiskEvent]]:
    engine, factory = open_db(db_url)
    try:
        with factory() as s:
            run = s.get(Run, run_id)
            decisions = list(s.scalars(select(Decision).where(Decision.run_id == run_id)).all())
            events = list(s.scalars(select(RiskEvent).where(RiskEvent.run_id == run_id)).all())
    finally:
        engine.dispose()
    assert run is not None
    return run, decisions, events


def _backtest(settings: Any, tmp_path: Path, bars: int) -> str:
    run = run_agent_backtest(
        settings,
        strategy="llm",
        start=None,
        end=None,
        last_bars=bars,
        reports_dir=tmp_path,
        show_progress=False,
        source=short_source(settings, days=30),
    )
    return run.run_id


@pytest.mark.parametrize("kind", ["http_500", "garbage", "hang"])
def test_a_tokenizer_fault_does_not_abort_the_backtest(kind: str, sqlite_url: str, tmp_path: Path) -> None:
    with VLLMEmulator() as emu:
        emu.tokenize_fault = kind
        settings = emulator_settings(sqlite_url, emu.base_url, llm={"timeout_s": 1.0, "context_tokens": 3000})
        run_id = _backtest(settings, tmp_path, bars=4)
        model_calls = emu.call_count
    run, decisions, events = _rows(sqlite_url, run_id)
    assert run.status == "done"
    assert model_calls > 0, "prompts were still built (with the estimate) and the model was asked"
    assert len(decisions) == 8 and not any(d.abstained for d in decisions)
    fallbacks = [e for e in events if e.kind == "tokenizer_fallback"]
    assert len(fallbacks) == 1, "recorded once per run, not once per bar or per symbol"
    assert fallbacks[0].symbol is None and "falls back" in fallbacks[0].detail


def test_a_failed_call_gets_the_rule_fallback_from_the_first_failure(sqlite_url: str, tmp_path: Path) -> None:
    """One failed call (the circuit stays closed): that symbol gets the rule's proposal, with the reason."""
    with VLLMEmulator() as emu:
        emu.script("http_500")  # the first chat request of the run fails; the circuit stays closed
        settings = emulator_settings(sqlite_url, emu.base_url, fallback="rule", llm={"circuit_failures": 5})
        run_id = _backtest(settings, tmp_path, bars=2)
    _, decisions, _ = _rows(sqlite_url, run_id)
    failed = [d for d in decisions if d.abstained]
    assert len(failed) == 1
    assert failed[0].source == "fallback"
    assert failed[0].rationale is not None and failed[0].rationale.startswith("fallback (llm http_status")
    assert "rule sma_cross" in failed[0].rationale
    assert failed[0].abstain_reason == "http 500"
    others = [d for d in decisions if not d.abstained]
    assert len(others) == 3 and all(d.source == "llm" for d in others)


def test_a_tokenizer_failing_first_gets_the_rule_fallback(sqlite_url: str) -> None:
    """A builder whose tokenizer raises (no estimate behind it): nobody is asked, the rule decides."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    settings = emulator_settings(sqlite_url, dead, fallback="rule")
    source = short_source(settings, days=30)
    gateway = FakeGateway()
    builder = MarketContextBuilder(ServerTokenCounter(dead, timeout_s=0.5))
    with open_runner(
        settings,
        run_id="tok-first",
        kind="backtest",
        strategy="llm",
        source=source,
        rules=replay_rules(settings, settings.symbols),
        gateway=gateway,
        builder=builder,
        budget_tokens=3000,
        rule=rule_strategy(settings, "llm"),
        checkpoint=False,
    ) as runner:
        outcome = runner.tick(source.last_ts("BTC/USDT"))
    assert outcome.status == "done" and gateway.requests == []
    _, decisions, _ = _rows(sqlite_url, "tok-first")
    assert len(decisions) == 2 and all(d.source == "fallback" for d in decisions)
    assert all(d.abstained and (d.abstain_reason or "").startswith("tokenizer failed") for d in decisions)
    assert all((d.rationale or "").startswith("fallback (llm tokenizer: tokenizer failed") for d in decisions)
