"""`MarketContextBuilder.warm`: the market part of a later bar's prompt built ahead (while the current bar's
answers are on their way, in the stateful prompt mode). A build after a warm-up gives the same prompt as one
without, and finds the market part done: across a day's end it counts no completed chunk, only the day in
progress and the tail."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from agent.llm.context import MarketContextBuilder
from tests.llm.test_context_incremental import candles, make_ctx
from tests.llm.test_context_round_trips import CallCounter


@pytest.mark.parametrize("leakage", [False, True])
def test_a_build_after_warm_up_is_the_same_prompt(leakage: bool) -> None:
    frame = candles("BTC_USDT-1h").iloc[:4_000]
    plain = MarketContextBuilder(CallCounter(), default_budget=6_000, leakage_control=leakage)
    warmed = MarketContextBuilder(CallCounter(), default_budget=6_000, leakage_control=leakage)
    for n in range(3_000, 3_060):  # across two day ends
        expected = plain.build(make_ctx(frame.iloc[:n]))
        assert warmed.build(make_ctx(frame.iloc[:n])) == expected
        warmed.warm("BTC/USDT", frame.iloc[: n + 1])


def test_after_warm_up_a_new_day_costs_one_count() -> None:
    frame = candles("BTC_USDT-1h")
    n = int(frame.index.searchsorted(pd.Timestamp("2025-05-07 00:00", tz="UTC")))  # 00:00: a day completed
    counter = CallCounter()
    builder = MarketContextBuilder(counter, default_budget=32_000)
    builder.prepare("BTC/USDT", frame)
    builder.build(make_ctx(frame.iloc[:n]))  # up to 23:00 of the day before
    builder.warm("BTC/USDT", frame.iloc[: n + 1])  # the completed day is encoded and counted here
    before = len(counter.texts)
    prompt = builder.build(make_ctx(frame.iloc[: n + 1]))
    (text,) = counter.texts[before:]
    assert prompt.messages[1]["content"].endswith(text)


def test_warm_up_on_input_the_cache_does_not_handle_is_a_no_op() -> None:
    builder = MarketContextBuilder(CallCounter(), default_budget=6_000)
    builder.warm("BTC/USDT", candles("BTC_USDT-1h").iloc[:0])  # nothing to build: no error either


class MeetingCounter(CallCounter):
    """Counts a text only once `parties` counts are in progress at the same time (a barrier), so counting a
    bar's texts one after another fails instead of passing."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=10)
        self.meet = False

    def count(self, text: str) -> int:
        if self.meet:
            self.barrier.wait()  # BrokenBarrierError after 10 s when the others never come
        return super().count(text)


@pytest.mark.parametrize("leakage", [False, True])
def test_a_bars_per_bar_texts_are_counted_at_once_and_the_builds_reuse_the_counts(leakage: bool) -> None:
    """`count_ahead(ctxs)` counts the day in progress and the tail of every prompt of a bar at the same time
    (one round trip's wait for all), so each build then asks the counter nothing; the prompts are the ones
    built without it."""
    btc, eth = candles("BTC_USDT-1h").iloc[:3_001], candles("ETH_USDT-1h").iloc[:3_001]
    ctxs = [make_ctx(btc), make_ctx(eth, "ETH/USDT")]
    plain = MarketContextBuilder(CallCounter(), default_budget=6_000, leakage_control=leakage)
    expected = [plain.build(c) for c in ctxs]
    counter = MeetingCounter(parties=2)
    ahead = MarketContextBuilder(counter, default_budget=6_000, leakage_control=leakage)
    for symbol, frame in (("BTC/USDT", btc), ("ETH/USDT", eth)):
        ahead.build(make_ctx(frame.iloc[:-1], symbol))  # the bar before
        ahead.warm(symbol, frame)  # the market part, as the previous bar's wait does
    counter.meet = True
    ahead.count_ahead(ctxs)
    counter.meet = False
    before = len(counter.texts)
    assert [ahead.build(c) for c in ctxs] == expected
    assert counter.texts[before:] == []  # nothing left to count: no round trip per build
