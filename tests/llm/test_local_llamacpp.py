"""The embedded endpoint: llama-cpp-python's server with the bundled SmolLM2, started once for this module.

Marked `llamacpp`; it runs whenever llama-cpp-python is installed (CI installs the `local` extra).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

pytest.importorskip("llama_cpp", reason="needs the local extra: pip install 'tradegraph[local]'")

from agent.config import LLMSettings  # noqa: E402
from agent.errors import ConfigError, LLMUnavailable  # noqa: E402
from agent.llm.discovery import discover  # noqa: E402
from agent.llm.gateway import LLMGateway  # noqa: E402
from agent.llm.local_server import (  # noqa: E402
    MODEL_ALIAS,
    LocalLLMServer,
    bundled_model_path,
    free_port,
    resolve_endpoint,
)
from agent.llm.schema import Action, DecisionRequest, TradeDecision  # noqa: E402

N_CTX = 2048


@pytest.fixture(scope="module")
def server() -> Iterator[LocalLLMServer]:
    # One thread: llama.cpp's worker threads spin at barriers, which is many times slower than a single
    # thread when the CI machine is busy with other tests.
    with LocalLLMServer(port=None, n_ctx=N_CTX, threads=1) as srv:
        yield srv
    assert not srv.running


def local_settings(**kw: object) -> LLMSettings:
    base: dict[str, object] = {
        "profile": "llamacpp",
        "max_tokens": 256,
        "timeout_s": 120,
        "max_retries": 0,
        "local_n_ctx": N_CTX,
        "temperature": 0.0,
    }
    return LLMSettings(**{**base, **kw})


@pytest.mark.llamacpp
def test_decision_round_trip_is_schema_valid(server: LocalLLMServer) -> None:
    messages = (
        {"role": "system", "content": "You are a crypto trading assistant. Answer with one JSON object."},
        {"role": "user", "content": "BTC/USDT closed at 64250 after a 2% rise. Propose a decision."},
    )
    req = DecisionRequest(
        "BTC/USDT", messages, prompt_hash="local", allowed_actions=(Action.HOLD, Action.BUY)
    )
    result = LLMGateway(local_settings(), server.base_url).decide_one_sync(req)
    assert not result.abstained, (result.reason, result.response_text)
    assert result.model == MODEL_ALIAS
    assert isinstance(result.decision, TradeDecision) and result.decision.symbol == "BTC/USDT"
    assert result.decision.action in (Action.HOLD, Action.BUY)
    assert result.prompt_tokens and result.completion_tokens


@pytest.mark.llamacpp
def test_discovery_falls_back_to_local_n_ctx_and_models_probe(server: LocalLLMServer) -> None:
    info = discover(server.base_url, local_settings())
    assert info.model == MODEL_ALIAS and info.models == (MODEL_ALIAS,)
    assert info.max_model_len == N_CTX and info.context_source == "settings.llm.local_n_ctx"
    assert info.health.startswith("ok (no /health")
    assert info.tokenize == "llamacpp"
    assert asyncio.run(LLMGateway(local_settings(), server.base_url).health()).model == MODEL_ALIAS


@pytest.mark.llamacpp
def test_over_long_prompt_is_context_too_long(server: LocalLLMServer) -> None:
    long = DecisionRequest("BTC/USDT", ({"role": "user", "content": "candle " * 4000},), prompt_hash="long")
    result = LLMGateway(local_settings(), server.base_url).decide_one_sync(long)
    assert result.abstained and result.reason == "context too long"


def test_bundled_model_is_the_smollm2_gguf() -> None:
    path = bundled_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


@pytest.mark.llamacpp
def test_server_that_dies_at_startup_fails_fast_with_its_log(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    srv = LocalLLMServer(port=None, n_ctx=512, model_path=bogus, startup_timeout_s=120)
    with pytest.raises(LLMUnavailable, match="exited with code"):
        srv.start()
    assert not srv.running


def test_command_line_has_alias_ctx_and_threads() -> None:
    cmd = LocalLLMServer(port=None, n_ctx=1024, threads=3).command()
    assert cmd[1:3] == ["-m", "llama_cpp.server"]
    for flag, value in (
        ("--n_ctx", "1024"),
        ("--model_alias", MODEL_ALIAS),
        ("--n_threads", "3"),
        ("--host", "127.0.0.1"),
    ):
        assert cmd[cmd.index(flag) + 1] == value


def test_resolve_endpoint_uses_configured_url_without_starting_anything() -> None:
    with resolve_endpoint(LLMSettings(profile="vllm", base_url="http://gpu:8000/v1")) as url:
        assert url == "http://gpu:8000/v1"


def test_resolve_endpoint_refuses_missing_url_for_remote_profiles() -> None:
    with (
        pytest.raises(ConfigError, match="base_url is required"),
        resolve_endpoint(LLMSettings(profile="vllm")),
    ):
        pass


@pytest.mark.llamacpp
def test_resolve_endpoint_starts_and_stops_the_embedded_server() -> None:
    llm = LLMSettings(profile="llamacpp", local_port=free_port(), local_n_ctx=512, local_threads=1)
    with resolve_endpoint(llm) as url:
        assert url == f"http://127.0.0.1:{llm.local_port}/v1"
        assert httpx2.get(url + "/models", timeout=10).json()["data"][0]["id"] == MODEL_ALIAS
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(url + "/models", timeout=2)


@pytest.mark.llamacpp
def test_cli_serve_local_runs_until_interrupted(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.cli.main",
            "llm",
            "serve-local",
            "--port",
            str(port),
            "--n-ctx",
            "512",
            "--threads",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once /v1/models answers
        assert first.strip() == f"serving SmolLM2-135M at http://127.0.0.1:{port}/v1 (Ctrl-C to stop)"
        assert httpx2.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).status_code == 200
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopping" in out
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
