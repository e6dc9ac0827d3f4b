"""The decision request stream: bars ahead in flight, answers by (symbol, bar) whatever the arrival order, and
the same answers for every window; an unplanned bar is asked on the spot; a prompt that cannot be built is
answered without a request."""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import Future

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.graph.stream import DecisionStream, Prepared
from agent.llm.faults import LLMFault
from agent.llm.schema import Action, Analysis, DecisionRequest, DecisionResult, TradeDecision, hold

SYMBOLS = ("BTC/USDT", "ETH/USDT")
TIMES = [1_000 * i for i in range(1, 31)]


def _answer(request: DecisionRequest) -> DecisionResult:
    """A deterministic answer per (symbol, bar): buys on even bars, holds on odd ones."""
    assert request.bar_ts is not None
    buy = (request.bar_ts // 1_000) % 2 == 0
    decision = TradeDecision(
        symbol=request.symbol,
        action=Action.BUY if buy else Action.HOLD,
        target_exposure=0.25 if buy else 0.0,
        confidence=0.5,
        rationale=f"bar {request.bar_ts}",
    )
    return DecisionResult(request=request, decision=decision, abstained=False, latency_ms=1.0)


class Server:
    """A gateway stand-in: its answers arrive only when someone waits for one, and then every outstanding
    batch is answered in a shuffled order (the arrival order of a server with many slots)."""

    def __init__(self, seed: int = 0) -> None:
        self.pending: list[tuple[Future[list[DecisionResult]], list[DecisionRequest]]] = []
        self.sent: list[tuple[str, int]] = []
        self.outstanding: list[int] = []
        """Batches in flight each time a bar's answers were awaited."""
        self.rng = random.Random(seed)

    def submit(self, requests: Sequence[DecisionRequest]) -> Future[list[DecisionResult]]:
        future = _Lazy(self)
        self.pending.append((future, list(requests)))
        self.sent += [(r.symbol, r.bar_ts or 0) for r in requests]
        return future

    def release(self) -> None:
        self.outstanding.append(len(self.pending))
        batches, self.pending = self.pending, []
        self.rng.shuffle(batches)
        for future, requests in batches:
            future.set_result([_answer(r) for r in requests])


class _Lazy(Future[list[DecisionResult]]):
    def __init__(self, server: Server) -> None:
        super().__init__()
        self.server = server

    def result(self, timeout: float | None = None) -> list[DecisionResult]:
        if not self.done():
            self.server.release()
        return super().result(timeout)


def _prepare(symbol: str, t: int) -> Prepared:
    if symbol == "ETH/USDT" and t == TIMES[3]:  # a prompt that could not be built
        return Analysis(
            symbol, hold(symbol, "budget"), abstained=True, fault=LLMFault.BUDGET, reason="budget"
        )
    request = DecisionRequest(symbol="ASSET_A", messages=(), prompt_hash=f"{symbol}{t}", bar_ts=t)
    return request, 2.0, "ASSET_A"  # every request names the same alias: answers are matched by position


def _run(window: int, seed: int) -> tuple[list[dict[str, Analysis]], Server]:
    server = Server(seed)
    stream = DecisionStream(TIMES, SYMBOLS, _prepare, server.submit, window)
    out = []
    for t in TIMES:
        wanted = list(SYMBOLS) if t % 3_000 else ["BTC/USDT"]  # some bars need one symbol only
        out.append(stream.answers(t, wanted))
        assert stream.stats().ahead <= window
    return out, server


@given(window=st.integers(0, 12), seed=st.integers(0, 2**16))
def test_answers_do_not_depend_on_the_window_or_the_arrival_order(window: int, seed: int) -> None:
    reference, _ = _run(0, 0)
    got, server = _run(window, seed)
    assert [{s: repr(a) for s, a in bar.items()} for bar in got] == [
        {s: repr(a) for s, a in bar.items()} for bar in reference
    ]
    # every bar's requests were sent exactly once, in bar order, the unbuildable one never
    assert server.sent == [
        ("ASSET_A", t) for t in TIMES for s in SYMBOLS if not (s == "ETH/USDT" and t == TIMES[3])
    ]


def test_answers_map_back_to_the_real_symbol_with_the_prompts_scale() -> None:
    got, _ = _run(4, 1)
    first = got[0]["ETH/USDT"]
    assert first.symbol == "ASSET_A" and first.price_scale == 2.0 and first.alias == "ASSET_A"
    assert got[3]["ETH/USDT"].fault is LLMFault.BUDGET and got[3]["ETH/USDT"].abstained


@pytest.mark.parametrize("window", [0, 1, 5])
def test_the_next_window_bars_are_in_flight_before_a_bar_is_awaited(window: int) -> None:
    _, server = _run(window, 0)
    # the first wait finds bars t .. t+window submitted; later waits the newly submitted bar(s) only
    assert server.outstanding[0] == window + 1
    assert all(n <= window + 1 for n in server.outstanding)
    assert sum(server.outstanding) == len(TIMES)


def test_an_unplanned_bar_is_asked_on_its_own() -> None:
    server = Server()
    stream = DecisionStream(TIMES, SYMBOLS, _prepare, server.submit, 3)
    got = stream.answers(999, ["BTC/USDT"])
    assert server.sent == [("ASSET_A", 999), ("ASSET_A", 999)] and list(got) == ["BTC/USDT"]
    assert stream.stats().ahead == 0  # nothing of the plan was submitted for it


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        DecisionStream(TIMES, SYMBOLS, _prepare, Server().submit, -1)
