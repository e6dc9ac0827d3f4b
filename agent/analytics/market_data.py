"""Candles and returns, point in time: the analytics tools' one way to read market data.

Contracts:
- `frame(ctx, window)` loads through `agent.market.store.load_candles` (download store first, then the
  bundled sample, validated, resampled from a shorter stored timeframe when needed), so the tools see
  exactly the candles a backtest sees. Bars satisfy start <= open time < end: nothing after `end` is read.
- An unknown symbol is a `DataError` listing the stored symbols; an empty window names the stored span.
- Returns are simple close-to-close returns, `close[t] / close[t-1] - 1`, the first bar of the window
  having none. Annualising uses a 365-day year of bars (`periods_per_year`), as `agent.runs.metrics` does.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from agent.analytics.context import ToolContext
from agent.analytics.models import Period, Timeframe, ToolInput, ToolOutput, Window, num, stamp
from agent.errors import DataError
from agent.market.candles import timeframe_ms
from agent.runs.metrics import MS_PER_YEAR

MAX_ROWS = 200
"""Rows a candle answer carries at most (the newest ones); the summary covers the whole window."""


def stored_symbols(ctx: ToolContext) -> list[str]:
    """Symbols with stored candles (download store and bundled sample)."""
    from agent.market.store import CandleStore

    return sorted({f.symbol for f in CandleStore(ctx.settings.data_dir).files()})


def exchange_folder(ctx: ToolContext) -> str:
    """The store folder candles are read from (`binance` for the bundled replay data)."""
    return "binance" if ctx.settings.exchange.id == "replay" else ctx.settings.exchange.id


def frame(ctx: ToolContext, w: Window) -> pd.DataFrame:
    """The window's candles (see the module contract)."""
    from agent.market.store import load_candles

    known = stored_symbols(ctx)
    if w.symbol not in known:
        raise DataError(f"unknown symbol {w.symbol!r}; stored symbols: {', '.join(known) or 'none'}")
    try:
        return load_candles(
            w.symbol, w.timeframe, ctx.settings.data_dir, w.start, w.end, exchange_folder(ctx)
        )
    except DataError as e:
        if "between" not in str(e):
            raise
        whole = load_candles(w.symbol, w.timeframe, ctx.settings.data_dir, exchange=exchange_folder(ctx))
        raise DataError(
            f"no {w.timeframe} candles for {w.symbol} in [{w.start}, {w.end}); stored: "
            f"{whole.index[0]:%Y-%m-%d %H:%M} to {whole.index[-1]:%Y-%m-%d %H:%M} UTC"
        ) from None


def _rows(df: pd.DataFrame) -> list[Any]:
    """The frame's rows as named tuples (typed loosely: columns are read by name)."""
    return list(df.itertuples())


def periods_per_year(timeframe: str) -> float:
    """Bars of `timeframe` in a 365-day year."""
    return MS_PER_YEAR / timeframe_ms(timeframe)


def returns(close: pd.Series) -> pd.Series:
    """Simple close-to-close returns (the first bar has none and is dropped)."""
    return close.pct_change().iloc[1:]


# ------------------------------------------------------------------------------------------------ tools


class CandlesInput(Window):
    """Candles of one symbol over a window."""

    limit: int = 20
    """How many of the newest bars to list (at most MAX_ROWS); the summary covers every bar."""


class Candle(ToolOutput):
    """One bar."""

    time: str
    open: float
    high: float
    low: float
    close: float
    volume: float


class CandlesResult(ToolOutput):
    """A window's summary and its newest bars."""

    symbol: str
    timeframe: str
    first: str
    last: str
    bars: int
    first_open: float
    last_close: float
    high: float
    low: float
    total_return: float | None
    """last close / first bar's open - 1."""
    volume: float
    rows: list[Candle]


