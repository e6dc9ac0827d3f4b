"""Past decisions shown in a stateful prompt carry their realised return, read point in time from the
candles (`agent.graph.nodes._with_outcomes`): the bar's close to the last close, None when the decision's
bar is not in the frame; the same whatever the resolution of the frame's index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.graph.nodes import _with_outcomes
from agent.llm.protocol import PastDecision
from agent.llm.schema import Action

HOUR_MS = 3_600_000
START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def _frame(closes: list[float], unit: str) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(START_MS + HOUR_MS * np.arange(len(closes)), unit="ms", utc=True))
    return pd.DataFrame({"close": closes}, index=index.as_unit(unit))


@settings(max_examples=60, deadline=None)
@given(
    closes=st.lists(st.floats(0.0, 1e6, allow_nan=False), min_size=1, max_size=40),
    offsets=st.lists(st.integers(-3 * HOUR_MS, 45 * HOUR_MS), max_size=8),
    unit=st.sampled_from(["s", "ms", "us", "ns"]),
)
def test_realised_returns_read_the_decision_bars_close(
    closes: list[float], offsets: list[int], unit: str
) -> None:
    frame = _frame(closes, unit)
    recent = tuple(PastDecision(START_MS + o, Action.BUY, 0.5, 0.6, "r") for o in offsets)
    got = _with_outcomes(recent, frame)
    for d, g in zip(recent, got, strict=True):
        k, off = divmod(d.bar_ts - START_MS, HOUR_MS)
        known = not off and 0 <= k < len(closes) and closes[k] > 0
        assert g.realised_return == (closes[-1] / closes[k] - 1.0 if known else None)
        assert (g.bar_ts, g.action, g.rationale) == (d.bar_ts, d.action, d.rationale)


def test_an_index_that_is_not_of_times_is_refused() -> None:
    frame = pd.DataFrame({"close": [1.0, 2.0]}, index=pd.Index([START_MS, START_MS + HOUR_MS]))
    with pytest.raises(TypeError, match="indexed by bar open time"):
        _with_outcomes((PastDecision(START_MS, Action.BUY, 0.5, 0.6, "r"),), frame)
