"""`tradegraph backtest --prompt-mode stateless|stateful`: overrides `llm.prompt_mode` for one LLM run,
recorded with the run; a bad value is a usage error (exit 2) and a rule strategy refuses the flag."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from agent.cli.main import app
from agent.db.models import Run
from agent.db.session import open_db
from agent.errors import ConfigError
from agent.llm.prompts import STATELESS_NOTE
from agent.testing.vllm_emulator import VLLMEmulator

WINDOW = ["--symbols", "BTC/USDT,ETH/USDT", "--start", "2025-09-19 12:00", "--end", "2025-09-19 16:00"]


@pytest.fixture
def emulated_llm(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Iterator[VLLMEmulator]:
    with VLLMEmulator(latency_s=0.0) as emu:
        monkeypatch.setenv("TRADEGRAPH_LLM__PROFILE", "vllm")
        monkeypatch.setenv("TRADEGRAPH_LLM__BASE_URL", emu.base_url)
        monkeypatch.setenv("TRADEGRAPH_LLM__MODEL", "nemotron")
        monkeypatch.setenv("TRADEGRAPH_LLM__CONTEXT_TOKENS", "1600")
        monkeypatch.setenv("TRADEGRAPH_LLM__CONCURRENCY", "4")
        monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", sqlite_url)
        monkeypatch.setenv("COLUMNS", "240")
        yield emu


def _runs(db_url: str) -> list[Run]:
    engine, factory = open_db(db_url)
    try:
        with factory() as s:
            return list(s.scalars(select(Run).order_by(Run.created_at)))
    finally:
        engine.dispose()


def _user_prompts(emu: VLLMEmulator) -> list[str]:
    return [m["content"] for body in emu.calls for m in body["messages"] if m["role"] == "user"]


@pytest.mark.parametrize("configured", [None, "stateful"])
def test_the_flag_overrides_the_configured_mode_and_is_recorded(
    emulated_llm: VLLMEmulator, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, configured: str | None
) -> None:
    if configured is not None:
        monkeypatch.setenv("TRADEGRAPH_LLM__PROMPT_MODE", configured)
    runner = CliRunner()
    plain = runner.invoke(app, ["backtest", "--strategy", "llm", *WINDOW])
    assert plain.exit_code == 0, plain.output
    stateful_prompts = _user_prompts(emulated_llm)
    assert stateful_prompts and not any(STATELESS_NOTE in p for p in stateful_prompts)
    emulated_llm.reset()

    flagged = runner.invoke(app, ["backtest", "--strategy", "llm", "--prompt-mode", "stateless", *WINDOW])
    assert flagged.exit_code == 0, flagged.output
    prompts = _user_prompts(emulated_llm)
    assert prompts and all(STATELESS_NOTE in p for p in prompts)

    first, second = _runs(sqlite_url)
    assert first.config["llm"]["prompt_mode"] == "stateful" and first.metrics["llm_prompt_mode"] == "stateful"
    assert second.config["llm"]["prompt_mode"] == "stateless"
    assert second.metrics["llm_prompt_mode"] == "stateless"
    assert second.config["llm"]["base_url"] == emulated_llm.base_url, "the rest of [llm] is kept"


def test_stateful_flag_overrides_a_stateless_configuration(
    emulated_llm: VLLMEmulator, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEGRAPH_LLM__PROMPT_MODE", "stateless")
    result = CliRunner().invoke(app, ["backtest", "--strategy", "llm", "--prompt-mode", "stateful", *WINDOW])
    assert result.exit_code == 0, result.output
    assert _user_prompts(emulated_llm) and not any(STATELESS_NOTE in p for p in _user_prompts(emulated_llm))
    (run,) = _runs(sqlite_url)
    assert run.config["llm"]["prompt_mode"] == "stateful"


def test_a_bad_prompt_mode_is_a_usage_error(emulated_llm: VLLMEmulator, sqlite_url: str) -> None:
    result = CliRunner().invoke(app, ["backtest", "--strategy", "llm", "--prompt-mode", "stateles", *WINDOW])
    assert result.exit_code == 2
    assert "--prompt-mode" in result.stderr and "'stateless', 'stateful'" in result.stderr
    assert emulated_llm.call_count == 0 and _runs(sqlite_url) == []


def test_a_rule_strategy_refuses_the_flag(emulated_llm: VLLMEmulator, sqlite_url: str) -> None:
    result = CliRunner().invoke(
        app, ["backtest", "--strategy", "sma_cross", "--prompt-mode", "stateless", "--no-report", *WINDOW]
    )
    assert result.exit_code == 1 and isinstance(result.exception, ConfigError)
    assert str(result.exception) == (
        "--prompt-mode applies to strategies that ask the model (llm, hybrid), not 'sma_cross'"
    )
    assert _runs(sqlite_url) == []
