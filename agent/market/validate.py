"""Candle validation: duplicates, gaps with exact spans, OHLC sanity. Pure functions over candle frames.

Contracts:
- A gap is a run of missing bars between two present ones; `Gap.start`/`Gap.end` are the open times of the
  first and the last *missing* bar and `Gap.missing` their count (a one-bar hole has start == end).
- `check_candles` never modifies its input; it returns a `CandleReport`. The data is *usable* when it has
  rows, no duplicate timestamps, bar open times on the timeframe grid (`candles.grid_origin_ms`), no NaN,
  prices (open, high, low, close) > 0, high >= max(open, close), low <= min(open, close) and non-negative
  volume. Gaps are reported but do not make data unusable (the exchange itself has outages).
- `drop_duplicates` keeps the last row for a repeated timestamp (newer downloads win) and sorts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from agent.market.candles import COLUMNS, grid_origin_ms, timeframe_ms


@dataclass(frozen=True)
class Gap:
    """Missing bars: open time of the first and last missing bar, and how many are missing."""

    start: pd.Timestamp
    end: pd.Timestamp
    missing: int

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} → {self.end:%Y-%m-%d %H:%M} ({self.missing} missing)"


@dataclass(frozen=True)
class CandleReport:
    """What `check_candles` found in one candle frame."""

    timeframe: str
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    duplicates: int
    gaps: tuple[Gap, ...]
    misaligned: int
    nan_rows: int
    non_positive_prices: int
    high_below_body: int
    low_above_body: int
    negative_volume: int

    @property
    def missing_bars(self) -> int:
        """Bars missing inside the span, over all gaps."""
        return sum(g.missing for g in self.gaps)

    @property
    def problems(self) -> list[str]:
        """One phrase per defect that makes the data unusable (empty when usable)."""
        checks = [
            (self.rows == 0, "no rows"),
            (self.duplicates, f"{self.duplicates} duplicate timestamps"),
            (self.misaligned, f"{self.misaligned} bars not on the {self.timeframe} grid"),
            (self.nan_rows, f"{self.nan_rows} rows with NaN"),
            (self.non_positive_prices, f"{self.non_positive_prices} rows with a price <= 0"),
            (self.high_below_body, f"{self.high_below_body} rows with high < max(open, close)"),
            (self.low_above_body, f"{self.low_above_body} rows with low > min(open, close)"),
            (self.negative_volume, f"{self.negative_volume} rows with negative volume"),
        ]
        return [text for failed, text in checks if failed]

    @property
    def usable(self) -> bool:
        """True when nothing but gaps (if any) was found."""
        return not self.problems


def find_gaps(index: pd.DatetimeIndex, timeframe: str) -> tuple[Gap, ...]:
    """Runs of missing bars in a sorted, unique index of bar open times."""
    if len(index) < 2:
        return ()
    step = pd.Timedelta(milliseconds=timeframe_ms(timeframe))
    idx = pd.DatetimeIndex(index)
    deltas = idx[1:] - idx[:-1]
    gaps = []
    for pos in map(int, np.flatnonzero(deltas > step)):
        missing = int(deltas[pos] // step) - 1
        if missing <= 0:  # off-grid spacing below two bars: reported as misalignment, not as a gap
            continue
        start = idx[pos] + step
        gaps.append(Gap(start=start, end=start + (missing - 1) * step, missing=missing))
    return tuple(gaps)


def check_candles(frame: pd.DataFrame, timeframe: str) -> CandleReport:
    """Validate a candle frame (see the module contract)."""
    step_ns = timeframe_ms(timeframe) * 1_000_000
    origin_ns = grid_origin_ms(timeframe) * 1_000_000
    idx = pd.DatetimeIndex(frame.index)
    duplicates = int(idx.duplicated().sum())
    unique = idx[~idx.duplicated()].sort_values()
    values = frame[COLUMNS]
    o, h, low, c, v = (values[col].to_numpy(dtype=np.float64) for col in COLUMNS)
    with np.errstate(invalid="ignore"):
        body_top = np.maximum(o, c)
        body_bottom = np.minimum(o, c)
        return CandleReport(
            timeframe=timeframe,
            rows=len(frame),
            first=unique[0] if len(unique) else None,
            last=unique[-1] if len(unique) else None,
            duplicates=duplicates,
            gaps=find_gaps(unique, timeframe),
            misaligned=int(((unique.as_unit("ns").asi8 - origin_ns) % step_ns != 0).sum()),
            nan_rows=int(values.isna().any(axis=1).sum()),
            non_positive_prices=int((np.column_stack([o, h, low, c]) <= 0).any(axis=1).sum()),
            high_below_body=int((h < body_top).sum()),
            low_above_body=int((low > body_bottom).sum()),
            negative_volume=int((v < 0).sum()),
        )


def drop_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame sorted by time with one row per timestamp (the last one wins)."""
    return frame[~frame.index.duplicated(keep="last")].sort_index()
