"""Steady-state counting cost of the incremental builder: per bar within a day, one count of new text (the
day in progress and the tail together), whatever the counter costs per call (a server's `/tokenize`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent.llm.context import MarketContextBuilder
from tests.llm.test_context_incremental import PieceCounter, assert_same, builders, candles, make_ctx


class CallCounter(PieceCounter):
    """`PieceCounter` that records every text it is asked to count (one call = one server round trip)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def count(self, text: str) -> int:
        self.texts.append(text)
        return super().count(text)


def test_a_bar_within_a_day_costs_one_count() -> None:
    frame = candles("BTC_USDT-1h")
    start = int(frame.index.searchsorted(pd.Timestamp("2025-05-06 01:00", tz="UTC")))  # a Tuesday
    counter = CallCounter()
    builder = MarketContextBuilder(counter, default_budget=32_000)
    builder.prepare("BTC/USDT", frame)
    builder.build(make_ctx(frame.iloc[:start]))
    for n in range(start + 1, start + 20):  # 02:00 .. 20:00 of the same day: no day or week completes
        before = len(counter.texts)
        prompt = builder.build(make_ctx(frame.iloc[:n]))
        (text,) = counter.texts[before:]
        assert prompt.messages[1]["content"].endswith(text)  # the day in progress and the tail, in one


def test_rebuilding_the_same_bar_counts_nothing_new() -> None:
    frame = candles("BTC_USDT-1h").iloc[:3_000]
    counter = CallCounter()
    builder = MarketContextBuilder(counter)
    ctx = make_ctx(frame)
    builder.build(ctx, 8_000)
    before = len(counter.texts)
    builder.build(ctx, 8_000)
    builder.build(ctx, 8_000)
    assert counter.texts[before:] == []


@pytest.mark.parametrize("leakage", [False, True])
def test_quarter_hours_tick_by_tick_across_midnight_equal_a_build_from_scratch(leakage: bool) -> None:
    """The day in progress is extended bar by bar; its first bar (00:00) is labelled `00` until the 00:15
    bar turns every label of the day to `HH:MM`."""
    hourly = candles("BTC_USDT-1h").iloc[:1_500]
    frame = hourly.set_axis(
        pd.DatetimeIndex(hourly.index[0] + pd.Timedelta(minutes=15) * np.arange(len(hourly)), name="date")
    )
    first = int(frame.index.searchsorted(frame.index[1_000].floor("D"))) - 3
    inc, ref = builders(leakage, timeframe="15m")
    for n in range(first, first + 12):
        assert_same(inc, ref, make_ctx(frame.iloc[:n]), 5_000)
    for n in (first + 40, first + 30, first + 31, first + 200):  # back to an earlier bar, then later
        assert_same(inc, ref, make_ctx(frame.iloc[:n]), 5_000)
