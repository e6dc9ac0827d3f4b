"""Candle frames: the one OHLCV shape every stage passes around, and loading it from Feather files.

Contracts:
- A candle frame has a `DatetimeIndex` named `date` (UTC, ascending, unique; the bar's *open* time) and
  float64 columns `open, high, low, close, volume` (volume in the base currency).
- On disk: freqtrade's Feather layout, `date` as a column, file `{BASE}_{QUOTE}-{timeframe}.feather`.
- `load_candles` looks in the download store (`<data_dir>/store/<exchange>/`) first, then in
  `<data_dir>/binance/`, then in the bundled sample of the checkout (`data/binance/`), and raises
  `DataError` with one line when nothing is found or the window
  is empty.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from agent.errors import DataError

COLUMNS = ["open", "high", "low", "close", "volume"]

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "data" / "binance"
"""The sample shipped with the checkout; always a fallback, whatever `data_dir` is."""

TIMEFRAME_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


def timeframe_ms(timeframe: str) -> int:
    """Milliseconds in one bar of `timeframe`."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        allowed = ", ".join(TIMEFRAME_MS)
        raise DataError(f"unsupported timeframe {timeframe!r}; use one of {allowed}") from None


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


def candidate_paths(data_dir: Path, symbol: str, timeframe: str, exchange: str = "binance") -> list[Path]:
    """Where a symbol's candles may live, in order of preference."""
    name = file_name(symbol, timeframe)
    paths = [data_dir / "store" / exchange / name, data_dir / "binance" / name, BUNDLED_DIR / name]
    return list(dict.fromkeys(paths))


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


def load_candles(
    symbol: str,
    timeframe: str,
    data_dir: Path,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    exchange: str = "binance",
) -> pd.DataFrame:
    """Candles for `symbol` with start <= date < end (either bound optional)."""
    timeframe_ms(timeframe)
    for path in candidate_paths(Path(data_dir), symbol, timeframe, exchange):
        if path.exists():
            frame = read_feather(path)
            break
    else:
        raise DataError(
            f"no {timeframe} candles for {symbol} in {data_dir} "
            f"(run: tradegraph data download --symbols {symbol} --timeframe {timeframe})"
        )
    if start is not None:
        frame = frame[frame.index >= utc_timestamp(start)]
    if end is not None:
        frame = frame[frame.index < utc_timestamp(end)]
    if frame.empty:
        raise DataError(f"no {timeframe} candles for {symbol} between {start} and {end}")
    return frame
