"""The candle store on disk: where candle files live, loading them validated (and resampled), writing them.

Contracts:
- Downloads live at `<data_dir>/store/<exchange>/{BASE}_{QUOTE}-{timeframe}.feather`; the bundled sample
  is read from `sample_dirs(data_dir)`: `<data_dir>/binance/` first, then the sample shipped with tradegraph
  (`BUNDLED_DIR`), so every path (`tradegraph data list`, backtests, the agent, `--replay`) sees the
  sample through the same fallback whatever `data_dir` is and wherever tradegraph is installed. The sample
  is read-only.
- Where the shipped sample is (`bundled_dir`): an installed wheel carries the checkout's `data/binance/`
  (and `data/README.md`, its provenance and license) as the package data `agent/market/sample/`, found
  through `importlib.resources`; a checkout (editable install, or the sources on `sys.path`) has no such
  folder and reads `data/binance/` beside `agent/`.
- `load_candles` looks in the download store first, then in the sample folders. In each folder it takes
  the file of the timeframe asked for, else builds the timeframe from a shorter one stored there
  (`agent.market.resample`: complete buckets only). Nothing found raises `DataError` whose hint is a
  `tradegraph data download` command that fetches exactly what is missing.
- Every load is validated (`agent.market.validate.check_candles`): a file that cannot be read, or holds
  unusable candles (NaN, duplicate timestamps, prices <= 0, broken OHLC, off-grid bars, no rows), raises
  `DataError` with one line naming the file and what is wrong. `read_candle_file` only parses (for
  `tradegraph data check`, which reports the problems itself).
- Writes go through `candles.write_feather` (temp file + rename): a reader or a crash never leaves half a
  file, and a failed download writes nothing.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from agent.errors import DataError
from agent.market.candles import (
    TIMEFRAME_MS,
    file_name,
    read_feather,
    timeframe_ms,
    utc_timestamp,
    write_feather,
)
from agent.market.resample import derivable_from, resample_candles
from agent.market.validate import check_candles

BUNDLED_EXCHANGE = "binance"
"""The exchange the bundled sample comes from (and the store folder replay data is looked up in)."""

SAMPLE_PACKAGE = "agent.market"
SAMPLE_FOLDER = "sample"
"""The wheel installs the sample as `agent/market/sample/binance/` (pyproject: `agent.market.sample` is the
checkout's `data/`, with its `README.md` and `binance/*.feather` as package data)."""

CHECKOUT_SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / BUNDLED_EXCHANGE
"""The sample in a checkout: `data/binance/` beside `agent/`."""


def bundled_dir() -> Path:
    """The sample shipped with tradegraph: the installed package's `sample/binance/` when it has one (a wheel
    install), else the checkout's `data/binance/` (editable install or sources on `sys.path`)."""
    packaged = importlib.resources.files(SAMPLE_PACKAGE).joinpath(SAMPLE_FOLDER, BUNDLED_EXCHANGE)
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return CHECKOUT_SAMPLE_DIR


BUNDLED_DIR = bundled_dir()
"""The sample shipped with tradegraph; always a fallback, whatever `data_dir` is."""


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
        """The stored candles (validated), or None when nothing was downloaded yet."""
        path = self.path(exchange, symbol, timeframe)
        return load_candle_file(path, timeframe) if path.exists() else None

    def write(self, exchange: str, symbol: str, timeframe: str, frame: pd.DataFrame) -> Path:
        """Store `frame` atomically, replacing what was there; returns the path."""
        path = self.path(exchange, symbol, timeframe)
        write_feather(frame, path)
        return path

    def files(self) -> list[StoredFile]:
        """Every candle file: downloads first (by exchange), then the sample files `load_candles` uses."""
        found = []
        if self.root.is_dir():
            for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
                found += [_describe(p, "store", folder.name) for p in sorted(folder.glob("*.feather"))]
        found += [
            StoredFile("bundled", BUNDLED_EXCHANGE, symbol, timeframe, path)
            for (symbol, timeframe), path in sorted(sample_files(self.data_dir).items())
        ]
        return [f for f in found if f is not None]


# ---- where candles are -----------------------------------------------------------------------------------


def sample_dirs(data_dir: Path | str) -> list[Path]:
    """Folders holding the bundled sample, preferred first: `<data_dir>/binance/`, then `BUNDLED_DIR`."""
    first = Path(data_dir) / BUNDLED_EXCHANGE
    return [first] if _same(first, BUNDLED_DIR) else [first, BUNDLED_DIR]


def sample_files(data_dir: Path | str) -> dict[tuple[str, str], Path]:
    """(symbol, timeframe) → the sample file used for it (the preferred folder that has it)."""
    files: dict[tuple[str, str], Path] = {}
    for folder in sample_dirs(data_dir):
        for path in sorted(folder.glob("*.feather")) if folder.is_dir() else []:
            parsed = parse_file_name(path)
            if parsed is not None:
                files.setdefault(parsed, path)
    return files


def candle_dirs(data_dir: Path | str, exchange: str = BUNDLED_EXCHANGE) -> list[Path]:
    """Where `load_candles` looks, in order: the download store of `exchange`, then the sample folders."""
    return [Path(data_dir) / "store" / exchange, *sample_dirs(data_dir)]


def candidate_paths(
    data_dir: Path | str, symbol: str, timeframe: str, exchange: str = BUNDLED_EXCHANGE
) -> list[Path]:
    """The files of exactly `timeframe` that `load_candles` would read, in order of preference."""
    return [folder / file_name(symbol, timeframe) for folder in candle_dirs(data_dir, exchange)]


# ---- reading ---------------------------------------------------------------------------------------------


def read_candle_file(path: Path) -> pd.DataFrame:
    """A candle file as a frame, not validated; `DataError` (one line) if it is not a readable candle file."""
    try:
        return read_feather(path)
    except DataError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:  # pyarrow's errors derive from these
        reason = " ".join(str(e).split())[:160]
        raise DataError(f"cannot read candle file {path}: {type(e).__name__}: {reason}") from None


def load_candle_file(path: Path, timeframe: str) -> pd.DataFrame:
    """A candle file as a validated frame; `DataError` naming the file and its problems otherwise."""
    frame = read_candle_file(path)
    problems = check_candles(frame, timeframe).problems
    if problems:
        raise DataError(
            f"{timeframe} candles in {path} are not usable ({'; '.join(problems)}); "
            f"see: tradegraph data check --file {path}"
        )
    return frame


def find_candles(folders: Sequence[Path], symbol: str, timeframe: str) -> pd.DataFrame | None:
    """`symbol`'s `timeframe` candles from the first folder that has them, stored or resampled; else None."""
    for folder in folders:
        path = folder / file_name(symbol, timeframe)
        if path.exists():
            return load_candle_file(path, timeframe)
        for base in derivable_from(timeframe):
            path = folder / file_name(symbol, base)
            if path.exists():
                return resample_candles(load_candle_file(path, base), base, timeframe)
    return None


def load_candles(
    symbol: str,
    timeframe: str,
    data_dir: Path | str,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    exchange: str = BUNDLED_EXCHANGE,
    *,
    since_hint: str | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Candles for `symbol` with start <= date < end (either bound optional); see the module contract.

    `since_hint` is the first date the download hint suggests when nothing is found (default: `start`, else
    a year ago).
    """
    timeframe_ms(timeframe)  # an unsupported timeframe fails here, with the list of supported ones
    frame = find_candles(candle_dirs(data_dir, exchange), symbol, timeframe)
    if frame is None:
        raise DataError(
            f"no {timeframe} candles for {symbol} in {data_dir} (nor any shorter timeframe to build them "
            f"from); download them: {download_hint(symbol, timeframe, exchange, since_hint or start)}"
        )
    if start is not None:
        frame = frame[frame.index >= utc_timestamp(start)]
    if end is not None:
        frame = frame[frame.index < utc_timestamp(end)]
    if frame.empty:
        raise DataError(f"no {timeframe} candles for {symbol} between {start} and {end}")
    return frame


def download_hint(
    symbol: str, timeframe: str, exchange: str = BUNDLED_EXCHANGE, since: str | pd.Timestamp | None = None
) -> str:
    """The `tradegraph data download` command that stores what `load_candles` looks for."""
    first = utc_timestamp(since) if since is not None else datetime.now(UTC) - timedelta(days=365)
    return (
        f"tradegraph data download --exchange {exchange} --symbols {symbol} --timeframe {timeframe} "
        f"--since {first:%Y-%m-%d}"
    )


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


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
