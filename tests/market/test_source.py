"""`ts_ms`: epoch milliseconds of a candle frame's index, whatever its resolution; nothing else is read.
`FrameSource`: read-only bars, point in time, as frames (`history`) and as columns (`window`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.market.source import ts_ms


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_any_resolution_gives_the_same_milliseconds(unit: str) -> None:
    index = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC").as_unit(unit)
    assert ts_ms(index).tolist() == [1_704_067_200_000, 1_704_070_800_000, 1_704_074_400_000]
    assert ts_ms(index).dtype == np.int64


def test_an_index_of_numbers_is_refused_not_read_as_times() -> None:
    frame = pd.DataFrame({"close": [1.0, 2.0]}, index=pd.Index([1_704_067_200_000, 1_704_070_800_000]))
    with pytest.raises(TypeError, match="indexed by bar open time"):
        ts_ms(frame.index)


def test_frame_source_history_cannot_be_revised_in_place() -> None:
    """The bars a source serves are read-only (a revised bar comes in a new frame), so what a build read
    once stays what it read; the values and the frame's shape are those handed over."""
    from agent.market.source import FrameSource

    index = pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC")
    rng = np.random.default_rng(1)
    columns = ["open", "high", "low", "close", "volume"]
    frame = pd.DataFrame(rng.random((48, 5)) + 1.0, index=index, columns=columns)
    source = FrameSource({"BTC/USDT": frame})
    served = source.history("BTC/USDT", int(index[30].value // 1_000_000))
    pd.testing.assert_frame_equal(served, frame.iloc[:31])
    t = int(index[30].value // 1_000_000)
    try:
        served.iloc[3, 0] = 99.0  # a read-only view refuses it, or copy-on-write gives `served` its own copy
    except ValueError:
        pass
    frame.iloc[4, 0] = 99.0  # the caller's frame stays theirs: the source holds a read-only copy
    assert (source.history("BTC/USDT", t).iloc[3:5, 0] != 99.0).all()
    owner = source.history("BTC/USDT", t).to_numpy(copy=False)
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    assert not owner.flags.writeable  # the memory behind every served frame


@settings(max_examples=200, deadline=None)
@given(offset_h=st.integers(-3, 60), minutes=st.sampled_from([0, 1, 59]), n=st.integers(1, 60))
def test_a_window_is_the_last_bars_of_history_column_by_column(offset_h: int, minutes: int, n: int) -> None:
    """`window(symbol, t, n)`: the last n rows of `history(symbol, t)` (fewer near the start, none before it),
    as read-only arrays: the same bars, point in time, without building a frame (the observe node's read)."""
    from agent.market.source import FrameSource

    index = pd.date_range("2024-01-01", periods=48, freq="h", tz="UTC")
    frame = pd.DataFrame(
        np.random.default_rng(2).random((48, 5)) + 1.0,
        index=index,
        columns=["open", "high", "low", "close", "volume"],
    )
    source = FrameSource({"BTC/USDT": frame})
    t = int(index[0].value // 1_000_000) + offset_h * 3_600_000 + minutes * 60_000
    expected = source.history("BTC/USDT", t).tail(n)
    got = source.window("BTC/USDT", t, n)
    assert len(got) == len(expected)
    assert got.open_ms.tolist() == ts_ms(expected.index).tolist()
    for column in ("open", "high", "low", "close", "volume"):
        values = getattr(got, column)
        assert values.tolist() == expected[column].tolist()
        assert not values.flags.writeable
    assert not got.open_ms.flags.writeable
