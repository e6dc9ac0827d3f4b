"""Bars as plain numpy columns: what the prompt encoder and the volatile tail read (no pandas per tick).

Contracts:
- `ts` holds bar open times in nanoseconds since the epoch (UTC), ascending; every column is float64 and as
  long as `ts`. `Bars.of(frame)` reads a candle frame (UTC DatetimeIndex, any resolution) column by column.
- `head(n)` and `rows(lo, hi)` are views (no copy); nothing here mutates the arrays it holds.
- `time(i)` is the open time of bar i as a UTC `pd.Timestamp` (ns), printing as the frame's index does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Bars:
    """Bars of one resolution: open times and named float64 columns (OHLCV, indicators)."""

    ts: IntArray
    columns: Mapping[str, FloatArray]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Bars:
        """The bars of a frame indexed by UTC open time (each column as float64)."""
        index = pd.DatetimeIndex(frame.index).as_unit("ns")
        columns = {str(c): frame[c].to_numpy(dtype=np.float64) for c in frame.columns}
        return cls(np.asarray(index.asi8, dtype=np.int64), columns)

    def __len__(self) -> int:
        """Number of bars."""
        return len(self.ts)

    def __getitem__(self, column: str) -> FloatArray:
        """One column."""
        return self.columns[column]

    def head(self, n: int) -> Bars:
        """The first `n` bars (views)."""
        return self.rows(0, n)

    def rows(self, lo: int, hi: int) -> Bars:
        """Bars [lo, hi) (views)."""
        return Bars(self.ts[lo:hi], {k: v[lo:hi] for k, v in self.columns.items()})

    def time(self, i: int) -> pd.Timestamp:
        """Open time of bar `i` (negative counts from the end)."""
        return pd.Timestamp(int(self.ts[i]), tz="UTC")
