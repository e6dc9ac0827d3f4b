"""Candles for a backtest window: the requested bars plus warm-up history before them, with clear errors.

Contracts:
- The window is start <= bar open time < end (either bound optional). `start >= end` raises `ConfigError`
  ("empty date range") before anything is read.
- Each symbol comes from `agent.market.store.load_candles` (download store first, then the bundled
  sample; validated, and resampled from a shorter stored timeframe when needed); missing or invalid data
  raises its `DataError` (one line; for missing data with the download command, from `--start`). A window
  with no bars raises `DataError` naming the span the data does cover.
- When the data covers only part of the window (a day or more missing at either end; the last bar counts
  up to its close, so a daily window ending the day after its last bar is covered), the backtest runs on
  the part covered and `notes` says so.
- Up to `warmup` bars before the window are included so indicators are ready at its first bar; the
  engine trades only from `trade_start` (the first bar in the window, over all symbols).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from agent.errors import ConfigError, DataError
from agent.market.candles import timeframe_ms, utc_timestamp
from agent.market.store import load_candles


@dataclass(frozen=True)
class Window:
    """Loaded frames (with warm-up rows) and where trading starts."""

    frames: dict[str, pd.DataFrame]
    trade_start: pd.Timestamp
    trade_end: pd.Timestamp
    """Open time of the last bar traded."""
    notes: list[str] = field(default_factory=list)


def check_range(start: str | None, end: str | None) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Parse the bounds (UTC); an empty range is bad input."""
    lo = utc_timestamp(start) if start else None
    hi = utc_timestamp(end) if end else None
    if lo is not None and hi is not None and lo >= hi:
        raise ConfigError(f"empty date range: --start {start} is not before --end {end}")
    return lo, hi


def load_window(
    symbols: Sequence[str],
    timeframe: str,
    data_dir: Path,
    start: str | None = None,
    end: str | None = None,
    warmup: int = 0,
    exchange: str = "binance",
) -> Window:
    """Frames for `symbols` over [start, end) plus up to `warmup` earlier bars each."""
    lo, hi = check_range(start, end)
    timeframe_ms(timeframe)
    frames: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    firsts, lasts = [], []
    for symbol in symbols:
        full = load_candles(symbol, timeframe, data_dir, exchange=exchange, since_hint=start)
        i0 = 0 if lo is None else int(full.index.searchsorted(lo))
        i1 = len(full) if hi is None else int(full.index.searchsorted(hi))
        if i0 >= i1:
            raise DataError(
                f"no {timeframe} candles for {symbol} between {start or 'the start'} and {end or 'the end'}; "
                f"the data covers {_day(full.index[0])} to {_day(full.index[-1])}"
            )
        first, last = full.index[i0], full.index[i1 - 1]
        if lo is not None and first - lo >= pd.Timedelta(days=1):
            notes.append(
                f"{symbol} {timeframe} data starts {_day(first)}, after --start {start}: "
                "backtesting from there"
            )
        covered = last + pd.Timedelta(milliseconds=timeframe_ms(timeframe))  # the last bar's close
        if hi is not None and hi - covered >= pd.Timedelta(days=1):
            notes.append(
                f"{symbol} {timeframe} data ends {_day(last)}, before --end {end}: backtesting up to there"
            )
        frames[symbol] = full.iloc[max(0, i0 - warmup) : i1]
        firsts.append(first)
        lasts.append(last)
    return Window(frames, min(firsts), max(lasts), notes)


def epoch_ms(ts: pd.Timestamp) -> int:
    """Milliseconds since the epoch (how bar times are stored in the database)."""
    return int(ts.value // 1_000_000)


def _day(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d %H:%M")
