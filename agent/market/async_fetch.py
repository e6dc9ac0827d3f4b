"""Concurrent download of many symbols through `ccxt.async_support` (or `AsyncReplayExchange`).

Contracts:
- Same plan, paging, validation and atomic write as `MarketDataService.download` (the shared functions of
  `agent.market.service` and `agent.market.fetch`); only the driver is asynchronous.
- At most `concurrency` symbols are fetched at once (`Settings.exchange.concurrency`), hence at most that
  many requests in flight.
- `download_symbols(settings, ...)` is the configured entry point: the async client from
  `make_exchange(settings, asynchronous=True)`, the settings' retry policy and `exchange.concurrency`.
- The exchange is always closed (`await exchange.close()` in `finally`), whatever fails.
- A symbol that fails does not stop the others: its entry in the result is the `TradegraphError` (its
  file untouched). A failure shared by all symbols (markets or the exchange clock unavailable) raises.
  Anything that is not a `TradegraphError` is a bug and propagates after the exchange is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd

from agent.config import Settings
from agent.errors import TradegraphError
from agent.market import retry
from agent.market.candles import timeframe_ms
from agent.market.exchange import make_exchange
from agent.market.fetch import Row, afetch_range
from agent.market.retry import RetryPolicy
from agent.market.service import DownloadReport, finish_download, plan_download, to_ms
from agent.market.store import CandleStore


async def download_many(
    exchange: Any,
    store: CandleStore,
    symbols: list[str],
    timeframe: str,
    policy: RetryPolicy,
    concurrency: int,
    since: str | pd.Timestamp | None = None,
    until: str | pd.Timestamp | None = None,
) -> dict[str, DownloadReport | TradegraphError]:
    """Download `symbols` concurrently into `store`; closes `exchange` (see the module contract)."""
    try:
        timeframe_ms(timeframe)
        await retry.acall(policy, f"{exchange.id} load_markets", exchange.load_markets)
        now_ms = int(await retry.acall(policy, f"{exchange.id} fetch_time", exchange.fetch_time))
        gate = asyncio.Semaphore(concurrency)

        async def one(symbol: str) -> DownloadReport:
            async with gate:
                return await _download_one(exchange, store, symbol, timeframe, policy, now_ms, since, until)

        outcomes = await asyncio.gather(*(one(s) for s in symbols), return_exceptions=True)
    finally:
        await exchange.close()
    results: dict[str, DownloadReport | TradegraphError] = {}
    for symbol, outcome in zip(symbols, outcomes, strict=True):
        if isinstance(outcome, (DownloadReport, TradegraphError)):
            results[symbol] = outcome
        else:
            raise outcome
    return results


async def download_symbols(
    settings: Settings,
    symbols: list[str] | None = None,
    timeframe: str | None = None,
    since: str | pd.Timestamp | None = None,
    until: str | pd.Timestamp | None = None,
    policy: RetryPolicy | None = None,
) -> dict[str, DownloadReport | TradegraphError]:
    """`download_many` as configured: symbols, timeframe, exchange, retries and concurrency from settings."""
    return await download_many(
        make_exchange(settings, asynchronous=True),
        CandleStore(settings.data_dir),
        symbols or settings.symbols,
        timeframe or settings.timeframe,
        policy or RetryPolicy.from_settings(settings.exchange),
        settings.exchange.concurrency,
        since,
        until,
    )


async def _download_one(
    exchange: Any,
    store: CandleStore,
    symbol: str,
    timeframe: str,
    policy: RetryPolicy,
    now_ms: int,
    since: str | pd.Timestamp | None,
    until: str | pd.Timestamp | None,
) -> DownloadReport:
    retry.call(policy, f"{exchange.id} market {symbol}", exchange.market, symbol)
    plan = plan_download(
        store.read(exchange.id, symbol, timeframe), symbol, timeframe, to_ms(since), to_ms(until), now_ms
    )
    rows: list[Row] = []
    pages = 0

    def count(_: int) -> None:
        nonlocal pages
        pages += 1

    for start, end in plan.ranges:
        rows += await afetch_range(exchange, symbol, timeframe, start, end, policy, count)
    return finish_download(store, exchange.id, plan, rows, pages)
