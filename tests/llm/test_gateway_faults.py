"""Every fault ends in an abstained HOLD with its reason recorded: retries, repair, shrink, circuit."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from agent.config import LLMSettings
from agent.db.models import LLMCall
from agent.db.session import open_db
from agent.errors import LLMUnavailable
from agent.llm.cache import CallStore
from agent.llm.gateway import LLMGateway
from agent.llm.schema import Action, DecisionRequest, DecisionResult
from agent.testing.vllm_emulator import Reply, VLLMEmulator
from tests.llm.answers import GOOD


def request(i: int = 0, **kw: Any) -> DecisionRequest:
    messages = ({"role": "system", "content": "You trade crypto."}, {"role": "user", "content": f"bar {i}"})
    return DecisionRequest("BTC/USDT", messages, prompt_hash=f"p{i}", **kw)


def settings(**kw: Any) -> LLMSettings:
    base: dict[str, Any] = {"profile": "vllm", "model": "nemotron", "timeout_s": 5, "max_retries": 0}
    return LLMSettings(**{**base, **kw})


class FakeSleep:
    """Records the retry delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def emu() -> Iterator[VLLMEmulator]:
    with VLLMEmulator() as e:
        yield e


@pytest.fixture
def store(sqlite_url: str) -> Iterator[CallStore]:
    engine, factory = open_db(sqlite_url)
    yield CallStore(factory)
    engine.dispose()


def rows(store: CallStore) -> list[LLMCall]:
    with store._factory() as s:  # noqa: SLF001 - test inspection of the audit table
        return list(s.scalars(select(LLMCall).order_by(LLMCall.id)))


def decide(gw: LLMGateway, reqs: list[DecisionRequest]) -> list[DecisionResult]:
    return gw.decide_many_sync(reqs)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("http_500", "http 500"),
        ("http_503", "http 503"),
        ("http_429", "http 429"),
        ("context_length", "context too long"),
        ("malformed_json", "invalid json: "),
        ("schema_violation", "schema: "),
        ("reasoning_only", "reasoning only, no content"),
        ("length", "cut off by max_tokens"),
        ("prose", "invalid json: "),
        ("bad_body", "bad response: "),
    ],
)
def test_every_fault_abstains_with_reason_recorded(
    emu: VLLMEmulator, store: CallStore, fault: str, reason: str
) -> None:
    emu.set_responder(lambda body: fault)
    gw = LLMGateway(settings(max_retries=1), emu.base_url, store=store, sleep=FakeSleep())
    (result,) = decide(gw, [request()])
    assert result.abstained and result.decision.action is Action.HOLD
    assert result.reason is not None and result.reason.startswith(reason), result.reason
    assert result.llm_call_id is not None
    recorded = rows(store)
    assert recorded and all(r.error for r in recorded)
    last = next(r for r in recorded if r.id == result.llm_call_id)
    assert last.error is not None and last.error.startswith(reason.split(":")[0])
    assert not any(r.request.get("cacheable") for r in recorded)


def test_timeout_abstains_without_waiting_for_the_server(store: CallStore) -> None:
    with VLLMEmulator() as emu:
        emu.script("timeout")
        gw = LLMGateway(settings(timeout_s=0.3, max_retries=2), emu.base_url, store=store, sleep=FakeSleep())
        (result,) = decide(gw, [request()])
        assert emu.call_count == 1  # a timeout is not retried
    assert result.abstained and result.reason == "timeout"
    assert [r.error for r in rows(store)] == ["timeout"]


def test_connection_refused_abstains_after_retries(store: CallStore) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleep = FakeSleep()
    gw = LLMGateway(settings(max_retries=2), f"http://127.0.0.1:{port}/v1", store=store, sleep=sleep)
    (result,) = decide(gw, [request()])
    assert result.abstained and result.reason is not None and result.reason.startswith("connection error")
    assert len(rows(store)) == 3 and len(sleep.delays) == 2


