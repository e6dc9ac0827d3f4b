"""`MarketContextBuilder.warm`: the market part of a later bar's prompt built ahead (while the current bar's
answers are on their way, in the stateful prompt mode). A build after a warm-up gives the same prompt as one
without, and finds the market part done: across a day's end it counts no completed chunk, only the day in
progress and the tail."""

from __future__ import annotations

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
