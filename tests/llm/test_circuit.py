"""The circuit breaker: half-open lets exactly one probe through, however many calls arrive at once."""

from __future__ import annotations

import asyncio
import json
import random

from agent.config import LLMSettings
from agent.llm.circuit import CircuitBreaker, backoff_delay
from agent.llm.gateway import LLMGateway
from agent.llm.schema import DecisionRequest
from agent.testing.vllm_emulator import Reply, VLLMEmulator
from tests.llm.answers import GOOD


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _opened(clock: Clock, failures: int = 1, cooldown_s: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failures, cooldown_s, clock)
    for _ in range(failures):
        breaker.record_failure()
    assert breaker.state == "open"
    clock.now += cooldown_s
    assert breaker.state == "half-open"
    return breaker


def test_half_open_lets_exactly_one_of_many_concurrent_calls_through() -> None:
    clock = Clock()
    breaker = _opened(clock)
    sent: list[int] = []

    async def call(i: int, release: asyncio.Event) -> bool:
        with breaker.attempt() as allowed:
            if not allowed:
                return False
            sent.append(i)
            await release.wait()  # the probe is in flight while the others arrive
            breaker.record_success()
            return True

    async def main() -> list[bool]:
        release = asyncio.Event()
        tasks = [asyncio.create_task(call(i, release)) for i in range(10)]
        while not all(t.done() for t in tasks[1:]):  # every other call has been decided
            await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(*tasks)

    allowed = asyncio.run(main())
    assert sent == [0] and allowed == [True] + [False] * 9
    assert breaker.state == "closed"


def test_a_failed_probe_reopens_and_an_abandoned_probe_frees_the_slot() -> None:
    clock = Clock()
    breaker = _opened(clock)
    with breaker.attempt() as allowed:
        assert allowed
        breaker.record_failure()
    assert breaker.state == "open"
    clock.now += 30.0
    try:
        with breaker.attempt() as allowed:  # the prober is cancelled: nothing recorded
            assert allowed
            raise asyncio.CancelledError
    except asyncio.CancelledError:
        pass
    assert breaker.state == "half-open"
    with breaker.attempt() as allowed:
        assert allowed, "a probe that never reported must not block the next one"


def test_closed_lets_every_call_through_and_open_none() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 30.0, clock)
    with breaker.attempt() as a, breaker.attempt() as b:
        assert a and b
    breaker.record_failure()
    breaker.record_failure()
    with breaker.attempt() as c:
        assert not c and not breaker.allow()


def test_backoff_is_exponential_with_equal_jitter() -> None:
    rng = random.Random(1)
    for n in range(6):
        d = min(8.0, 0.5 * 2**n)
        assert d / 2 <= backoff_delay(n, 0.5, 8.0, rng) <= d


def test_the_gateway_sends_exactly_one_probe_while_half_open() -> None:
    """Eight concurrent requests reach a half-open circuit: one goes out, seven abstain without a call."""
    clock = Clock()
    llm = LLMSettings(
        profile="vllm", model="nemotron", max_retries=0, circuit_failures=1, circuit_cooldown_s=30
    )
    messages = ({"role": "user", "content": "bar"},)
    with VLLMEmulator() as emu:
        gw = LLMGateway(llm, emu.base_url, clock=clock)
        emu.script("http_500")
        assert gw.decide_one_sync(DecisionRequest("BTC/USDT", messages, "p0")).reason == "http 500"
        assert gw.circuit.state == "open"
        clock.now += 30.0
        emu.script(Reply(content=json.dumps(GOOD)))  # the probe succeeds; nothing else may go out meanwhile
        before = emu.call_count
        results = gw.decide_many_sync([DecisionRequest("BTC/USDT", messages, f"p{i}") for i in range(1, 9)])
        probes = emu.call_count - before
        gw.close()
    assert probes == 1
    assert sum(not r.abstained for r in results) == 1
    assert [r.reason for r in results if r.abstained] == ["circuit open"] * 7
    assert gw.circuit.state == "closed"
