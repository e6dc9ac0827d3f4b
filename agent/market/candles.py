"""Candle frames: the one OHLCV shape every stage passes around, timeframes, and Feather files.

Contracts:
- A candle frame has a `DatetimeIndex` named `date` (UTC, ascending, unique; the bar's *open* time) and
  float64 columns `open, high, low, close, volume` (volume in the base currency).
- On disk: freqtrade's Feather layout, `date` as a column, file `{BASE}_{QUOTE}-{timeframe}.feather`.
  `read_feather` only parses a file; finding, validating and resampling candles is `agent.market.store`'s.
- Timeframes (`TIMEFRAME_MS`): bars open on a grid of their length counted from the epoch, except `1w`,
  whose bars open on Mondays 00:00 UTC as on Binance (`grid_origin_ms`, `bar_open_ms`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agent.errors import DataError

COLUMNS = ["open", "high", "low", "close", "volume"]

TIMEFRAME_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
    "1w": 604_800_000,
}

_GRID_ORIGIN_MS = {"1w": 4 * 86_400_000}
"""1970-01-05, the first Monday after the epoch (a Thursday): weekly bars open on Mondays."""


def timeframe_ms(timeframe: str) -> int:
    """Milliseconds in one bar of `timeframe`."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        allowed = ", ".join(TIMEFRAME_MS)
        raise DataError(f"unsupported timeframe {timeframe!r}; use one of {allowed}") from None


def grid_origin_ms(timeframe: str) -> int:
    """A time (ms) at which a `timeframe` bar opens; bars open every `timeframe_ms` from it."""
    return _GRID_ORIGIN_MS.get(timeframe, 0)


def bar_open_ms(ms: int, timeframe: str) -> int:
    """Open time of the `timeframe` bar that contains the instant `ms`."""
    step, origin = timeframe_ms(timeframe), grid_origin_ms(timeframe)
    return origin + (ms - origin) // step * step


def utc_timestamp(value: str | pd.Timestamp) -> pd.Timestamp:
    """Parse a date or timestamp as UTC (naive values are taken to be UTC)."""
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise DataError(f"invalid date {value!r}; use YYYY-MM-DD or an ISO timestamp") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def file_name(symbol: str, timeframe: str) -> str:
    """`BTC/USDT`, `1h` → `BTC_USDT-1h.feather`."""
    return f"{symbol.replace('/', '_').replace(':', '_')}-{timeframe}.feather"


def read_feather(path: Path) -> pd.DataFrame:
    """Read a freqtrade-layout Feather file into a candle frame."""
    df = pd.read_feather(path)
    if "date" not in df.columns:
        raise DataError(f"{path}: no 'date' column; not a candle file")
    df["date"] = pd.to_datetime(df["date"], utc=True)
    df = df.set_index("date")[COLUMNS].astype("float64")
    return df.sort_index()


def write_feather(frame: pd.DataFrame, path: Path) -> None:
    """Write a candle frame atomically (temp file + rename), so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    out = frame[COLUMNS].reset_index()
    out = out.rename(columns={out.columns[0]: "date"})
    out.to_feather(tmp)
    tmp.replace(path)
