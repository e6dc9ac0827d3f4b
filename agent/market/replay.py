"""Offline replay exchange: the bundled candles served through the subset of ccxt's API tradegraph uses.

Backtests, the demo and offline tests run the same market code as a live session (principle 1); only
this data source and its clock differ.

Contracts:
- Data: the bundled sample (`agent.market.store.sample_dirs`: `<data_dir>/binance/`, then the sample
  shipped with tradegraph), read lazily and validated, a timeframe without its own file resampled from a
  shorter one (`agent.market.store.find_candles`); or frames passed in as
  `frames={(symbol, timeframe): frame}`. Markets exist for the symbols that have data
  and appear in `agent.market.binance_spot.SPOT_SYMBOLS` (real Binance spot rules: amount step, minimum
  amount, 5 USDT minimum notional, 0.1% taker and maker fee).
- Clock: `set_now(ms)` sets the simulated exchange time; `milliseconds()` and `fetch_time()` return it.
  Until it is set, now is the close time of the latest bar in the data (everything is closed).
- Point in time: only closed bars are served (open time + timeframe <= now); nothing at or after now and
  never the still-open bar.
- `fetch_ohlcv` follows Binance: `since` = first bar with open time >= since, else the latest bars;
  `limit` defaults to 500 and is capped at 1000.
- Faults are ccxt's exceptions (`ccxt.BadSymbol` for an unknown symbol, `ccxt.BadRequest` for a timeframe
  without data), so the caller's error handling is the same as for a real exchange.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ccxt
import numpy as np
import pandas as pd

from agent.market.binance_spot import SPOT_SYMBOLS, unified_market
from agent.market.candles import TIMEFRAME_MS, timeframe_ms
from agent.market.store import find_candles, sample_dirs, sample_files

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
_DAY_MS = 86_400_000


class CandleArrays:
    """One symbol/timeframe as numpy arrays: open times in ms (`ts`) and OHLCV rows (`ohlcv`)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.ts = pd.DatetimeIndex(frame.index).as_unit("ms").asi8.astype(np.int64)
        self.ohlcv = frame[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)


