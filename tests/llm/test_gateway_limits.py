"""What the gateway reads back is bounded and well-formed: huge bodies are not read, wrong-shape envelopes
abstain, and neither is repaired into a servable cache entry."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from agent.config import LLMSettings
from agent.db.models import LLMCall
from agent.db.session import open_db
from agent.llm.bodycap import ResponseTooLarge, cap_response_body, read_capped
from agent.llm.cache import CallStore
from agent.llm.gateway import LLMGateway
from agent.llm.schema import Action, DecisionRequest, DecisionResult
from agent.testing.vllm_emulator import Reply, VLLMEmulator
from tests.llm.answers import GOOD

CAP = 64 * 1024


def request(i: int = 0) -> DecisionRequest:
    messages = ({"role": "system", "content": "You trade crypto."}, {"role": "user", "content": f"bar {i}"})
    return DecisionRequest("BTC/USDT", messages, prompt_hash=f"p{i}")


def settings(**kw: Any) -> LLMSettings:
    base: dict[str, Any] = {
        "profile": "vllm",
        "model": "nemotron",
        "timeout_s": 30,
        "max_retries": 0,
        "max_response_bytes": CAP,
    }
    return LLMSettings(**{**base, **kw})


@pytest.fixture
def emu() -> Iterator[VLLMEmulator]:
    with VLLMEmulator() as e:
        yield e


@pytest.fixture
def store(db_url: str) -> Iterator[CallStore]:
    engine, factory = open_db(db_url)
    yield CallStore(factory)
    engine.dispose()


def rows(store: CallStore) -> list[LLMCall]:
    with store._factory() as s:  # noqa: SLF001 - test inspection of the audit table
        return list(s.scalars(select(LLMCall).order_by(LLMCall.id)))


def decide(gw: LLMGateway, *reqs: DecisionRequest) -> list[DecisionResult]:
    return gw.decide_many_sync(list(reqs))


def assert_abstained_unservable(result: DecisionResult, store: CallStore, reason: str) -> None:
    assert result.abstained and result.decision.action is Action.HOLD
    assert result.reason is not None and result.reason.startswith(reason), result.reason
    recorded = rows(store)
    assert recorded and all(r.error for r in recorded)
    assert not any(r.request.get("cacheable") for r in recorded)
    assert all(len(r.response_text or "") <= CAP and len(r.reasoning or "") <= CAP for r in recorded)


# ------------------------------------------------------------------ the size cap


@pytest.mark.parametrize("fault", ["oversized", "oversized_declared"])
def test_an_answer_over_the_cap_is_not_read_repaired_or_cached(
    emu: VLLMEmulator, store: CallStore, fault: str
) -> None:
    """A valid decision followed by 30 MB of spaces used to be read whole, echoed back and stored twice."""
    emu.set_responder(lambda body: fault)
    gw = LLMGateway(settings(), emu.base_url, store=store)
    (result,) = decide(gw, request())
    assert_abstained_unservable(result, store, f"response too large: over {CAP} bytes")
    assert emu.call_count == 1, "an over-cap answer gets no repair retry"
    assert result.response_text is None
    assert gw.circuit.state == "closed"
    (again,) = decide(gw, request())  # nothing servable was stored: the endpoint is asked again
    assert again.abstained and not again.from_cache and emu.call_count == 2


def test_the_cap_counts_the_whole_body_not_just_the_content(emu: VLLMEmulator, store: CallStore) -> None:
    emu.set_responder(lambda body: Reply(content=json.dumps(GOOD), pad_bytes=CAP))
    (result,) = decide(LLMGateway(settings(), emu.base_url, store=store), request())
    assert_abstained_unservable(result, store, "response too large")


def test_an_answer_under_the_cap_is_read(emu: VLLMEmulator, store: CallStore) -> None:
    emu.set_responder(lambda body: Reply(content=json.dumps(GOOD), pad_bytes=CAP - 2048))
    (result,) = decide(LLMGateway(settings(), emu.base_url, store=store), request())
    assert not result.abstained, result.reason
    assert result.decision.rationale == "range bound"


def test_an_error_body_over_the_cap_is_not_read_either(emu: VLLMEmulator, store: CallStore) -> None:
    emu.set_responder(lambda body: Reply(status=500, error="x" * (4 * CAP)))
    (result,) = decide(LLMGateway(settings(), emu.base_url, store=store), request())
    assert_abstained_unservable(result, store, "response too large")


def test_the_bad_answer_echoed_in_the_repair_prompt_is_bounded(emu: VLLMEmulator, store: CallStore) -> None:
    """Under the cap, an unparseable answer is repaired, but only its head goes back to the model."""
    emu.script(Reply(content="not json " + "z" * (CAP // 2)), lambda body: GOOD)
    (result,) = decide(LLMGateway(settings(), emu.base_url, store=store), request())
    assert not result.abstained, result.reason
    echoed = emu.calls[1]["messages"][2]["content"]
    assert echoed.startswith("not json zzz") and len(echoed) <= 4096


# ------------------------------------------------------------------ the envelope's shape


@pytest.mark.parametrize(
    ("fault", "where"),
    [
        ("usage_string", "usage.prompt_tokens"),
        ("usage_list", "usage"),
        ("model_object", "model"),
        ("choices_object", "choices"),
        ("content_parts", "content"),
    ],
)
def test_valid_json_of_the_wrong_shape_abstains_and_is_never_served(
    emu: VLLMEmulator, store: CallStore, fault: str, where: str
) -> None:
    emu.set_responder(lambda body: fault)
    gw = LLMGateway(settings(max_retries=2), emu.base_url, store=store)
    (result,) = decide(gw, request())
    assert_abstained_unservable(result, store, "bad response: ")
    assert result.reason is not None and where in result.reason
    assert emu.call_count == 1, "a malformed envelope is neither retried nor repaired"
    (again,) = decide(gw, request())
    assert again.abstained and not again.from_cache and emu.call_count == 2


@pytest.mark.parametrize("fault", ["exposure_bool", "exposure_string", "stop_bool", "duplicate_keys"])
def test_coerced_numbers_and_duplicated_keys_abstain_after_one_repair(
    emu: VLLMEmulator, store: CallStore, fault: str
) -> None:
    """`"target_exposure": true`, `"0.8"` and a second `"action": "buy"` used to end in filled buys."""
    emu.set_responder(lambda body: fault)
    (result,) = decide(LLMGateway(settings(), emu.base_url, store=store), request())
    assert_abstained_unservable(result, store, "invalid json: " if fault == "duplicate_keys" else "schema: ")
    assert emu.call_count == 2


def test_raw_newlines_in_the_answer_are_a_valid_decision(emu: VLLMEmulator, store: CallStore) -> None:
    emu.set_responder(lambda body: "raw_newline")
    (result,) = decide(LLMGateway(settings(), emu.base_url, store=store), request())
    assert not result.abstained, result.reason
    assert result.decision.rationale == "range bound,\n\tno edge\r\n"
    assert emu.call_count == 1 and [r.request["cacheable"] for r in rows(store)] == [True]


def test_an_answer_cached_by_the_lax_parser_is_asked_again(emu: VLLMEmulator, store: CallStore) -> None:
    """A servable row holding `"target_exposure": true` (accepted by the old parser) is not served."""
    gw = LLMGateway(settings(), emu.base_url, store=store)
    (first,) = decide(gw, request())
    assert not first.abstained and emu.call_count == 1
    coerced = json.dumps({**GOOD, "action": "buy", "target_exposure": True})
    with store._factory.begin() as s:  # noqa: SLF001 - plant the row an older version would have written
        s.get_one(LLMCall, first.llm_call_id).response_text = coerced
    (again,) = decide(gw, request())
    assert not again.from_cache and emu.call_count == 2
    assert not again.abstained and again.response_text != coerced


# ------------------------------------------------------------------ the cap itself, on any httpx2 client


def _client(body: bytes, headers: dict[str, str]) -> httpx2.AsyncClient:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=headers, stream=_Chunks(body))

    hooks = {"response": [cap_response_body(CAP)]}
    return httpx2.AsyncClient(transport=httpx2.MockTransport(handler), event_hooks=hooks)


class _Chunks(httpx2.AsyncByteStream):
    """A body delivered in 4 kB chunks, counting how much was pulled off the 'wire'."""

    def __init__(self, body: bytes) -> None:
        self.body, self.sent = body, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.body), 4096):
            self.sent += len(self.body[i : i + 4096])
            yield self.body[i : i + 4096]


async def _fetch(body: bytes, headers: dict[str, str], *, stream: bool) -> bytes:
    async with _client(body, headers) as client:
        if stream:
            resp = await client.send(client.build_request("GET", "http://x/"), stream=True)
            return await read_capped(resp, CAP)
        return (await client.get("http://x/")).content


@pytest.mark.parametrize("stream", [True, False])
def test_the_hook_stops_reading_a_body_past_the_cap(stream: bool) -> None:
    with pytest.raises(ResponseTooLarge, match=f"over {CAP} bytes"):
        asyncio.run(_fetch(b"x" * (CAP * 10), {}, stream=stream))
    assert asyncio.run(_fetch(b"x" * CAP, {}, stream=stream)) == b"x" * CAP


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    with pytest.raises(ResponseTooLarge):
        asyncio.run(_fetch(b"{}", {"content-length": str(CAP + 1)}, stream=True))


def test_a_compressed_body_cannot_expand_past_the_cap() -> None:
    bomb = gzip.compress(b" " * (CAP * 50))
    assert len(bomb) < CAP
    with pytest.raises(ResponseTooLarge):
        asyncio.run(_fetch(bomb, {"content-encoding": "gzip"}, stream=True))
