"""Point-in-time candle access: how the graph's nodes, the daemon's feed and the run report read candles.

`CandleSource` is the seam (the graph and `agent.evaluation` type against it); `FrameSource` is the
in-memory implementation every mode uses.

Contracts:
- `history(symbol, bar_ts)` returns the candle frame up to and including bar `bar_ts` (its open time), never a
  row after it — the clock is whatever `bar_ts` the caller passes (simulated in backtests and replays, the
  last closed bar in live mode).
- `window(symbol, bar_ts, n)` is the last `n` rows of that frame (fewer near the start) as read-only arrays,
  column by column, for readers of a few recent bars that need no frame (the observe node, every tick).
- `FrameSource` keeps whole frames in memory and slices with a binary search (no copy of the past per tick
  beyond the view); `reload()` re-reads them after the market-data service stored new bars.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from agent.market.candles import COLUMNS


@dataclass(frozen=True)
class BarWindow:
    """The last bars up to a bar, oldest first, column by column (read-only arrays of equal length)."""

    open_ms: np.ndarray
    """Open times, epoch milliseconds (int64)."""
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.open_ms)


class CandleSource(Protocol):
    """Where candles are read from, point in time."""

    def history(self, symbol: str, bar_ts: int) -> pd.DataFrame: ...

    def window(self, symbol: str, bar_ts: int, n: int) -> BarWindow: ...


def ts_ms(index: pd.Index) -> np.ndarray:
    """Epoch milliseconds of a candle frame's UTC DatetimeIndex (whatever its resolution); `TypeError` for
    any other index (numbers are never read as times)."""
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError(f"candle frames are indexed by bar open time, not by a {type(index).__name__}")
    return np.asarray(index.as_unit("ms").asi8, dtype=np.int64)


def read_only(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` on a read-only copy of its values, one column after another in memory (what `FrameSource`
    serves): writing a bar in place raises, so a revised bar can only come in a new frame, and a consumer
    that already read a prefix (the context cache) need not read it again. A frame that is not all float64
    is returned as it is."""
    if len(frame.columns) == 0 or not all(d == np.float64 for d in frame.dtypes):
        return frame
    values = np.array(frame.to_numpy(dtype=np.float64).T, order="C")  # a copy: the caller keeps theirs
    values.flags.writeable = False
    return pd.DataFrame(values.T, index=frame.index, columns=frame.columns, copy=False)


class FrameSource:
    """In-memory candle frames, sliced point in time; the bars served are read-only (`read_only`)."""

    def __init__(
        self,
        frames: Mapping[str, pd.DataFrame],
        loader: Callable[[str], pd.DataFrame] | None = None,
    ) -> None:
        self._loader = loader
        self._frames: dict[str, pd.DataFrame] = {}
        self._times: dict[str, np.ndarray] = {}
        self._columns: dict[str, tuple[np.ndarray, ...]] = {}
        for symbol, frame in frames.items():
            self._set(symbol, frame)

    def _set(self, symbol: str, frame: pd.DataFrame) -> None:
        served = self._frames[symbol] = read_only(frame)
        self._times[symbol] = _frozen(ts_ms(frame.index))
        if all(c in served.columns for c in COLUMNS):
            self._columns[symbol] = tuple(_frozen(served[c].to_numpy(dtype=np.float64)) for c in COLUMNS)

    def reload(self) -> None:
        """Re-read every frame through the loader (after new bars were stored)."""
        if self._loader is None:
            return
        for symbol in list(self._frames):
            self._set(symbol, self._loader(symbol))

    @property
    def symbols(self) -> list[str]:
        """Symbols this source serves."""
        return list(self._frames)

    def history(self, symbol: str, bar_ts: int) -> pd.DataFrame:
        """Rows with open time <= bar_ts."""
        end = int(np.searchsorted(self._times[symbol], bar_ts, side="right"))
        return self._frames[symbol].iloc[:end]

    def window(self, symbol: str, bar_ts: int, n: int) -> BarWindow:
        """The last `n` rows with open time <= bar_ts, as read-only columns (`KeyError` for a frame without
        the OHLCV columns)."""
        times = self._times[symbol]
        end = int(np.searchsorted(times, bar_ts, side="right"))
        cut = slice(max(0, end - n), end)
        o, h, lo, c, v = (column[cut] for column in self._columns[symbol])
        return BarWindow(times[cut], o, h, lo, c, v)

    def since(self, start_ts: int) -> FrameSource:
        """The same candles from `start_ts` on (open time >= start_ts), without a loader: the history a run
        with a fixed first bar reads (`agent.market.history`)."""
        return FrameSource(
            {s: f.iloc[int(np.searchsorted(self._times[s], start_ts)) :] for s, f in self._frames.items()}
        )

    def bar_times(self, start_ts: int | None = None, end_ts: int | None = None) -> list[int]:
        """Union of bar open times over all symbols with start <= t < end, ascending."""
        times = np.unique(np.concatenate(list(self._times.values())))
        if start_ts is not None:
            times = times[times >= start_ts]
        if end_ts is not None:
            times = times[times < end_ts]
        return [int(t) for t in times]

    def last_ts(self, symbol: str) -> int:
        """Open time of the last bar held for `symbol`."""
        return int(self._times[symbol][-1])


def _frozen(values: np.ndarray) -> np.ndarray:
    """`values` read-only (a read-only copy when it is a writable view of someone else's memory)."""
    if values.flags.writeable:
        values = values.copy() if values.base is not None else values
        values.flags.writeable = False
    return values
