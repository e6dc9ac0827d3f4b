"""Resampling: candles of a longer timeframe built from a shorter stored one (4h, 1d, 1w from 1h).

Contracts:
- `derivable_from(target)` lists the timeframes whose bars tile `target`'s exactly (the length divides and
  the grids line up), longest first: fewer rows to aggregate.
- `resample_candles(frame, base, target)` takes a *valid* `base` candle frame (sorted, unique, on the grid;
  see `agent.market.validate`) and returns `target` bars labelled by their open time: open = first open,
  high = max, low = min, close = last close, volume = sum. Buckets are aligned like the exchange's own bars
  (`candles.grid_origin_ms`: epoch multiples, Mondays for `1w`); the same numbers as
  `DataFrame.resample(target, label="left", closed="left")`.
- Complete buckets only: a bucket is kept only when every one of its base bars is present. This keeps the
  result point in time (the still-forming last bucket never appears, so a bar never changes once seen)
  and never passes off part of a bucket as the whole: a bucket with a hole from an exchange outage is
  dropped and shows up as a gap of the resampled series (`agent.market.validate` reports it).
- Pure: the input is not modified.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agent.market.candles import COLUMNS, TIMEFRAME_MS, grid_origin_ms, timeframe_ms


def derivable_from(target: str) -> list[str]:
    """Timeframes `target` can be built from, longest first."""
    step, origin = timeframe_ms(target), grid_origin_ms(target)
    bases = [
        tf
        for tf, ms in TIMEFRAME_MS.items()
        if ms < step and step % ms == 0 and (origin - grid_origin_ms(tf)) % ms == 0
    ]
    return sorted(bases, key=timeframe_ms, reverse=True)


def resample_candles(frame: pd.DataFrame, base: str, target: str) -> pd.DataFrame:
    """`target` candles from valid `base` candles, complete buckets only (see the module contract)."""
    if base not in derivable_from(target):
        raise ValueError(f"{target} candles cannot be built from {base} candles")
    index = pd.DatetimeIndex(frame.index)
    step_ns = timeframe_ms(target) * 1_000_000
    origin_ns = grid_origin_ms(target) * 1_000_000
    ts = index.as_unit("ns").asi8
    keys = origin_ns + (ts - origin_ns) // step_ns * step_ns
    grouped = frame[COLUMNS].groupby(keys, sort=True)
    bars = grouped.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )
    complete = grouped.size().to_numpy() == timeframe_ms(target) // timeframe_ms(base)
    bars = bars[complete]
    opened = pd.to_datetime(np.asarray(bars.index, dtype=np.int64), unit="ns", utc=True)
    bars.index = pd.DatetimeIndex(opened, name="date").as_unit(index.unit)
    out: pd.DataFrame = bars.astype("float64")
    return out
