"""Candle validation: gap spans, duplicates, OHLC sanity, grid alignment."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agent.market.validate import Gap, check_candles, drop_duplicates, find_gaps
from tests.market.helpers import independent_gaps, shared_candles


def frame(rows: list[tuple[str, float, float, float, float, float]]) -> pd.DataFrame:
    index = pd.DatetimeIndex([pd.Timestamp(r[0], tz="UTC") for r in rows], name="date")
    return pd.DataFrame(
        [r[1:] for r in rows], index=index, columns=["open", "high", "low", "close", "volume"]
    )


def test_the_shared_btc_history_has_its_ten_real_gaps_with_exact_spans():
    candles = shared_candles("BTC/USDT")
    expected = independent_gaps(candles.index, "1h")
    report = check_candles(candles, "1h")
    assert [(g.start, g.end, g.missing) for g in report.gaps] == expected
    assert len(report.gaps) == 10 and report.missing_bars == 20
    assert report.usable and report.problems == []


def test_a_one_bar_hole_starts_and_ends_on_the_same_bar():
    idx = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 02:00", "2024-01-01 06:00"], tz="UTC")
    assert find_gaps(idx, "1h") == (
        Gap(pd.Timestamp("2024-01-01 01:00", tz="UTC"), pd.Timestamp("2024-01-01 01:00", tz="UTC"), 1),
        Gap(pd.Timestamp("2024-01-01 03:00", tz="UTC"), pd.Timestamp("2024-01-01 05:00", tz="UTC"), 3),
    )
    assert str(find_gaps(idx, "1h")[1]) == "2024-01-01 03:00 → 2024-01-01 05:00 (3 missing)"


def test_clean_candles_are_usable():
    report = check_candles(shared_candles("ETH/USDT").iloc[:500], "1h")
    assert report.usable and report.rows == 500 and report.gaps == ()


def test_each_defect_is_counted_and_makes_the_data_unusable():
    bad = frame(
        [
            ("2024-01-01 00:00", 10, 12, 9, 11, 1.0),
            ("2024-01-01 01:00", 11, 10.5, 9, 10, 1.0),  # high below open
            ("2024-01-01 02:00", 10, 12, 10.5, 11, 1.0),  # low above open
            ("2024-01-01 03:00", 10, 12, 9, np.nan, 1.0),  # NaN
            ("2024-01-01 04:00", 10, 12, 9, 11, -1.0),  # negative volume
            ("2024-01-01 04:00", 10, 12, 9, 11, 2.0),  # duplicate timestamp
            ("2024-01-01 05:30", 10, 12, 9, 11, 1.0),  # off the hourly grid
        ]
    )
    report = check_candles(bad, "1h")
    assert (report.high_below_body, report.low_above_body, report.nan_rows) == (1, 1, 1)
    assert (report.negative_volume, report.duplicates, report.misaligned) == (1, 1, 1)
    assert not report.usable and len(report.problems) == 6


def test_an_empty_frame_is_not_usable():
    report = check_candles(frame([]), "1h")
    assert report.problems == ["no rows"] and report.first is None


def test_drop_duplicates_keeps_the_newest_row_and_sorts():
    dup = frame(
        [
            ("2024-01-01 01:00", 1, 1, 1, 1, 1),
            ("2024-01-01 00:00", 1, 1, 1, 1, 1),
            ("2024-01-01 01:00", 2, 2, 2, 2, 2),
        ]
    )
    out = drop_duplicates(dup)
    assert list(out.index.hour) == [0, 1] and out["close"].iloc[1] == 2
