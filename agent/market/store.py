"""The candle store on disk: downloaded candles per exchange, beside the bundled sample.

Contracts:
- Downloads live at `<data_dir>/store/<exchange>/{BASE}_{QUOTE}-{timeframe}.feather` (the first place
  `agent.market.candles.load_candles` looks); the bundled sample at `<data_dir>/binance/` is read-only.
- Writes go through `candles.write_feather` (temp file + rename): a reader or a crash never leaves half a
  file, and a failed download writes nothing.
- A file that cannot be read raises `DataError` with one line naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from agent.errors import DataError
from agent.market.candles import TIMEFRAME_MS, file_name, read_feather, write_feather

BUNDLED_EXCHANGE = "binance"


@dataclass(frozen=True)
class StoredFile:
    """One candle file: where it comes from (`store` or `bundled`), what it holds, where it is."""

    source: str
    exchange: str
    symbol: str
    timeframe: str
    path: Path


class CandleStore:
    """Read and write candle files under a data directory."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "store"

    def path(self, exchange: str, symbol: str, timeframe: str) -> Path:
        """Where the download store keeps `symbol`'s `timeframe` candles from `exchange`."""
        return self.root / exchange / file_name(symbol, timeframe)

    def read(self, exchange: str, symbol: str, timeframe: str) -> pd.DataFrame | None:
        """The stored candles, or None when nothing was downloaded yet."""
        path = self.path(exchange, symbol, timeframe)
        return read_candle_file(path) if path.exists() else None

    def write(self, exchange: str, symbol: str, timeframe: str, frame: pd.DataFrame) -> Path:
        """Store `frame` atomically, replacing what was there; returns the path."""
        path = self.path(exchange, symbol, timeframe)
        write_feather(frame, path)
        return path

    def files(self) -> list[StoredFile]:
        """Every candle file: downloads first (by exchange), then the bundled sample."""
        found = []
        if self.root.is_dir():
            for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
                found += [_describe(p, "store", folder.name) for p in sorted(folder.glob("*.feather"))]
        bundled = self.data_dir / BUNDLED_EXCHANGE
        if bundled.is_dir():
            found += [_describe(p, "bundled", BUNDLED_EXCHANGE) for p in sorted(bundled.glob("*.feather"))]
        return [f for f in found if f is not None]


def read_candle_file(path: Path) -> pd.DataFrame:
    """A candle file as a frame; `DataError` (one line) if it is missing or not a candle file."""
    try:
        return read_feather(path)
    except DataError:
        raise
    except (OSError, ValueError, KeyError) as e:
        reason = " ".join(str(e).split())[:160]
        raise DataError(f"cannot read candle file {path}: {type(e).__name__}: {reason}") from None


def parse_file_name(path: Path) -> tuple[str, str] | None:
    """`BTC_USDT-1h.feather` → ("BTC/USDT", "1h"); None for a name that does not follow the layout."""
    stem, _, timeframe = path.stem.rpartition("-")
    if timeframe not in TIMEFRAME_MS or "_" not in stem:
        return None
    return stem.replace("_", "/", 1), timeframe


def _describe(path: Path, source: str, exchange: str) -> StoredFile | None:
    parsed = parse_file_name(path)
    if parsed is None:
        return None
    return StoredFile(source, exchange, parsed[0], parsed[1], path)
