"""The daemon's candles: refreshed incrementally through the market-data service, served point in time.

Live and replay run this same code; only the exchange client differs (ccxt, or `ReplayExchange` whose clock
the feed sets to the simulated now before each refresh).

Contracts:
- `refresh(now_ms)` downloads, for every symbol, the closed bars the store lacks between `history_start_ms`
  and the last bar closed at now, wherever they are missing: before the stored bars, after them, or in a
  hole between them (a replay over an earlier window than a previous one on the same data directory). It
  uses the market-data service's plan, paged fetch with retries, validation and single atomic write. Each
  bar is asked for once per process: the first refresh checks the whole history, later ones only the bars
  closed since; a bar the exchange does not have is not asked for again. A symbol whose stored bars are
  complete is not fetched at all. Failures propagate as `TemporaryExchangeError` / `ExchangeError` /
  `DataError` and leave the store as it was.
- `source` is the `FrameSource` the graph reads. Its frames are the stored candles with open time in
  [history_start, last bar closed at now]: bars a previous, further-advanced replay left in the store are
  never visible, and the history's first bar is fixed per run (reproducible indicators and prompts).
- `CachedStore` is the store the daemon gives its service: the same files, parsed once per change.
- `last_bar(symbol)` is the newest visible bar (None before any data); `stale(now_ms, bars)` lists the symbols
  whose last closed candle is older than `bars` bars at now (no candle at all counts as stale).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agent.daemon.clock import last_closed_bar
from agent.market.candles import COLUMNS, timeframe_ms
from agent.market.fetch import Row, fetch_range
from agent.market.service import DownloadPlan, MarketDataService, finish_download
from agent.market.source import FrameSource, ts_ms
from agent.market.store import CandleStore


class CachedStore(CandleStore):
    """The candle store, keeping the frame this process last read or wrote for each file.

    A read returns the kept frame while the file's modification time and size are unchanged (another process
    writing the file makes it read again), so a wake-up does not parse the same Feather file twice.
    """

    def __init__(self, data_dir: Path | str) -> None:
        super().__init__(data_dir)
        self._kept: dict[Path, tuple[tuple[int, int], pd.DataFrame]] = {}

    def read(self, exchange: str, symbol: str, timeframe: str) -> pd.DataFrame | None:
        """See `CandleStore.read`."""
        path = self.path(exchange, symbol, timeframe)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        kept = self._kept.get(path)
        if kept is not None and kept[0] == (stat.st_mtime_ns, stat.st_size):
            return kept[1]
        frame = super().read(exchange, symbol, timeframe)
        if frame is not None:
            self._kept[path] = ((stat.st_mtime_ns, stat.st_size), frame)
        return frame

    def write(self, exchange: str, symbol: str, timeframe: str, frame: pd.DataFrame) -> Path:
        """See `CandleStore.write`."""
        path = super().write(exchange, symbol, timeframe, frame)
        stat = path.stat()
        self._kept[path] = ((stat.st_mtime_ns, stat.st_size), frame)
        return path


@dataclass(frozen=True)
class StaleSymbol:
    """A symbol whose data is too old to trade on."""

    symbol: str
    last_bar: int | None
    age_bars: float | None

    def __str__(self) -> str:
        if self.last_bar is None:
            return f"{self.symbol}: no candles"
        when = pd.Timestamp(self.last_bar, unit="ms", tz="UTC")
        return f"{self.symbol}: last candle {when:%Y-%m-%d %H:%M} closed {self.age_bars:.1f} bars ago"


def empty_frame() -> pd.DataFrame:
    """A candle frame without rows."""
    index = pd.DatetimeIndex([], tz="UTC", name="date").as_unit("ns")
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS}, index=index)


class CandleFeed:
    """Stored candles for the daemon's symbols, kept current through a `MarketDataService`."""

    def __init__(
        self,
        service: MarketDataService,
        symbols: Sequence[str],
        timeframe: str,
        history_start_ms: int,
        *,
        set_exchange_clock: bool = False,
    ) -> None:
        self.service = service
        self.symbols = list(symbols)
        self.timeframe = timeframe
        self.tf_ms = timeframe_ms(timeframe)
        self.history_start_ms = int(history_start_ms)
        self._history_start = pd.Timestamp(self.history_start_ms, unit="ms", tz="UTC")
        self.set_exchange_clock = set_exchange_clock
        self._stored: dict[str, pd.DataFrame] = {}
        self._stored_ts: dict[str, np.ndarray] = {}
        self._checked: dict[str, int] = {}
        """Per symbol, the newest bar up to which the store was completed in this process."""
        self._visible_end = -1
        self.requests = 0
        for symbol in self.symbols:
            self._keep(symbol, service.store.read(service.exchange.id, symbol, timeframe))
        self.source = FrameSource({s: self._view(s) for s in self.symbols}, loader=self._view)

    # ---- refresh -------------------------------------------------------------------------------------------

    def refresh(self, now_ms: int) -> int:
        """Fetch what is missing up to `now_ms` (see the module contract); returns the new bars stored."""
        if self.set_exchange_clock:
            self.service.exchange.set_now(now_ms)
        closed = last_closed_bar(now_ms, self.tf_ms)
        new_bars = sum(self._complete(symbol, closed) for symbol in self.symbols)
        if closed != self._visible_end or new_bars:
            self._visible_end = closed
            self.source.reload()
        return new_bars

    # ---- queries -------------------------------------------------------------------------------------------

    def last_bar(self, symbol: str) -> int | None:
        """Open time of the newest bar the graph can see for `symbol`."""
        view = self.source.history(symbol, self._visible_end) if self._visible_end >= 0 else empty_frame()
        return int(ts_ms(view.index[-1:])[0]) if len(view) else None

    def stale(self, now_ms: int, max_age_bars: int) -> list[StaleSymbol]:
        """Symbols whose last closed candle is older than `max_age_bars` bars at `now_ms`."""
        out = []
        for symbol in self.symbols:
            last = self.last_bar(symbol)
            age = None if last is None else (now_ms - (last + self.tf_ms)) / self.tf_ms
            if age is None or age > max_age_bars:
                out.append(StaleSymbol(symbol, last, age))
        return out

    # ---- helpers -------------------------------------------------------------------------------------------

    def _count(self, _rows: int) -> None:
        self.requests += 1

    def _complete(self, symbol: str, closed: int) -> int:
        """Fetch `symbol`'s bars missing up to `closed` that this process did not ask for yet; new bars."""
        checked = self._checked.get(symbol, self.history_start_ms - self.tf_ms)
        missing = self._missing(symbol, checked + self.tf_ms, closed)
        new_bars = self._fetch(symbol, missing) if missing else 0
        self._checked[symbol] = max(checked, closed)
        return new_bars

    def _missing(self, symbol: str, lo: int, hi: int) -> list[tuple[int, int]]:
        """[start, end) ranges of the bars with open time in [lo, hi] that the store lacks."""
        if lo > hi:
            return []
        ts = self._stored_ts.get(symbol, np.empty(0, dtype=np.int64))
        inside = ts[np.searchsorted(ts, lo, side="left") : np.searchsorted(ts, hi, side="right")]
        if len(inside) == (hi - lo) // self.tf_ms + 1:
            return []
        edges = np.concatenate(([lo - self.tf_ms], inside, [hi + self.tf_ms]))
        gaps = np.nonzero(np.diff(edges) > self.tf_ms)[0]
        return [(int(edges[k]) + self.tf_ms, int(edges[k + 1])) for k in gaps]

    def _fetch(self, symbol: str, ranges: list[tuple[int, int]]) -> int:
        """Download `ranges` of `symbol` into the store (the service's plan → fetch → finish); new bars."""
        service, exchange = self.service, self.service.exchange
        service.market(symbol)  # an unknown symbol fails here, before any candle is asked for
        existing = service.store.read(exchange.id, symbol, self.timeframe)
        plan = DownloadPlan(symbol, self.timeframe, service.exchange_now(), existing, tuple(ranges))
        rows: list[Row] = []
        before = self.requests
        for start, end in plan.ranges:
            rows += fetch_range(exchange, symbol, self.timeframe, start, end, service.policy, self._count)
        report = finish_download(service.store, exchange.id, plan, rows, self.requests - before)
        if report.new_bars > 0 or symbol not in self._stored:
            self._keep(symbol, service.store.read(exchange.id, symbol, self.timeframe))
        return max(report.new_bars, 0)

    def _keep(self, symbol: str, frame: pd.DataFrame | None) -> None:
        if frame is None or frame.empty:
            return
        frame = frame[frame.index >= self._history_start]
        self._stored[symbol] = frame
        self._stored_ts[symbol] = ts_ms(frame.index)

    def _view(self, symbol: str) -> pd.DataFrame:
        """Stored bars of `symbol` with open time <= the last bar closed at the latest refresh."""
        frame = self._stored.get(symbol)
        if frame is None:
            return empty_frame()
        end = int(np.searchsorted(self._stored_ts[symbol], self._visible_end, side="right"))
        return frame.iloc[:end]
