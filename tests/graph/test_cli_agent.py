"""The agent's commands through the CLI: an LLM backtest, then portfolio, decisions, tick and graph."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from agent.testing.vllm_emulator import VLLMEmulator


@pytest.fixture
def emulated_llm(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> VLLMEmulator:
    with VLLMEmulator(latency_s=0.0) as emu:
        monkeypatch.setenv("TRADEGRAPH_LLM__PROFILE", "vllm")
        monkeypatch.setenv("TRADEGRAPH_LLM__BASE_URL", emu.base_url)
        monkeypatch.setenv("TRADEGRAPH_LLM__MODEL", "nemotron")
        monkeypatch.setenv("TRADEGRAPH_LLM__CONTEXT_TOKENS", "1600")
        monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", sqlite_url)
        monkeypatch.setenv("COLUMNS", "240")
        yield emu


def test_llm_backtest_then_operator_commands(emulated_llm: VLLMEmulator) -> None:
    runner = CliRunner()
    args = [
        "backtest",
        "--strategy",
        "llm",
        "--symbols",
        "BTC/USDT,ETH/USDT",
        "--start",
        "2025-09-19 12:00",
        "--end",
        "2025-09-19 18:00",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "report:" in result.output and "llm calls" in result.output
    calls = len(emulated_llm.calls)
    assert calls > 0
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert len(emulated_llm.calls) == calls, "a rerun of the same window is served from the cache"

    portfolio = runner.invoke(app, ["portfolio"])
    assert portfolio.exit_code == 0 and "equity" in portfolio.output
    decisions = runner.invoke(app, ["decisions", "--limit", "4"])
    assert decisions.exit_code == 0 and "BTC/USDT" in decisions.output
    graph = runner.invoke(app, ["graph"])
    assert graph.exit_code == 0 and "screen -.-> analyse" in graph.output


def test_tick_on_replay_advances_one_paper_run(emulated_llm: VLLMEmulator) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["tick", "--strategy", "sma_cross", "--at", "2025-09-19 20:00"])
    assert first.exit_code == 0, first.output
    assert "paper-sma_cross-1h bar 2025-09-19 20:00: done" in first.output
    same = runner.invoke(app, ["tick", "--strategy", "sma_cross", "--at", "2025-09-19 20:00"])
    assert "already_done" in same.output
    assert len(emulated_llm.calls) == 0, "a rule strategy never asks the model"


def test_unknown_run_and_empty_window_are_one_line_errors(emulated_llm: VLLMEmulator) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "portfolio", "--run-id", "nope"],
        capture_output=True,
        text=True,
    )
    assert (
        proc.returncode == 1
        and proc.stderr.strip() == "error: no run 'nope' in the database (see: tradegraph runs list)"
    )
    result = CliRunner().invoke(
        app, ["backtest", "--strategy", "llm", "--start", "2030-01-01", "--end", "2030-02-01"]
    )
    assert result.exit_code == 1
