"""`tradegraph llm check` against the vLLM emulator, and its one-line errors."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from agent.cli import main as cli_main
from agent.cli.main import app
from agent.testing.vllm_emulator import VLLMEmulator


@pytest.fixture
def emu() -> Iterator[VLLMEmulator]:
    with VLLMEmulator(max_model_len=65536) as e:
        yield e


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run the console entry point (with its error handling) and capture its output."""
    monkeypatch.setattr(sys, "argv", ["tradegraph", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(exit_info.value.code or 0), out.out, out.err


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_check_reports_model_context_latency_and_structured_output(
    emu: VLLMEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADEGRAPH_LLM__PROFILE", "vllm")
    monkeypatch.setenv("TRADEGRAPH_LLM__BASE_URL", emu.base_url)
    result = CliRunner().invoke(app, ["llm", "check"])
    assert result.exit_code == 0, result.output
    assert f"endpoint:          {emu.base_url} (profile vllm)" in result.output
    assert "model:             nemotron" in result.output
    assert "context length:    65536 tokens (max_model_len)" in result.output
    assert "health:            ok" in result.output
    assert "tokenize endpoint: vllm" in result.output
    assert "round trip:" in result.output and " ms" in result.output
    assert "structured output: ok (action=hold" in result.output
    (body,) = emu.calls
    assert body["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"] == ["hold"]


def test_check_fails_when_structured_output_does_not_work(
    emu: VLLMEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emu.set_responder(lambda body: "prose")
    code, out, err = run_main(
        monkeypatch, capsys, "llm", "check", "--base-url", emu.base_url, "--profile", "vllm"
    )
    assert code == 1
    assert "structured output: FAILED (invalid json" in out
    assert err.startswith("error: structured output does not work") and err.count("\n") == 1


def test_check_unreachable_endpoint_is_one_line_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    code, out, err = run_main(monkeypatch, capsys, "llm", "check", "--base-url", url, "--profile", "vllm")
    assert code == 1 and out == ""
    assert err.startswith(f"error: cannot reach LLM endpoint {url}/models") and err.count("\n") == 1


def test_check_rejects_bad_profile_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(
        monkeypatch, capsys, "llm", "check", "--profile", "ollama", "--base-url", "http://x/v1"
    )
    assert code == 1 and err.startswith("error: invalid --profile='ollama'") and err.count("\n") == 1


def test_check_without_base_url_needs_llamacpp_profile(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRADEGRAPH_LLM__PROFILE", "vllm")
    code, _, err = run_main(monkeypatch, capsys, "llm", "check")
    assert code == 1 and "llm.base_url is required with profile 'vllm'" in err


def test_check_with_unserved_model_is_one_line_error(
    emu: VLLMEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "llm",
        "check",
        "--base-url",
        emu.base_url,
        "--profile",
        "vllm",
        "--model",
        "gpt-9",
    )
    assert code == 1 and "does not serve model 'gpt-9' (serves: nemotron)" in err