def candles(ctx: ToolContext, a: CandlesInput) -> CandlesResult:
    """The window's OHLCV summary and its newest `limit` bars."""
    df = frame(ctx, a)
    tail = df.tail(max(0, min(a.limit, MAX_ROWS)))
    rows = [
        Candle(time=stamp(t), open=r.open, high=r.high, low=r.low, close=r.close, volume=r.volume)
        for t, r in zip(tail.index, _rows(tail), strict=True)
    ]
    return CandlesResult(
        symbol=a.symbol,
        timeframe=a.timeframe,
        first=stamp(df.index[0]),
        last=stamp(df.index[-1]),
        bars=len(df),
        first_open=float(df["open"].iloc[0]),
        last_close=float(df["close"].iloc[-1]),
        high=float(df["high"].max()),
        low=float(df["low"].min()),
        total_return=num(df["close"].iloc[-1] / df["open"].iloc[0] - 1),
        volume=float(df["volume"].sum()),
        rows=rows,
    )


class ReturnsInput(Window):
    """Returns of one symbol, per bar or summed up per calendar period."""

    period: Period = "bar"
    """`bar`: the window only; else also the compounded return of each calendar period (UTC)."""


class ReturnsResult(ToolOutput):
    """Returns over the window: the whole window, and per period when asked."""

    symbol: str
    timeframe: str
    first: str
    last: str
    bars: int
    total_return: float | None
    """last close / first close - 1 (close to close over the window)."""
    mean_return: float | None
    """Mean of the per-bar simple returns."""
    periods: dict[str, float | None]
    """Per period (`2024-Q3`, `2024-08`, `2024-W05`, `2024-08-01`): compounded return of its bars."""


def period_key(index: pd.DatetimeIndex, period: str) -> pd.Index:
    """Labels of calendar periods (UTC) for each bar: quarter, month, ISO week or day."""
    if period == "quarter":
        return pd.Index([f"{t.year}-Q{(t.month - 1) // 3 + 1}" for t in index])
    if period == "month":
        return pd.Index([f"{t.year}-{t.month:02d}" for t in index])
    if period == "week":
        return pd.Index([f"{t.isocalendar()[0]}-W{t.isocalendar()[1]:02d}" for t in index])
    return pd.Index([f"{t:%Y-%m-%d}" for t in index])


def returns_tool(ctx: ToolContext, a: ReturnsInput) -> ReturnsResult:
    """Total and mean returns over the window, and compounded returns per calendar period."""
    df = frame(ctx, a)
    r = returns(df["close"])
    periods: dict[str, float | None] = {}
    if a.period != "bar" and len(r):
        grouped = (1 + r).groupby(period_key(pd.DatetimeIndex(r.index), a.period)).prod() - 1
        periods = {str(k): num(v) for k, v in grouped.items()}
    total = df["close"].iloc[-1] / df["close"].iloc[0] - 1
    return ReturnsResult(
        symbol=a.symbol,
        timeframe=a.timeframe,
        first=stamp(df.index[0]),
        last=stamp(df.index[-1]),
        bars=len(df),
        total_return=num(total),
        mean_return=num(r.mean()) if len(r) else None,
        periods=periods,
    )


class SymbolsInput(ToolInput):
    """No arguments."""


class SymbolsResult(ToolOutput):
    """Stored candle files: symbol, timeframe and span."""

    files: list[str]
    """`SYMBOL TIMEFRAME first..last (rows)` per file."""
    timeframes: list[Timeframe]


def symbols_tool(ctx: ToolContext, _: SymbolsInput) -> SymbolsResult:
    """What market data is stored (and so what the other tools can read)."""
    from agent.market.store import CandleStore, read_candle_file

    lines = []
    for f in CandleStore(ctx.settings.data_dir).files():
        try:
            df = read_candle_file(f.path)
        except DataError as e:
            lines.append(f"{f.symbol} {f.timeframe} unreadable: {e}")
            continue
        first, last = pd.Timestamp(df.index[0]), pd.Timestamp(df.index[-1])
        lines.append(
            f"{f.symbol} {f.timeframe} {first:%Y-%m-%d %H:%M}..{last:%Y-%m-%d %H:%M} ({len(df)} bars)"
        )
    return SymbolsResult(files=sorted(set(lines)), timeframes=["1m", "5m", "15m", "30m", "1h", "4h", "1d"])


def annualised(std: float, timeframe: str) -> float | None:
    """A per-bar standard deviation annualised with the square root of bars per year."""
    return num(std * math.sqrt(periods_per_year(timeframe)))
