"""The dashboard's charts: a run's equity against buy & hold, its drawdown, and its fills on the price.

Contracts:
- Figures come from `agent.backtest.charts` (the one chart module; text in them is escaped there); this
  module only gathers the series (`agent.runs.queries`, candles from the data folder) and embeds them with
  the response's CSP nonce on every script element (`embed`).
- Lines are thinned to about `DRAWN_POINTS` points (the minimum and maximum of every bucket of bars, so
  extremes and drawdown troughs survive); the title says so.
- Buy & hold here is the gross equal-weight benchmark: the initial equity split equally over the run's
  symbols at the first processed bar's close, held (no fees). Candles missing from the data folder leave
  it out (the chart says nothing false). Candle files are read once per file version (path, mtime).
- `ChartCache` keeps the last `CACHED` drawn charts (their HTML before the nonce is added) by a key that
  includes the run's ledger version (`agent.runs.queries.ledger_version`), so a chart is drawn again only
  when the run has a new bar or order.
- plotly.js itself is served once per browser from `/assets/plotly.js` (same origin, cached), not inlined
  in every page.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from agent.backtest import charts
from agent.market.candles import file_name
from agent.market.store import candle_dirs, load_candle_file
from agent.runs.queries import EquityPoint, OrderRow

HOLD = "buy & hold"
CACHED = 16
DRAWN_POINTS = 2_000
"""Points a dashboard line keeps at most (about): a year of hours draws in a page that answers fast."""


class ChartCache:
    """The last `CACHED` charts drawn, by key (module contract)."""

    def __init__(self, size: int = CACHED) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, str] = OrderedDict()
        self._drawing: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, draw: Callable[[], str]) -> str:
        """The chart under `key`, drawn by `draw` when missing. One draw per key at a time: a caller that
        finds it being drawn (a page and the warmer after a new bar) waits for that drawing instead of
        drawing it again beside it (two drawings at once share the interpreter and both take twice as
        long); if that drawing fails, the caller draws it itself."""
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key]
                pending = self._drawing.get(key)
                mine = pending is None
                if pending is None:
                    pending = self._drawing[key] = threading.Event()
            if not mine:
                pending.wait()
                continue
            try:
                html = draw()
                with self._lock:
                    self._items[key] = html
                    while len(self._items) > self.size:
                        self._items.popitem(last=False)
                return html
            finally:
                with self._lock:
                    self._drawing.pop(key, None)
                pending.set()

    def clear(self) -> None:
        """Forget every chart."""
        with self._lock:
            self._items.clear()


def embed(html: str, nonce: str) -> str:
    """`html` (a chart's div and script) with `nonce` on every script element."""
    return html.replace("<script ", f'<script nonce="{nonce}" ').replace(
        "<script>", f'<script nonce="{nonce}">'
    )


def closes(data_dir: Path, symbol: str, timeframe: str) -> pd.Series | None:
    """`symbol`'s closes by bar open time (UTC), from the first candle file that has them, or None."""
    for folder in candle_dirs(data_dir):
        path = folder / file_name(symbol, timeframe)
        if path.exists():
            return _closes(path, path.stat().st_mtime_ns, timeframe)
    return None


@lru_cache(maxsize=32)
def _closes(path: Path, _mtime: int, timeframe: str) -> pd.Series:
    frame = load_candle_file(path, timeframe)
    index = frame.index if isinstance(frame.index, pd.DatetimeIndex) else pd.DatetimeIndex(frame["date"])
    return pd.Series(frame["close"].to_numpy(dtype=float), index=index)


def equity_lines(
    curve: tuple[EquityPoint, ...], label: str, symbols: tuple[str, ...], timeframe: str, data_dir: Path
) -> tuple[charts.Overview, int] | None:
    """The run's equity, its buy & hold and exposure (module contract), each line thinned to about
    `DRAWN_POINTS` points (`charts.thin`: extremes kept), and the thinning factor (1: every bar); None
    before the run's first bar."""
    if not curve:
        return None
    index = pd.DatetimeIndex(pd.to_datetime([p.bar_ts for p in curve], unit="ms", utc=True))
    equity = pd.Series([p.equity for p in curve], index=index)
    lines = [charts.Line(label, equity)]
    hold = _hold(index, float(curve[0].equity), symbols, timeframe, data_dir)
    if hold is not None:
        lines.append(charts.Line(HOLD, hold))
    cash = pd.Series([p.cash for p in curve], index=index)
    exposure = (1.0 - cash / equity).clip(lower=0.0)
    factor = charts.thin(np.asarray(equity.to_numpy(), dtype=np.float64), DRAWN_POINTS)[1]
    shown = tuple(_thinned(line) for line in lines)
    return charts.Overview(shown, float(curve[0].equity), (_thinned(charts.Line(label, exposure)),)), factor


def _thinned(line: charts.Line) -> charts.Line:
    keep = charts.thin(np.asarray(line.values.to_numpy(), dtype=np.float64), DRAWN_POINTS)[0]
    return charts.Line(line.name, line.values.iloc[keep])


def _hold(
    index: pd.DatetimeIndex, initial: float, symbols: tuple[str, ...], timeframe: str, data_dir: Path
) -> pd.Series | None:
    if not symbols:
        return None
    parts = []
    for symbol in symbols:
        close = closes(data_dir, symbol, timeframe)
        if close is None:
            return None
        aligned = close.reindex(index).ffill()
        if aligned.isna().iloc[0]:
            return None
        parts.append(aligned / aligned.iloc[0] * (initial / len(symbols)))
    total: pd.Series = pd.concat(parts, axis=1).sum(axis=1)
    return total


def price_marks(
    symbol: str, timeframe: str, data_dir: Path, orders: tuple[OrderRow, ...], span: tuple[int, int]
) -> charts.PriceMarks | None:
    """`symbol`'s closes over `span` (bar ms, inclusive; thinned like the equity) with the run's fills on
    them (never thinned), or None without candles."""
    close = closes(data_dir, symbol, timeframe)
    if close is None:
        return None
    start, end = (pd.Timestamp(t, unit="ms", tz="UTC") for t in span)
    shown = _thinned(charts.Line(symbol, close[(close.index >= start) & (close.index <= end)])).values
    fills = tuple(
        charts.Fill(
            pd.Timestamp(o.bar_ts, unit="ms", tz="UTC"),
            float(o.price or 0.0),
            charts.fill_kind(o.side == "buy", o.reason or ""),
            f"{o.reason or o.side}: {o.amount:.8g} at {o.price or 0.0:.8g}",
        )
        for o in orders
        if o.symbol == symbol and o.price
    )
    return charts.PriceMarks(symbol, shown, fills)
