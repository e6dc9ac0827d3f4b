"""One bar's requests in the stateful prompt mode (`agent.graph.stream.ask_bar`): each request is sent
as soon as its prompt is built (the first is at the server while the next prompt is built), the caller's
work for the next bar runs once every request is out and before any answer is awaited, and the answers are
the same as asking the whole bar at once, whatever order they arrive in."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future

import pytest

from agent.errors import LLMUnavailable
from agent.graph.stream import Prepared, ask_bar
from agent.llm.faults import LLMFault
from agent.llm.schema import Analysis, DecisionRequest, DecisionResult, hold
from tests.graph.test_stream import Server, _answer

SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")


def _prepared(events: list[str], t: int = 2_000) -> dict[str, Prepared]:
    def prepare(symbol: str) -> Prepared:
        events.append(f"build {symbol}")
        if symbol == "SOL/USDT":  # a prompt that could not be built: answered without a request
            return Analysis(symbol, hold(symbol, "budget"), abstained=True, fault=LLMFault.BUDGET, reason="b")
        return DecisionRequest(symbol=symbol, messages=(), prompt_hash=symbol, bar_ts=t), 1.0, None

    return {"prepare": prepare}  # type: ignore[dict-item]


def test_requests_leave_as_built_and_the_next_bar_is_prepared_before_waiting() -> None:
    events: list[str] = []
    server = Server()

    def submit(requests: Sequence[DecisionRequest]) -> Future[list[DecisionResult]]:
        events.append("send " + ",".join(r.symbol for r in requests))
        future = server.submit(requests)
        original = future.result

        def waited(timeout: float | None = None) -> list[DecisionResult]:
            events.append("wait")
            return original(timeout)

        future.result = waited  # type: ignore[method-assign]
        return future

    got = ask_bar(SYMBOLS, _prepared(events)["prepare"], submit, lambda: events.append("warm next bar"))
    assert events[:6] == [
        "build BTC/USDT",
        "send BTC/USDT",
        "build ETH/USDT",
        "send ETH/USDT",
        "build SOL/USDT",
        "warm next bar",
    ]
    assert events[6:] == ["wait", "wait"]
    assert list(got) == list(SYMBOLS)
    assert got["SOL/USDT"].fault is LLMFault.BUDGET
    expected = {
        s: Analysis.of(_answer(DecisionRequest(s, (), s, bar_ts=2_000)), 1.0, None) for s in SYMBOLS[:2]
    }
    assert {s: repr(got[s]) for s in expected} == {s: repr(a) for s, a in expected.items()}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_answers_do_not_depend_on_their_arrival_order(seed: int) -> None:
    reference = ask_bar(SYMBOLS, _prepared([])["prepare"], Server(0).submit, lambda: None)
    got = ask_bar(SYMBOLS, _prepared([])["prepare"], Server(seed).submit, lambda: None)
    assert {s: repr(a) for s, a in got.items()} == {s: repr(a) for s, a in reference.items()}


def test_an_unusable_endpoint_is_raised_for_the_bar() -> None:
    def submit(requests: Sequence[DecisionRequest]) -> Future[list[DecisionResult]]:
        failed: Future[list[DecisionResult]] = Future()
        failed.set_exception(LLMUnavailable("circuit open"))
        return failed

    with pytest.raises(LLMUnavailable):
        ask_bar(SYMBOLS, _prepared([])["prepare"], submit, lambda: None)


def test_a_failing_warm_up_does_not_lose_the_bar() -> None:
    def warm() -> None:
        raise ValueError("no candle for the next bar")

    got = ask_bar(SYMBOLS, _prepared([])["prepare"], Server().submit, warm)
    assert set(got) == set(SYMBOLS)