class ReplayExchange:
    """A ccxt-like exchange over bundled candles with a settable clock (see the module docstring)."""

    id = "replay"
    has = {"fetchOHLCV": True, "fetchTicker": True, "fetchTime": True}
    timeframes = {tf: tf for tf in TIMEFRAME_MS}
    features = {"spot": {"fetchOHLCV": {"limit": MAX_LIMIT}}}
    precisionMode = 4  # TICK_SIZE, as ccxt's binance  # noqa: N815 - ccxt's attribute name

    def __init__(
        self,
        data_dir: Path | str,
        now_ms: int | None = None,
        frames: dict[tuple[str, str], pd.DataFrame] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._now = now_ms
        self._frames = dict(frames or {})
        self._series: dict[tuple[str, str], CandleArrays] = {}
        self.markets: dict[str, dict[str, Any]] | None = None

    # ---- clock -----------------------------------------------------------------------------------------

    def set_now(self, ms: int) -> None:
        """Set the simulated exchange time (ms since the epoch)."""
        self._now = int(ms)

    def milliseconds(self) -> int:
        """The simulated exchange time."""
        if self._now is None:
            self._now = self._data_end()
        return self._now

    def fetch_time(self) -> int:
        """The simulated exchange time (as ccxt's `fetch_time`)."""
        return self.milliseconds()

    # ---- markets ---------------------------------------------------------------------------------------

    def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        """Markets for the symbols with data and known Binance spot rules."""
        if self.markets is None or reload:
            symbols = {symbol for symbol, _ in self._available()}
            self.markets = {s: unified_market(s) for s in sorted(symbols) if s in SPOT_SYMBOLS}
        return self.markets

    def market(self, symbol: str) -> dict[str, Any]:
        """The market for `symbol`; `ccxt.BadSymbol` if replay has none."""
        markets = self.load_markets()
        if symbol not in markets:
            raise ccxt.BadSymbol(f"replay does not have market symbol {symbol}")
        return markets[symbol]

    # ---- data ------------------------------------------------------------------------------------------

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[list[float]]:
        """Closed candles as `[ms, open, high, low, close, volume]` rows (Binance's paging rules)."""
        self.market(symbol)
        series = self._get_series(symbol, timeframe)
        limit = min(DEFAULT_LIMIT if limit is None else int(limit), MAX_LIMIT)
        hi = self._closed_end(series, timeframe)
        if since is not None:
            lo = int(np.searchsorted(series.ts, since, side="left"))
            hi = min(hi, lo + limit)
        else:
            lo = max(0, hi - limit)
        return [[int(series.ts[i]), *map(float, series.ohlcv[i])] for i in range(lo, hi)]

    def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        """A ticker from the closed bars of the last 24 hours (timeframe: the finest one with data)."""
        self.market(symbol)
        timeframe = min((tf for s, tf in self._available() if s == symbol), key=timeframe_ms)
        series = self._get_series(symbol, timeframe)
        now = self.milliseconds()
        hi = self._closed_end(series, timeframe)
        day_start = now - _DAY_MS - timeframe_ms(timeframe)  # bars that close within the last 24 hours
        lo = min(int(np.searchsorted(series.ts, day_start, side="right")), max(hi - 1, 0))
        rows = series.ohlcv[lo:hi]
        if len(rows) == 0:
            raise ccxt.BadRequest(f"replay has no closed candles for {symbol} before {now}")
        last = float(rows[-1, 3])
        return {
            "symbol": symbol,
            "timestamp": now,
            "datetime": pd.Timestamp(now, unit="ms", tz="UTC").isoformat(),
            "open": float(rows[0, 0]),
            "high": float(rows[:, 1].max()),
            "low": float(rows[:, 2].min()),
            "close": last,
            "last": last,
            "bid": None,
            "ask": None,
            "baseVolume": float(rows[:, 4].sum()),
            "quoteVolume": float((rows[:, 3] * rows[:, 4]).sum()),
            "info": {},
        }

    def close(self) -> None:
        """Nothing to release (ccxt compatibility)."""

    # ---- helpers ---------------------------------------------------------------------------------------

    def _closed_end(self, series: CandleArrays, timeframe: str) -> int:
        """Index one past the last bar that is closed at now (open + timeframe <= now)."""
        return int(np.searchsorted(series.ts, self.milliseconds() - timeframe_ms(timeframe), side="right"))

    def _available(self) -> set[tuple[str, str]]:
        return set(self._frames) | set(sample_files(self.data_dir))

    def _get_series(self, symbol: str, timeframe: str) -> CandleArrays:
        key = (symbol, timeframe)
        if key not in self._series:
            if key in self._frames:
                frame = self._frames[key]
            else:
                found = find_candles(sample_dirs(self.data_dir), symbol, timeframe)
                if found is None:
                    raise ccxt.BadRequest(f"replay has no {timeframe} candles for {symbol}")
                frame = found
            self._series[key] = CandleArrays(frame)
        return self._series[key]

    def _data_end(self) -> int:
        """Close time of the latest bar over all data: the default clock."""
        ends = []
        for symbol, tf in self._available():
            series = self._get_series(symbol, tf)
            if len(series.ts):
                ends.append(int(series.ts[-1]) + timeframe_ms(tf))
        if not ends:
            folders = ", ".join(map(str, sample_dirs(self.data_dir)))
            raise ccxt.BadRequest(f"replay has no candles in {folders}")
        return max(ends)


class AsyncReplayExchange:
    """`ReplayExchange` behind ccxt.async_support's coroutine interface (for the async fetch path)."""

    def __init__(self, replay: ReplayExchange) -> None:
        self.replay = replay
        self.id = replay.id
        self.has = replay.has
        self.features = replay.features
        self.closed = False

    @property
    def markets(self) -> dict[str, Any] | None:
        """The wrapped exchange's markets."""
        return self.replay.markets

    async def load_markets(self, reload: bool = False) -> dict[str, Any]:
        """See `ReplayExchange.load_markets`."""
        return self.replay.load_markets(reload)

    def market(self, symbol: str) -> dict[str, Any]:
        """See `ReplayExchange.market`."""
        return self.replay.market(symbol)

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[list[float]]:
        """See `ReplayExchange.fetch_ohlcv`."""
        return self.replay.fetch_ohlcv(symbol, timeframe, since, limit)

    async def fetch_time(self) -> int:
        """See `ReplayExchange.fetch_time`."""
        return self.replay.fetch_time()

    def milliseconds(self) -> int:
        """See `ReplayExchange.milliseconds`."""
        return self.replay.milliseconds()

    async def close(self) -> None:
        """Mark closed (nothing to release)."""
        self.closed = True