def test_5xx_is_retried_with_growing_jittered_backoff(emu: VLLMEmulator, store: CallStore) -> None:
    emu.script("http_500", "http_503", "http_429")
    sleep = FakeSleep()
    gw = LLMGateway(
        settings(max_retries=3),
        emu.base_url,
        store=store,
        sleep=sleep,
        backoff_base_s=1.0,
        backoff_max_s=100.0,
    )
    (result,) = decide(gw, [request()])
    assert not result.abstained and emu.call_count == 4
    assert [r.error for r in rows(store)] == ["http 500", "http 503", "http 429", None]
    for n, delay in enumerate(sleep.delays):
        assert 2**n / 2 <= delay <= 2**n
    assert result.extra and result.extra["attempts"] == 4


def test_bad_answer_gets_one_repair_retry_with_the_error(emu: VLLMEmulator, store: CallStore) -> None:
    emu.script("malformed_json", lambda body: GOOD)
    gw = LLMGateway(settings(), emu.base_url, store=store)
    (result,) = decide(gw, [request()])
    assert not result.abstained and result.decision.rationale == "range bound"
    first, repair = emu.calls
    assert repair["messages"][:2] == first["messages"]
    assert repair["messages"][2]["role"] == "assistant" and "0.5,," in repair["messages"][2]["content"]
    assert "invalid json" in repair["messages"][3]["content"]
    kinds = [(r.request["attempt"], r.error is None, r.request["cacheable"]) for r in rows(store)]
    assert kinds == [("first", False, False), ("repair", True, True)]
    assert len({r.request_hash for r in rows(store)}) == 1


def test_repair_that_fails_again_abstains_naming_both(emu: VLLMEmulator, store: CallStore) -> None:
    emu.script("schema_violation", "reasoning_only")
    (result,) = decide(LLMGateway(settings(), emu.base_url, store=store), [request()])
    assert result.abstained and result.reason is not None
    assert result.reason.startswith("schema: ") and "repair: reasoning only, no content" in result.reason
    assert emu.call_count == 2


def test_context_length_400_retries_once_with_shrunk_request(store: CallStore) -> None:
    long_text = "price history " * 600
    short = request(1)
    shrinks: list[int] = []

    def shrink() -> DecisionRequest:
        shrinks.append(1)
        return short

    big = DecisionRequest("BTC/USDT", ({"role": "user", "content": long_text},), "big", shrink=shrink)
    with VLLMEmulator(max_model_len=1024) as emu:
        (result,) = decide(LLMGateway(settings(max_tokens=200), emu.base_url, store=store), [big])
        assert emu.call_count == 2 and emu.calls[1]["messages"] == list(short.messages)
    assert not result.abstained and shrinks == [1]
    assert result.request is big and result.extra and result.extra["shrunk_prompt_hash"] == "p1"
    assert [r.error for r in rows(store)] == ["context too long", None]


@pytest.mark.parametrize("shrink", [None, lambda: None])
def test_context_length_without_shrink_abstains(store: CallStore, shrink: Any) -> None:
    big = DecisionRequest("BTC/USDT", ({"role": "user", "content": "x " * 3000},), "big", shrink=shrink)
    with VLLMEmulator(max_model_len=1024) as emu:
        (result,) = decide(LLMGateway(settings(max_tokens=200), emu.base_url, store=store), [big])
        assert emu.call_count == 1
    assert result.abstained and result.reason == "context too long"


def test_shrink_that_is_still_too_long_abstains_after_one_retry(emu: VLLMEmulator, store: CallStore) -> None:
    emu.set_responder(lambda body: "context_length")
    calls: list[int] = []

    def shrink() -> DecisionRequest:
        calls.append(1)
        return request(1, shrink=shrink)

    (result,) = decide(LLMGateway(settings(), emu.base_url, store=store), [request(0, shrink=shrink)])
    assert result.abstained and result.reason == "context too long"
    assert calls == [1] and emu.call_count == 2


def test_shrink_hook_that_raises_abstains(emu: VLLMEmulator, store: CallStore) -> None:
    emu.script("context_length")

    def shrink() -> DecisionRequest:
        raise RuntimeError("no history left")

    (result,) = decide(LLMGateway(settings(), emu.base_url, store=store), [request(shrink=shrink)])
    assert result.abstained and result.reason == "context too long (shrink failed: no history left)"


