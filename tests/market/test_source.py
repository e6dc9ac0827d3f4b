"""`ts_ms`: epoch milliseconds of a candle frame's index, whatever its resolution; nothing else is read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
