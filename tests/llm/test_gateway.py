"""LLMGateway against the vLLM emulator: request shaping per profile, reasoning, order and concurrency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from agent.config import LLMSettings
from agent.db.prompts import PromptText, prompt_text
from agent.llm import profiles
from agent.llm.cache import CallRecord, request_key
from agent.llm.gateway import LLMGateway
from agent.llm.parse import parse_answer
from agent.llm.schema import Action, DecisionRequest, TradeDecision
from agent.testing.vllm_emulator import Reply, VLLMEmulator


def request(i: int = 0, symbol: str = "BTC/USDT", **kw: Any) -> DecisionRequest:
    """A small decision request; `i` makes it distinct."""
    messages = ({"role": "system", "content": "You trade crypto."}, {"role": "user", "content": f"bar {i}"})
    return DecisionRequest(symbol, messages, prompt_hash=f"p{i}", **kw)


def settings(**kw: Any) -> LLMSettings:
    base: dict[str, Any] = {"profile": "vllm", "model": "nemotron", "timeout_s": 5, "max_retries": 0}
    return LLMSettings(**{**base, **kw})


GOOD_BUY = {
    "symbol": "BTC/USDT",
    "action": "buy",
    "target_exposure": 0.2,
    "confidence": 0.5,
    "stop_loss": None,
    "take_profit": None,
    "invalidation": "",
    "rationale": "x",
}


@pytest.fixture
def emu() -> Iterator[VLLMEmulator]:
    with VLLMEmulator() as e:
        yield e


def run(gw: LLMGateway, reqs: list[DecisionRequest]) -> list[Any]:
    return gw.decide_many_sync(reqs)


def test_vllm_profile_sends_json_schema_max_tokens_and_never_guided(emu: VLLMEmulator) -> None:
    gw = LLMGateway(settings(max_tokens=300, temperature=0.7, top_p=0.9, seed=7), emu.base_url)
    results = run(gw, [request(0, allowed_actions=(Action.HOLD, Action.CLOSE), max_exposure=0.4)])
    assert not results[0].abstained, results[0].reason
    (body,) = emu.calls
    assert not [k for k in body if k.startswith("guided")]
    assert "structured_outputs" not in body
    assert body["max_tokens"] == 300
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.7, 0.9, 7)
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(TradeDecision.model_fields)
    assert schema["properties"]["action"]["enum"] == ["hold", "close"]
    assert schema["properties"]["symbol"]["enum"] == ["BTC/USDT"]
    assert schema["properties"]["target_exposure"]["maximum"] == 0.4
    assert {"type": "null"} in schema["properties"]["stop_loss"]["anyOf"]
    assert "$defs" not in json.dumps(schema) and "default" not in json.dumps(schema)
    assert results[0].decision.action in (Action.HOLD, Action.CLOSE)


@pytest.mark.parametrize(
    ("thinking", "budget", "kwargs", "sent_budget"),
    [
        ("off", None, {"enable_thinking": False}, None),
        ("on", None, {"enable_thinking": True}, None),
        ("low", 256, {"enable_thinking": True, "low_effort": True}, 256),
        ("off", 256, {"enable_thinking": False}, None),
    ],
)
def test_chat_template_kwargs_follow_thinking_setting(
    emu: VLLMEmulator, thinking: str, budget: int | None, kwargs: dict[str, bool], sent_budget: int | None
) -> None:
    run(LLMGateway(settings(thinking=thinking, thinking_token_budget=budget), emu.base_url), [request()])
    (body,) = emu.calls
    assert body["chat_template_kwargs"] == kwargs
    assert body.get("thinking_token_budget") == sent_budget


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_is_kept_from_either_field(field: str) -> None:
    with VLLMEmulator(reasoning_field=field) as emu:
        (result,) = run(LLMGateway(settings(thinking="on"), emu.base_url), [request()])
    assert not result.abstained
    assert result.reasoning and "decision" in result.reasoning
    assert result.response_text and json.loads(result.response_text)["symbol"] == "BTC/USDT"


def test_thinking_off_gets_no_reasoning(emu: VLLMEmulator) -> None:
    (result,) = run(LLMGateway(settings(thinking="off"), emu.base_url), [request()])
    assert result.reasoning is None and not result.abstained


def test_llamacpp_profile_sends_json_object_with_grammar_safe_schema(emu: VLLMEmulator) -> None:
    run(LLMGateway(settings(profile="llamacpp"), emu.base_url), [request(max_exposure=0.5)])
    (body,) = emu.calls
    fmt = body["response_format"]
    assert fmt["type"] == "json_object" and "json_schema" not in fmt
    props = fmt["schema"]["properties"]
    assert props["target_exposure"]["enum"][-1] == 0.5 and max(props["confidence"]["enum"]) == 1.0
    price = props["stop_loss"]["anyOf"][0]
    assert price["type"] == "string" and price["pattern"] == profiles.POSITIVE_DECIMAL
    # the grammar bounds free text too: SmolLM2 otherwise rambles past the schema's limits
    assert (props["rationale"]["maxLength"], props["invalidation"]["maxLength"]) == (600, 300)
    assert "chat_template_kwargs" not in body and body["max_tokens"] == 512


def test_grammar_price_pattern_is_parsed_as_float() -> None:
    schema = profiles.decision_schema(request(), "llamacpp")
    import re

    pattern = re.compile(schema["properties"]["stop_loss"]["anyOf"][0]["pattern"])
    for ok in ("64250.5", "3", "0.5", "0.000123"):
        assert pattern.match(ok), ok
    for bad in ("-3", "0", "0.0", "01", "1e5", "abc"):
        assert not pattern.match(bad), bad


@examples(max_examples=200, deadline=None)
@given(st.from_regex(profiles.POSITIVE_DECIMAL, fullmatch=True))
def test_every_price_the_llamacpp_grammar_allows_is_read_as_that_number(text: str) -> None:
    """The schema sent to llama.cpp asks for prices as text; what it allows, the parser reads, exactly."""
    answer = json.dumps({**GOOD_BUY, "stop_loss": text, "take_profit": text})
    parsed = parse_answer(answer, "stop", prices_as_text=True)
    assert parsed.decision is not None, (text, parsed.error)
    assert parsed.decision.stop_loss == parsed.decision.take_profit == float(text) > 0


def test_price_text_is_read_for_the_llamacpp_profile_only(emu: VLLMEmulator) -> None:
    emu.set_responder(lambda body: {**GOOD_BUY, "stop_loss": "64250.5"})
    (text_ok,) = run(LLMGateway(settings(profile="llamacpp"), emu.base_url), [request()])
    assert not text_ok.abstained and text_ok.decision.stop_loss == 64250.5
    (refused,) = run(LLMGateway(settings(profile="vllm"), emu.base_url), [request(1)])
    assert refused.abstained and refused.reason is not None and "stop_loss" in refused.reason


def test_openai_profile_uses_max_completion_tokens_and_strict_schema(emu: VLLMEmulator) -> None:
    run(LLMGateway(settings(profile="openai"), emu.base_url), [request()])
    (body,) = emu.calls
    assert "max_tokens" not in body and body["max_completion_tokens"] == 512
    assert body["response_format"]["json_schema"]["strict"] is True
    assert "maxLength" not in json.dumps(body["response_format"])
    assert "chat_template_kwargs" not in body


def test_results_come_back_in_request_order(emu: VLLMEmulator) -> None:
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"] * 4
    emu.set_responder(lambda body: Reply(delay_s=0.05 * (len(body["messages"][1]["content"]) % 3)))
    reqs = [request(i, symbol=s) for i, s in enumerate(symbols)]
    results = run(LLMGateway(settings(), emu.base_url), reqs)
    assert [r.request for r in results] == reqs
    assert all(r.abstained for r in results)  # a Reply with no content: answered, but nothing to parse
    emu.set_responder(None)
    results = run(LLMGateway(settings(), emu.base_url), reqs)
    assert [r.decision.symbol for r in results] == symbols


def test_concurrency_is_bounded_by_semaphore() -> None:
    with VLLMEmulator(latency_s=0.05, max_num_seqs=64) as emu:
        results = run(LLMGateway(settings(concurrency=3), emu.base_url), [request(i) for i in range(12)])
        assert emu.peak_running == 3
    assert len(results) == 12 and not any(r.abstained for r in results)


def test_requests_run_concurrently_up_to_the_limit() -> None:
    with VLLMEmulator(latency_s=0.05, max_num_seqs=64) as emu:
        run(LLMGateway(settings(concurrency=8), emu.base_url), [request(i) for i in range(8)])
        assert emu.peak_running == 8


def test_disallowed_action_from_unconstrained_server_is_returned_as_is(emu: VLLMEmulator) -> None:
    answer = {
        "symbol": "BTC/USDT",
        "action": "buy",
        "target_exposure": 0.9,
        "confidence": 0.8,
        "stop_loss": None,
        "take_profit": None,
        "invalidation": "",
        "rationale": "breakout",
    }
    emu.set_responder(lambda body: answer)
    (result,) = run(LLMGateway(settings(), emu.base_url), [request(allowed_actions=(Action.HOLD,))])
    assert not result.abstained and result.decision.action is Action.BUY


def test_decide_one_sync_works_inside_a_running_loop(emu: VLLMEmulator) -> None:
    gw = LLMGateway(settings(), emu.base_url)

    async def inside() -> Any:
        return gw.decide_one_sync(request())

    result = asyncio.run(inside())
    assert not result.abstained and result.decision.symbol == "BTC/USDT"


def test_model_is_discovered_when_not_configured(emu: VLLMEmulator) -> None:
    (result,) = run(LLMGateway(settings(model=None), emu.base_url), [request()])
    assert not result.abstained and result.model == "nemotron"
    assert ("GET", "/v1/models") in emu.requests


def test_unknown_model_abstains_with_http_404(emu: VLLMEmulator) -> None:
    (result,) = run(LLMGateway(settings(model="nope"), emu.base_url), [request()])
    assert result.abstained and result.reason is not None and result.reason.startswith("http 404")


def test_empty_request_list_makes_no_call(emu: VLLMEmulator) -> None:
    assert run(LLMGateway(settings(), emu.base_url), []) == []
    assert emu.requests == []


def test_sync_calls_reuse_one_client_until_closed(emu: VLLMEmulator) -> None:
    with LLMGateway(settings(), emu.base_url) as gw:
        gw.decide_one_sync(request(1))
        (state,) = gw._states.values()  # noqa: SLF001 - the loop-bound client is the point of this test
        client = state.client
        gw.decide_one_sync(request(2))
        assert [s.client for s in gw._states.values()] == [client]  # noqa: SLF001
        thread = gw._background._thread  # type: ignore[union-attr]  # noqa: SLF001
    assert not thread.is_alive() and not gw._states  # noqa: SLF001
    assert client is not None and client.is_closed()
    assert not gw.decide_one_sync(request(3)).abstained  # usable again after close
    gw.close()


class RecordingStore:
    """A call store that keeps the rows it is given (no cache hits)."""

    def __init__(self) -> None:
        self.rows: list[CallRecord] = []

    def lookup(self, hashes: list[str]) -> dict[str, Any]:
        return {}

    def insert_many(self, records: list[CallRecord]) -> list[int]:
        self.rows.extend(records)
        return list(range(len(self.rows) - len(records), len(self.rows)))

    def store_prompts(self, prompts: list[PromptText]) -> None:
        pass


def test_stored_rows_carry_the_messages_serialised_once_with_the_request_hash(emu: VLLMEmulator) -> None:
    """The gateway hands the store the canonical messages it hashed the request with (first attempts and
    their retries), so the store does not serialise a long prompt again; a repair's own messages do not
    carry it (the store serialises those)."""
    store = RecordingStore()
    emu.script(Reply(content="not json"), Reply(content=json.dumps(GOOD_BUY)))
    with LLMGateway(settings(), emu.base_url, store=store) as gw:  # type: ignore[arg-type]
        run(gw, [request(1)])
    first, repair = store.rows
    assert isinstance(first.prompt, PromptText)
    assert first.prompt == request_key(first.request["payload"]).prompt
    assert first.request_hash == request_key(first.request["payload"]).hash
    assert repair.prompt is None


def test_messages_the_prompt_builder_serialised_are_stored_as_they_are(emu: VLLMEmulator) -> None:
    """A request carrying its stored form (`DecisionRequest.stored`, from the prompt builder) hands that very
    text to the store: the gateway does not serialise a long prompt a second time."""
    store = RecordingStore()
    plain = request(2)
    stored = prompt_text(plain.messages)
    emu.script(Reply(content=json.dumps(GOOD_BUY)))
    with LLMGateway(settings(), emu.base_url, store=store) as gw:  # type: ignore[arg-type]
        run(gw, [DecisionRequest(plain.symbol, plain.messages, stored.digest, stored=stored)])
    assert store.rows[0].prompt is stored
