"""The resolutions of history a prompt shows (base bars, complete days, complete weeks), cut into chunks.

Contracts:
- `scratch_levels` computes the levels from the whole frame at bar t, every call: the reference the
  incremental cache (`agent.llm.context_cache`) must equal byte for byte.
- Days and weeks are resampled from the base bars (`complete_periods`) and kept only when complete (period
  end <= t + one bar) and wholly within the data (opening at or after the first bar). A period's values
  depend only on its own bars, so periods resampled from any slice holding all their bars are the same.
- Indicators are TA-Lib's (`agent.market.indicators`), causal: the value at a row uses rows <= it only.
- A chunk's token count is the counter's count of its text plus one join margin; `Level.cum_tokens[i]`
  is the sum over chunks [0, i). The day in progress (the last chunk of intraday base bars, the day of t)
  is the exception: it changes at every bar, so it is counted together with the tail that follows it in
  the prompt (`Level.volatile`, one count per bar instead of two) and adds 0 to `cum_tokens`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from agent.llm import prompts
from agent.llm.bars import Bars
from agent.llm.encoding import Chunks, encode_chunks
from agent.llm.leakage import Disclosure
from agent.market.candles import COLUMNS as CANDLE_COLUMNS
from agent.market.candles import TIMEFRAME_MS
from agent.market.indicators import indicators

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
    """Tokens of chunks [0, i) at index i (each chunk counted alone, plus one join margin; the
    `volatile` chunk adds 0)."""
    volatile: str = ""
    """The text of the last chunk when it is the day in progress (intraday base bars), else "": the
    builder counts it with the tail (`volatile_tokens`), not in `cum_tokens`."""

    @property
    def counted_rows(self) -> int:
        """Bars of the chunks `cum_tokens` counts (all but the volatile day in progress)."""
        rows = int(self.chunks.rows.sum())
        return rows - int(self.chunks.rows[-1]) if self.volatile else rows

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


@lru_cache(maxsize=64)
def timeframe_name(tf: pd.Timedelta) -> str:
    """`1h` for one hour (the names of `TIMEFRAME_MS`), else the timedelta's own text."""
    ms = int(tf / pd.Timedelta(milliseconds=1))
    return next((name for name, v in TIMEFRAME_MS.items() if v == ms), str(tf))


def complete_periods(
    bars: Bars,
    period: pd.Timedelta,
    now: pd.Timestamp,
    origin: pd.Timestamp,
    first: pd.Timestamp | None = None,
) -> Bars:
    """OHLCV bars of `period` counted from `origin` that open at or after `first` (default: the first bar),
    end at or before `now` and have a close.

    The values are pandas' `resample(period, origin=origin, closed="left", label="left")` aggregation
    (open first, high max, low min, close last, all skipping NaN; volume summed by pandas itself), tested
    equal bit for bit: numpy picks and reduces per period, only the volume goes through pandas.
    """
    ts, p, o = bars.ts, period.value, origin.value
    if len(ts) == 0:
        return Bars(ts[:0], {c: np.empty(0) for c in CANDLE_COLUMNS})
    codes = (ts - o) // p
    starts = np.flatnonzero(np.diff(codes, prepend=codes[0] - 1))
    ends = np.append(starts[1:], len(ts))
    opens = o + codes[starts] * p
    index = pd.DatetimeIndex(pd.to_datetime(ts, utc=True))
    volume = pd.Series(bars["volume"], index=index).resample(
        period, origin=origin, closed="left", label="left"
    )
    columns = {
        "open": _first_valid(bars["open"], starts, ends),
        "high": np.fmax.reduceat(bars["high"], starts),
        "low": np.fmin.reduceat(bars["low"], starts),
        "close": _last_valid(bars["close"], starts, ends),
        "volume": volume.sum().to_numpy(dtype=np.float64)[codes[starts] - codes[0]],
    }
    start = int(ts[0]) if first is None else first.value
    keep = ~np.isnan(columns["close"]) & (opens >= start) & (opens <= (now - period).value)
    return Bars(opens[keep], {c: np.ascontiguousarray(v[keep]) for c, v in columns.items()})


def _first_valid(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per run [start, end): its first non-NaN value, else NaN."""
    valid = np.flatnonzero(~np.isnan(values))
    at = np.searchsorted(valid, starts, side="left")
    found = at < len(valid)
    found[found] = valid[at[found]] < ends[found]
    out = np.full(len(starts), np.nan)
    out[found] = values[valid[at[found]]]
    return out


def _last_valid(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per run [start, end): its last non-NaN value, else NaN."""
    valid = np.flatnonzero(~np.isnan(values))
    at = np.searchsorted(valid, ends, side="left") - 1
    found = at >= 0
    found[found] = valid[at[found]] >= starts[found]
    out = np.full(len(starts), np.nan)
    out[found] = values[valid[at[found]]]
    return out


def with_indicators(bars: Bars, atr_period: int) -> Bars:
    """`bars` plus every indicator column (`agent.market.indicators.indicators`, TA-Lib)."""
    h, lo, c, v = (bars[k] for k in ("high", "low", "close", "volume"))
    return Bars(bars.ts, dict(bars.columns) | indicators(h, lo, c, v, atr_period))


def make_level(name: str, kind: str, frame: pd.DataFrame | Bars, disc: Disclosure, count: Count) -> Level:
    """A level from bars with indicators: every chunk encoded and counted, but the day in progress (the
    last chunk of intraday base bars), which is left to the builder (`Level.volatile`)."""
    bars = frame if isinstance(frame, Bars) else Bars.of(frame)
    chunks = encode_chunks(bars, kind, COLUMNS[kind], disc)
    volatile = chunks.texts[-1] if kind == "base" and chunks.texts else ""
    final = chunks.texts[:-1] if volatile else chunks.texts
    counts = np.array([count(x) + 1 for x in final] + [0] * bool(volatile), dtype=np.int64)
    cum = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return Level(name, kind, bars, chunks, cum, volatile)


def volatile_tokens(level: Level, tail: str, count: Count) -> int:
    """Tokens of the day in progress of `level` (if any) and the `tail` after the history, counted as one
    text (they follow each other in the prompt), with the join margins they would have counted apart."""
    return count(level.volatile + tail) + 1 + bool(level.volatile)


def scratch_levels(
    frame: pd.DataFrame, tf: pd.Timedelta, now: pd.Timestamp, disc: Disclosure, atr_period: int, count: Count
) -> list[Level]:
    """Finest first: base bars, complete days (empty when the base is daily), complete weeks."""
    kind = base_kind(tf)
    bars = Bars.of(frame)
    levels = [make_level(timeframe_name(tf), kind, with_indicators(bars, atr_period), disc, count)]
    days = complete_periods(bars, DAY, now, EPOCH) if kind == "base" else bars.head(0)
    levels.append(make_level("1d", "1d", with_indicators(days, atr_period), disc, count))
    weeks = complete_periods(bars, WEEK, now, EPOCH_MONDAY)
    levels.append(make_level("1w", "1w", with_indicators(weeks, atr_period), disc, count))
    return levels