def test_circuit_opens_after_consecutive_failures_and_closes_after_cooldown(
    emu: VLLMEmulator, store: CallStore
) -> None:
    clock = FakeClock()
    cfg = settings(circuit_failures=2, circuit_cooldown_s=30)
    gw = LLMGateway(cfg, emu.base_url, store=store, clock=clock, sleep=FakeSleep())
    emu.set_responder(lambda body: "http_500")
    assert [r.reason for r in decide(gw, [request(1)])] == ["http 500"]
    assert gw.circuit.state == "closed"
    assert [r.reason for r in decide(gw, [request(2)])] == ["http 500"]
    assert gw.circuit.state == "open"
    results = decide(gw, [request(3), request(4)])
    assert [r.reason for r in results] == ["circuit open", "circuit open"]
    assert emu.call_count == 2  # nothing went out while open
    assert [r.error for r in rows(store)][-2:] == ["circuit open", "circuit open"]
    with pytest.raises(LLMUnavailable, match="circuit open"):
        asyncio.run(gw.health())

    clock.now += 29.0
    assert decide(gw, [request(5)])[0].reason == "circuit open"
    clock.now += 1.0
    assert gw.circuit.state == "half-open"
    assert decide(gw, [request(6)])[0].reason == "http 500"  # failed probe: open again at once
    assert gw.circuit.state == "open"
    clock.now += 30.0
    emu.set_responder(None)
    assert not decide(gw, [request(7)])[0].abstained
    assert gw.circuit.state == "closed"


def test_bad_answers_do_not_trip_the_circuit(emu: VLLMEmulator) -> None:
    emu.set_responder(lambda body: "malformed_json")
    gw = LLMGateway(settings(circuit_failures=1), emu.base_url)
    decide(gw, [request(1), request(2)])
    assert gw.circuit.state == "closed"


def test_health_reports_endpoint_and_raises_when_unreachable(emu: VLLMEmulator) -> None:
    info = asyncio.run(LLMGateway(settings(), emu.base_url).health())
    assert info.model == "nemotron" and info.max_model_len == 32768 and info.health == "ok"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LLMUnavailable, match="cannot reach"):
        asyncio.run(LLMGateway(settings(), f"http://127.0.0.1:{port}/v1").health())


def test_model_discovery_failure_abstains_every_request(store: CallStore) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gw = LLMGateway(settings(model=None), f"http://127.0.0.1:{port}/v1", store=store)
    results = decide(gw, [request(1), request(2)])
    assert all(r.abstained and r.reason and r.reason.startswith("model discovery failed") for r in results)
    assert all(r.llm_call_id is not None for r in results) and len(rows(store)) == 2


def test_no_exception_escapes_for_mixed_faults_in_one_batch(emu: VLLMEmulator, store: CallStore) -> None:
    faults = {"bar 0": "http_500", "bar 1": "malformed_json", "bar 2": "length", "bar 3": None}
    emu.set_responder(lambda body: faults[body["messages"][1]["content"]])
    gw = LLMGateway(settings(), emu.base_url, store=store)
    results = decide(gw, [request(i) for i in range(4)])
    assert [r.abstained for r in results] == [True, True, True, False]
    assert [r.llm_call_id is not None for r in results] == [True] * 4
    assert len({r.llm_call_id for r in results}) == 4


def test_unconstrained_answer_with_reply_object(emu: VLLMEmulator) -> None:
    emu.script(Reply(content="```json\n" + __import__("json").dumps(GOOD) + "\n```"))
    (result,) = decide(LLMGateway(settings(), emu.base_url), [request()])
    assert not result.abstained and result.decision.confidence == 0.3


def test_model_discovery_respects_the_open_circuit(store: CallStore) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = FakeClock()
    gw = LLMGateway(
        settings(model=None, circuit_failures=1), f"http://127.0.0.1:{port}/v1", store=store, clock=clock
    )
    assert decide(gw, [request(1)])[0].reason.startswith("model discovery failed")  # type: ignore[union-attr]
    assert decide(gw, [request(2)])[0].reason == "circuit open"
    assert [r.error for r in rows(store)][-1] == "circuit open"
