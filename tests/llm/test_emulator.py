"""The vLLM emulator speaks vLLM's dialect: endpoints, errors, streaming, queueing, prefix cache, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from agent.llm.schema import TradeDecision
from agent.testing.vllm_emulator import FAULTS, Reply, VLLMEmulator, fault

SCHEMA = TradeDecision.model_json_schema()
MESSAGES = [{"role": "system", "content": "You trade."}, {"role": "user", "content": "BTC/USDT: decide."}]


@pytest.fixture
def emu() -> Iterator[VLLMEmulator]:
    with VLLMEmulator(max_model_len=4096) as e:
        yield e


def client(emu: VLLMEmulator) -> openai.OpenAI:
    return openai.OpenAI(api_key="EMPTY", base_url=emu.base_url, max_retries=0, timeout=10)


def body(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "nemotron", "messages": MESSAGES, "max_tokens": 400}
    return {**base, **kw}


def post(emu: VLLMEmulator, payload: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(emu.base_url + "/chat/completions", json=payload, timeout=10)


def test_models_health_and_tokenize(emu: VLLMEmulator) -> None:
    models = client(emu).models.list()
    assert [m.id for m in models.data] == ["nemotron"]
    assert models.data[0].model_extra and models.data[0].model_extra["max_model_len"] == 4096
    assert httpx2.get(emu.root_url + "/health").status_code == 200
    emu.healthy = False
    assert httpx2.get(emu.root_url + "/health").status_code == 503
    tok = httpx2.post(
        emu.root_url + "/tokenize", json={"model": "nemotron", "prompt": "hello world, again"}
    ).json()
    assert tok["count"] == len(tok["tokens"]) == 4 and tok["max_model_len"] == 4096


def test_json_schema_answer_is_schema_valid_and_deterministic(emu: VLLMEmulator) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "d", "schema": SCHEMA, "strict": True}}
    a = post(emu, body(response_format=fmt)).json()
    b = post(emu, body(response_format=fmt)).json()
    content = a["choices"][0]["message"]["content"]
    TradeDecision.model_validate_json(content)
    assert content == b["choices"][0]["message"]["content"]
    others = set()
    for i in range(5):
        extra = [*MESSAGES, {"role": "user", "content": f"again {i}"}]
        text = post(emu, body(response_format=fmt, messages=extra)).json()["choices"][0]["message"]["content"]
        TradeDecision.model_validate_json(text)
        others.add(text)
    assert len(others) > 1  # derived from the request: different requests, different answers
    assert a["choices"][0]["finish_reason"] == "stop" and a["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize(
    "constraint",
    [
        {"structured_outputs": {"json": SCHEMA}},
        {"response_format": {"type": "json_object", "schema": SCHEMA}},
        {"response_format": {"type": "json_object"}},
    ],
)
def test_other_structured_output_forms_are_honoured(emu: VLLMEmulator, constraint: dict[str, Any]) -> None:
    content = post(emu, body(**constraint)).json()["choices"][0]["message"]["content"]
    TradeDecision.model_validate_json(content)


def test_guided_json_is_ignored_like_vllm(emu: VLLMEmulator) -> None:
    resp = post(emu, body(guided_json=SCHEMA))
    assert resp.status_code == 200
    content = resp.json()["choices"][0]["message"]["content"]
    with pytest.raises(ValueError):
        json.loads(content)
    assert emu.ignored_fields == ["guided_json"]


def test_reasoning_follows_chat_template_kwargs(emu: VLLMEmulator) -> None:
    on = post(emu, body()).json()["choices"][0]["message"]
    off = post(emu, body(chat_template_kwargs={"enable_thinking": False})).json()["choices"][0]["message"]
    low = post(emu, body(chat_template_kwargs={"enable_thinking": True, "low_effort": True})).json()
    assert on["reasoning"] and off["reasoning"] is None
    assert len(low["choices"][0]["message"]["reasoning"]) < len(on["reasoning"])


def test_errors_use_vllm_body_and_openai_exceptions(emu: VLLMEmulator) -> None:
    c = client(emu)
    with pytest.raises(openai.NotFoundError) as nf:
        c.chat.completions.create(model="other", messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]
    assert nf.value.body == {
        "message": "The model `other` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
    long = [{"role": "user", "content": "word " * 5000}]
    with pytest.raises(openai.BadRequestError) as br:
        c.chat.completions.create(model="nemotron", messages=long, max_tokens=100)  # type: ignore[arg-type]
    assert br.value.status_code == 400 and "context length is only 4096 tokens" in br.value.message
    assert isinstance(br.value.body, dict) and br.value.body["param"] == "input_tokens"
    resp = post(emu, body(max_tokens=5000))
    assert (
        resp.status_code == 400 and "cannot be greater than max_model_len" in resp.json()["error"]["message"]
    )
    resp = post(emu, body(stream_options={"include_usage": True}))
    assert resp.status_code == 400


def test_streaming_sends_deltas_and_a_final_usage_chunk(emu: VLLMEmulator) -> None:
    fmt = {"type": "json_object", "schema": SCHEMA}
    stream = client(emu).chat.completions.create(
        model="nemotron",
        messages=MESSAGES,
        max_tokens=400,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
        response_format=fmt,  # type: ignore[arg-type]
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning") or "" for c in chunks if c.choices
    )
    TradeDecision.model_validate_json(content)
    assert reasoning
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    plain = list(client(emu).chat.completions.create(model="nemotron", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert all(c.choices for c in plain)  # no usage chunk unless asked


def test_prefix_cache_counts_whole_shared_blocks(emu: VLLMEmulator) -> None:
    history = " ".join(f"close{i} {i * 7}" for i in range(100))
    first = [{"role": "system", "content": history}, {"role": "user", "content": "decide now"}]
    second = [{"role": "system", "content": history}, {"role": "user", "content": "and now?"}]
    u1 = post(emu, body(messages=first)).json()["usage"]
    u2 = post(emu, body(messages=second)).json()["usage"]
    assert u1["prompt_tokens_details"]["cached_tokens"] == 0
    cached = u2["prompt_tokens_details"]["cached_tokens"]
    assert cached > 0 and cached % emu.block_size == 0 and cached < u2["prompt_tokens"]
    assert cached >= u2["prompt_tokens"] - 2 * emu.block_size - 10
    metrics = httpx2.get(emu.root_url + "/metrics").text
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
    ):
        assert f"\n{name}{{" in "\n" + metrics
    assert f'vllm:prefix_cache_hits_total{{model_name="nemotron"}} {float(cached)}' in metrics


def test_prompt_tokens_details_can_be_off() -> None:
    with VLLMEmulator(prompt_tokens_details=False) as emu:
        assert post(emu, body()).json()["usage"]["prompt_tokens_details"] is None


def test_max_num_seqs_queues_the_rest_and_serves_hundreds_of_connections() -> None:
    with VLLMEmulator(latency_s=0.02, max_num_seqs=8) as emu:

        async def many() -> list[int]:
            c = openai.AsyncOpenAI(api_key="EMPTY", base_url=emu.base_url, max_retries=0, timeout=60)
            calls = [
                c.chat.completions.create(model="nemotron", messages=MESSAGES, max_tokens=50)  # type: ignore[arg-type]
                for _ in range(300)
            ]
            done = await asyncio.gather(*calls)
            await c.close()
            return [len(d.choices) for d in done]

        assert asyncio.run(many()) == [1] * 300
        assert emu.call_count == 300 and emu.peak_running == 8


def test_scripted_faults_then_responder_then_default(emu: VLLMEmulator) -> None:
    emu.script("http_500", Reply(content="scripted"), lambda b: "http_503")
    emu.set_responder(lambda b: {"symbol": "X/Y"} if b["messages"][-1]["content"] == "x" else None)
    assert post(emu, body()).status_code == 500
    assert post(emu, body()).json()["choices"][0]["message"]["content"] == "scripted"
    assert post(emu, body()).status_code == 503
    assert (
        post(emu, body(messages=[{"role": "user", "content": "x"}])).json()["choices"][0]["message"][
            "content"
        ]
        == '{"symbol": "X/Y"}'
    )
    assert post(emu, body()).status_code == 200
    assert emu.call_count == 5 and len(emu.calls) == 5
    with pytest.raises(ValueError, match="unknown fault"):
        emu.script("nope")
    emu.reset()
    assert emu.calls == [] and emu.requests == []


@pytest.mark.parametrize("kind", sorted(set(FAULTS) - {"timeout"}))
def test_each_fault_kind_is_served(emu: VLLMEmulator, kind: str) -> None:
    emu.script(kind)
    resp = post(emu, body())
    expected = fault(kind)
    assert resp.status_code == expected.status
    if expected.status != 200:
        assert resp.json()["error"]["code"] == expected.status
    elif expected.raw is not None:
        assert resp.text == expected.raw
    else:
        choice = resp.json()["choices"][0]
        padded = (expected.content or "") + " " * expected.pad_bytes
        assert choice["message"]["content"] == (padded if expected.pad_bytes else expected.content)
        assert choice["finish_reason"] == expected.finish_reason
        if expected.pad_bytes:  # streamed; with a Content-Length only when asked to declare it
            declared = resp.headers.get("content-length")
            assert declared == (str(len(resp.content)) if expected.declare_length else None)


def test_timeout_fault_hangs_until_the_client_gives_up(emu: VLLMEmulator) -> None:
    emu.script("timeout")
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.post(emu.base_url + "/chat/completions", json=body(), timeout=0.3)


def test_max_tokens_cuts_the_answer_with_finish_reason_length(emu: VLLMEmulator) -> None:
    cut = post(emu, body(max_tokens=20, response_format={"type": "json_object"})).json()["choices"][0]
    assert cut["finish_reason"] == "length"
    thinking_only = post(emu, body(max_tokens=5)).json()["choices"][0]
    assert thinking_only["finish_reason"] == "length" and thinking_only["message"]["content"] is None
