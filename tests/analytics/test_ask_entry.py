"""`tradegraph ask` and `tg.ask` against the vLLM emulator: the answer, the trace, the exit status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import agent as tg
from agent.cli.main import app
from agent.testing.vllm_emulator import Reply, ToolCall, VLLMEmulator


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[VLLMEmulator]:
    with VLLMEmulator() as e:
        for key, value in {
            "PROFILE": "vllm",
            "BASE_URL": e.base_url,
            "MODEL": "nemotron",
            "MAX_RETRIES": "0",
        }.items():
            monkeypatch.setenv(f"TRADEGRAPH_LLM__{key}", value)
        monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(tmp_path / "data"))
        yield e


def test_the_command_prints_the_answer_and_the_trace(emu: VLLMEmulator) -> None:
    emu.script(
        Reply(
            tool_calls=(
                ToolCall("statistics", {"symbol": "ETH/USDT", "start": "2025-01-01", "end": "2025-02-01"}),
            )
        ),
        Reply(content="ETH volatility: see [#1] \x1b[31m"),
    )
    result = CliRunner().invoke(app, ["ask", "ETH volatility in January 2025?"])
    assert result.exit_code == 0, result.output
    assert "ETH volatility: see [#1]" in result.output and "\x1b[31m" not in result.output
    assert "statistics" in result.output and "answered: 2 model calls, 1 tool calls" in result.output


def test_a_bound_exits_3_with_its_message(emu: VLLMEmulator) -> None:
    emu.set_responder(lambda body: Reply(tool_calls=(ToolCall("list_market_data", {}),)))
    result = CliRunner().invoke(app, ["ask", "loop", "--max-tool-calls", "2", "--no-trace"])
    assert result.exit_code == 3
    assert "it used its 2 tool calls (--max-tool-calls)" in result.output


def test_tg_ask_returns_the_result(emu: VLLMEmulator) -> None:
    emu.script(Reply(tool_calls=(ToolCall("list_runs", {}),)), Reply(content="no runs yet [#1]"))
    result = tg.ask("Which runs are recorded?")
    assert result.answer == "no runs yet [#1]" and result.steps[0].tool == "list_runs" and result.steps[0].ok


def test_an_answer_without_tools_is_flagged(emu: VLLMEmulator) -> None:
    emu.script(Reply(content="BTC volatility was 8.1%."))
    result = CliRunner().invoke(app, ["ask", "BTC volatility?"])
    assert result.exit_code == 0
    assert "warning: the model called no tool" in " ".join(result.output.split())


def test_a_failing_endpoint_exits_1_with_the_reason(emu: VLLMEmulator) -> None:
    emu.script(Reply(status=400, error='"auto" tool choice requires --enable-auto-tool-choice'))
    result = CliRunner().invoke(app, ["ask", "anything"])
    assert result.exit_code == 1
    assert "The model could not be reached" in result.output and "--enable-auto-tool-choice" in result.output
