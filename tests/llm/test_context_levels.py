"""History levels: complete days and weeks are pandas' resampling of the base bars, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import DEFAULT_DATA_DIR
from agent.llm.bars import Bars
from agent.llm.levels import DAY, EPOCH, EPOCH_MONDAY, WEEK, complete_periods
from agent.market.candles import COLUMNS, read_feather

AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def resampled(
    frame: pd.DataFrame, period: pd.Timedelta, now: pd.Timestamp, origin: pd.Timestamp, first: pd.Timestamp
) -> pd.DataFrame:
    """The reference: pandas' resample and aggregation, as the builder did it before."""
    bars = frame.resample(period, origin=origin, closed="left", label="left").agg(AGG)  # type: ignore[arg-type]
    bars = bars.dropna(subset=["close"])
    opens = pd.DatetimeIndex(bars.index)
    return bars[(opens >= first) & (opens <= now - period)]


def assert_bitwise(got: Bars, want: pd.DataFrame) -> None:
    assert np.array_equal(got.ts, pd.DatetimeIndex(want.index).as_unit("ns").asi8)
    for c in COLUMNS:
        a, b = got[c], want[c].to_numpy(dtype=np.float64)
        assert np.array_equal(np.isnan(a), np.isnan(b)), c
        ok = ~np.isnan(a)
        assert np.array_equal(a[ok].view(np.int64), b[ok].view(np.int64)), c  # the same bits


def test_days_and_weeks_of_the_bundled_year() -> None:
    frame = read_feather(DEFAULT_DATA_DIR / "binance" / "BTC_USDT-1h.feather")
    for cut in (100, 2_345, len(frame)):
        part = frame.iloc[:cut]
        now = part.index[-1] + pd.Timedelta(hours=1)
        for period, origin in ((DAY, EPOCH), (WEEK, EPOCH_MONDAY)):
            got = complete_periods(Bars.of(part), period, now, origin)
            assert_bitwise(got, resampled(part, period, now, origin, part.index[0]))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bars=st.integers(1, 600),
    step_minutes=st.sampled_from([15, 60, 240]),
    holes=st.floats(0.0, 0.5),
    nans=st.floats(0.0, 0.3),
    weekly=st.booleans(),
    offset=st.integers(-48, 48),
)
def test_complete_periods_equal_pandas_resampling(
    seed: int, bars: int, step_minutes: int, holes: float, nans: float, weekly: bool, offset: int
) -> None:
    """Gaps, NaN anywhere and volumes over many magnitudes (a plain sum would differ from pandas')."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(minutes=step_minutes * rng.integers(0, 500))
    index = pd.DatetimeIndex(start + pd.Timedelta(minutes=step_minutes) * np.arange(bars), name="date")
    kept = rng.random(bars) >= holes
    kept[-1] = True  # holes never take every bar (two bars, both dropped, left nothing to resample)
    index = index[kept]
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index))))
    frame = pd.DataFrame(
        {
            "open": close * (1 + rng.normal(0, 0.001, len(index))),
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 10.0 ** rng.uniform(-3, 9, len(index)),
        },
        index=index,
    )
    frame = frame.mask(rng.random(frame.shape) < nans)
    period, origin = (WEEK, EPOCH_MONDAY) if weekly else (DAY, EPOCH)
    now = index[-1] + pd.Timedelta(minutes=step_minutes)
    first = index[0] + pd.Timedelta(hours=offset)
    assert_bitwise(
        complete_periods(Bars.of(frame), period, now, origin, first),
        resampled(frame, period, now, origin, first),
    )
