"""Paginated OHLCV fetching: one paging rule, driven by a synchronous and an asynchronous caller.

Contracts:
- `pager(start, end, tf)` is the single paging rule, a generator: it yields the `since` of each request,
  receives the page the exchange returned, and finally returns the rows with start <= open time < end.
  It stops at an empty page, or once the next bar would open at or after `end`; an exchange that answers
  with bars before the requested `since` (no progress) is an `ExchangeError`, never an endless loop.
- Each request asks for `page_limit(exchange)` bars: the exchange's own per-call maximum from ccxt's
  `features` (binance spot: 1000), 500 when the exchange does not state one. Never more.
- `fetch_range` / `afetch_range` drive the pager with retries (`agent.market.retry`); `on_page(n)` is
  called after each page with its row count (progress bars).
- `rows_to_frame` turns rows into the canonical candle frame (ns-resolution UTC index `date`, float64
  columns), sorted, one row per open time.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import pandas as pd

from agent.errors import ExchangeError
from agent.market import retry
from agent.market.candles import COLUMNS, timeframe_ms
from agent.market.retry import RetryPolicy
from agent.market.validate import drop_duplicates

DEFAULT_PAGE_LIMIT = 500

Row = list[float]
Pager = Generator[int, list[Any], list[Row]]


def page_limit(exchange: Any) -> int:
    """The most bars one `fetch_ohlcv` call may ask `exchange` for."""
    features = getattr(exchange, "features", None) or {}
    limit = ((features.get("spot") or {}).get("fetchOHLCV") or {}).get("limit")
    return int(limit) if limit else DEFAULT_PAGE_LIMIT


def pager(start_ms: int, end_ms: int, tf_ms: int) -> Pager:
    """The paging rule (see the module contract)."""
    rows: list[Row] = []
    since = start_ms
    while since < end_ms:
        page = _checked((yield since))
        if not page:
            break
        rows.extend(row for row in page if since <= row[0] < end_ms)
        last = int(page[-1][0])
        if last < since:
            raise ExchangeError(f"the exchange sent bars up to {last} for a request from {since}")
        since = last + tf_ms
    return rows


def fetch_range(
    exchange: Any,
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    policy: RetryPolicy,
    on_page: Callable[[int], None] | None = None,
) -> list[Row]:
    """Rows with start <= open time < end, fetched page by page with retries."""
    limit = page_limit(exchange)
    what = f"{exchange.id} fetch_ohlcv {symbol} {timeframe}"
    pages = pager(start_ms, end_ms, timeframe_ms(timeframe))
    try:
        since = next(pages)
        while True:
            page = retry.call(policy, what, exchange.fetch_ohlcv, symbol, timeframe, since, limit)
            if on_page is not None:
                on_page(len(page) if isinstance(page, list) else 0)
            since = pages.send(page)
    except StopIteration as done:
        return list(done.value)


async def afetch_range(
    exchange: Any,
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    policy: RetryPolicy,
    on_page: Callable[[int], None] | None = None,
) -> list[Row]:
    """`fetch_range` for ccxt.async_support exchanges."""
    limit = page_limit(exchange)
    what = f"{exchange.id} fetch_ohlcv {symbol} {timeframe}"
    pages = pager(start_ms, end_ms, timeframe_ms(timeframe))
    try:
        since = next(pages)
        while True:
            page = await retry.acall(policy, what, exchange.fetch_ohlcv, symbol, timeframe, since, limit)
            if on_page is not None:
                on_page(len(page) if isinstance(page, list) else 0)
            since = pages.send(page)
    except StopIteration as done:
        return list(done.value)


def rows_to_frame(rows: list[Row]) -> pd.DataFrame:
    """Canonical candle frame from `[ms, open, high, low, close, volume]` rows."""
    if not rows:
        index = pd.DatetimeIndex([], tz="UTC", name="date").as_unit("ns")
        return pd.DataFrame({col: pd.Series(dtype="float64") for col in COLUMNS}, index=index)
    data = np.asarray([row[:6] for row in rows], dtype=np.float64)
    index = pd.to_datetime(data[:, 0].astype(np.int64), unit="ms", utc=True).as_unit("ns")
    frame = pd.DataFrame(data[:, 1:], index=pd.DatetimeIndex(index, name="date"), columns=COLUMNS)
    return drop_duplicates(frame)


def _checked(page: Any) -> list[Any]:
    """The page if it has the shape of OHLCV rows, else `ExchangeError`."""
    if page is None:
        return []
    if not isinstance(page, list) or not all(
        isinstance(row, (list, tuple)) and len(row) >= 6 and isinstance(row[0], (int, float)) for row in page
    ):
        raise ExchangeError(f"malformed OHLCV answer from the exchange: {str(page)[:80]!r}")
    return page
