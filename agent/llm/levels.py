"""The resolutions of history a prompt shows (base bars, complete days, complete weeks), cut into chunks.

Contracts:
- `scratch_levels` computes the levels from the whole frame at bar t, every call: the reference the
  incremental cache (`agent.llm.context_cache`) must equal byte for byte.
- Days and weeks are resampled from the base bars (`complete_periods`) and kept only when complete (period
  end <= t + one bar) and wholly within the data (opening at or after the first bar). A period's values
  depend only on its own bars, so periods resampled from any slice holding all their bars are the same.
- Indicators are TA-Lib's (`agent.market.indicators`), causal: the value at a row uses rows <= it only.
- A chunk's token count is the counter's count of its text plus one join margin; `Level.cum_tokens[i]`
  is the sum over chunks [0, i).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agent.llm import prompts
from agent.llm.bars import Bars
from agent.llm.encoding import Chunks, encode_chunks, indicator_frame
from agent.llm.leakage import Disclosure
from agent.market.candles import TIMEFRAME_MS

DAY = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)
EPOCH = pd.Timestamp(0, tz="UTC")
EPOCH_MONDAY = pd.Timestamp("1970-01-05", tz="UTC")
COLUMNS = {
    "base": ("close", "chg", "hi", "lo", "vol", "rsi"),
    "1d": ("close", "chg", "hi", "lo", "vol", "vr", "rsi", "e20", "e50", "atr"),
    "1w": ("close", "chg", "hi", "lo", "vol", "rsi", "e20", "e50"),
}
"""The columns each kind of block shows."""
LABELS = {"base": "hour", "1d": "day", "1w": "week"}
AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}

Count = Callable[[str], int]


@dataclass(frozen=True)
class Level:
    """One resolution of history cut into chunks: a day of base bars, or a single daily/weekly bar."""

    name: str
    kind: str
    """`base` (intraday bars grouped by day), `1d` or `1w`."""
    frame: Bars
    """Bars with indicators (complete periods only)."""
    chunks: Chunks
    cum_tokens: np.ndarray
    """Tokens of chunks [0, i) at index i (each chunk counted alone, plus one join margin)."""

    @property
    def header(self) -> str:
        """Block title and column line."""
        return prompts.block_header(self.name, LABELS[self.kind], COLUMNS[self.kind])

    def span(self, start: int, end: int | None) -> tuple[int, int]:
        """Chunk index range [i, j) of chunks starting in [start, end)."""
        starts = self.chunks.starts
        i = int(np.searchsorted(starts, start, side="left"))
        return i, (len(starts) if end is None else int(np.searchsorted(starts, end, side="left")))


def base_kind(tf: pd.Timedelta) -> str:
    """`base` for intraday bars (grouped by day), `1d` for daily or coarser ones (one chunk per bar)."""
    return "base" if tf < DAY else "1d"


def timeframe_name(tf: pd.Timedelta) -> str:
    """`1h` for one hour (the names of `TIMEFRAME_MS`), else the timedelta's own text."""
    ms = int(tf / pd.Timedelta(milliseconds=1))
    return next((name for name, v in TIMEFRAME_MS.items() if v == ms), str(tf))


def complete_periods(
    frame: pd.DataFrame,
    period: pd.Timedelta,
    now: pd.Timestamp,
    origin: pd.Timestamp,
    first: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Bars of `period` (resampled) that open at or after `first` (default: the frame's first bar), end at
    or before `now` and are not empty."""
    bars = frame.resample(period, origin=origin, closed="left", label="left").agg(AGG)
    bars = bars.dropna(subset=["close"])
    opens = pd.DatetimeIndex(bars.index)
    start = pd.DatetimeIndex(frame.index)[0] if first is None else first
    keep = (opens >= start) & (opens <= now - period)
    return bars[keep]


def make_level(name: str, kind: str, frame: pd.DataFrame | Bars, disc: Disclosure, count: Count) -> Level:
    """A level from bars with indicators: every chunk encoded and counted."""
    bars = frame if isinstance(frame, Bars) else Bars.of(frame)
    chunks = encode_chunks(bars, kind, COLUMNS[kind], disc)
    counts = np.array([count(x) + 1 for x in chunks.texts], dtype=np.int64)
    return Level(name, kind, bars, chunks, np.concatenate(([0], np.cumsum(counts))).astype(np.int64))


def scratch_levels(
    frame: pd.DataFrame, tf: pd.Timedelta, now: pd.Timestamp, disc: Disclosure, atr_period: int, count: Count
) -> list[Level]:
    """Finest first: base bars, complete days (empty when the base is daily), complete weeks."""
    kind = base_kind(tf)
    levels = [make_level(timeframe_name(tf), kind, indicator_frame(frame, atr_period), disc, count)]
    days = complete_periods(frame, DAY, now, EPOCH) if kind == "base" else frame.iloc[:0]
    levels.append(make_level("1d", "1d", indicator_frame(days, atr_period), disc, count))
    weeks = complete_periods(frame, WEEK, now, EPOCH_MONDAY)
    levels.append(make_level("1w", "1w", indicator_frame(weeks, atr_period), disc, count))
    return levels
