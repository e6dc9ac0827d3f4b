"""Market-data service: download candles through an exchange client into the store, incrementally.

The same service runs over ccxt (live) and over `ReplayExchange` (offline); `agent.market.async_fetch`
runs the same plan/finish steps for many symbols concurrently.

Contracts:
- Markets (fees, precision, limits) come from `load_markets`; an unknown symbol is an `ExchangeError`
  before any candle is requested.
- Incremental: with candles already stored only bars after the last stored one are fetched (plus, if
  `since` is earlier than the first stored bar, the bars before it). With nothing stored `since` is
  required (`ConfigError`).
- The still-open candle is never stored: a bar is kept only if open time + timeframe <= the exchange's
  clock (`fetch_time()`, the simulated now for replay and emulator; the local clock if the exchange has
  no time endpoint). `until` (exclusive) caps the range further.
- Before writing, the merged candles are de-duplicated and validated (`agent.market.validate`); invalid
  candles raise `DataError` and nothing is written. The file is written (atomically) only after the whole
  fetch succeeded, so any failure leaves the stored file exactly as it was.
- The returned `DownloadReport` lists requests, new bars, totals and the gaps (exact spans) of the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from agent.errors import ConfigError, DataError
from agent.market import retry
from agent.market.candles import bar_open_ms, timeframe_ms, utc_timestamp
from agent.market.exchange import MarketRules, market_rules
from agent.market.fetch import Row, fetch_range, rows_to_frame
from agent.market.retry import RetryPolicy
from agent.market.store import CandleStore
from agent.market.validate import Gap, check_candles, drop_duplicates


@dataclass(frozen=True)
class DownloadReport:
    """The outcome of one symbol's download."""

    exchange: str
    symbol: str
    timeframe: str
    path: Path
    requests: int
    new_bars: int
    rows: int
    first: pd.Timestamp
    last: pd.Timestamp
    gaps: tuple[Gap, ...]


@dataclass(frozen=True)
class DownloadPlan:
    """What to fetch for one symbol: the stored candles and the [start, end) ranges still missing."""

    symbol: str
    timeframe: str
    now_ms: int
    existing: pd.DataFrame | None
    ranges: tuple[tuple[int, int], ...]

    @property
    def expected_bars(self) -> int:
        """Upper bound of the bars the ranges can hold (for progress bars)."""
        tf = timeframe_ms(self.timeframe)
        return sum(max(0, (end - start) // tf) for start, end in self.ranges)


def to_ms(value: str | pd.Timestamp | None) -> int | None:
    """A date (UTC) as ms since the epoch; None stays None."""
    return None if value is None else int(utc_timestamp(value).value // 1_000_000)


def plan_download(
    existing: pd.DataFrame | None,
    symbol: str,
    timeframe: str,
    since_ms: int | None,
    until_ms: int | None,
    now_ms: int,
) -> DownloadPlan:
    """The ranges to fetch so that the store holds every closed bar from `since` to `until` (pure)."""
    tf = timeframe_ms(timeframe)
    end = bar_open_ms(now_ms, timeframe)  # open time of the bar still open at now: every earlier one closed
    if until_ms is not None:
        end = min(end, until_ms)
    if since_ms is not None and until_ms is not None and since_ms >= until_ms:
        raise ConfigError(f"--since must be before --until (got {_iso(since_ms)} and {_iso(until_ms)})")
    ranges: list[tuple[int, int]] = []
    if existing is None or existing.empty:
        if since_ms is None:
            raise ConfigError(f"nothing stored yet for {symbol} {timeframe}: give a start date with --since")
        ranges.append((since_ms, end))
    else:
        first = int(existing.index[0].value // 1_000_000)
        last = int(existing.index[-1].value // 1_000_000)
        if since_ms is not None and since_ms < first:
            ranges.append((since_ms, min(first, end)))
        ranges.append((last + tf, end))
    kept = tuple((s, e) for s, e in ranges if s < e)
    return DownloadPlan(symbol, timeframe, now_ms, existing, kept)


def finish_download(
    store: CandleStore, exchange_id: str, plan: DownloadPlan, rows: list[Row], requests: int
) -> DownloadReport:
    """Merge fetched rows into the stored candles, validate, write once; the report (see contract)."""
    tf = pd.Timedelta(milliseconds=timeframe_ms(plan.timeframe))
    now = pd.Timestamp(plan.now_ms, unit="ms", tz="UTC")
    fresh = rows_to_frame(rows)
    fresh = fresh[pd.DatetimeIndex(fresh.index) + tf <= now]  # never the still-open candle
    parts = [f for f in (plan.existing, fresh) if f is not None and not f.empty]
    if not parts:
        window = " to ".join(_iso(x) for x in plan.ranges[0]) if plan.ranges else "the requested window"
        what = f"closed {plan.timeframe} candles for {plan.symbol}"
        raise DataError(f"{exchange_id} returned no {what} ({window}); nothing stored")
    merged = drop_duplicates(pd.concat(parts)) if len(parts) > 1 else parts[0]
    report = check_candles(merged, plan.timeframe)
    if not report.usable:
        raise DataError(
            f"{exchange_id} {plan.symbol} {plan.timeframe}: candles fail validation "
            f"({'; '.join(report.problems)}); nothing stored"
        )
    path = store.path(exchange_id, plan.symbol, plan.timeframe)
    new_bars = len(merged) - (0 if plan.existing is None else len(plan.existing))
    if new_bars > 0 or not path.exists():
        store.write(exchange_id, plan.symbol, plan.timeframe, merged)
    return DownloadReport(
        exchange=exchange_id,
        symbol=plan.symbol,
        timeframe=plan.timeframe,
        path=path,
        requests=requests,
        new_bars=new_bars,
        rows=len(merged),
        first=merged.index[0],
        last=merged.index[-1],
        gaps=report.gaps,
    )


class MarketDataService:
    """Downloads and updates stored candles through one exchange client."""

    def __init__(self, exchange: Any, store: CandleStore, policy: RetryPolicy) -> None:
        self.exchange = exchange
        self.store = store
        self.policy = policy

    def load_markets(self) -> dict[str, Any]:
        """The exchange's markets (fees, precision, limits), loaded once, with retries."""
        return retry.call(self.policy, f"{self.exchange.id} load_markets", self.exchange.load_markets)

    def market(self, symbol: str) -> dict[str, Any]:
        """The loaded market for `symbol`; `ExchangeError` if the exchange does not list it."""
        self.load_markets()
        return retry.call(self.policy, f"{self.exchange.id} market {symbol}", self.exchange.market, symbol)

    def rules(
        self, symbol: str, taker_fee: float | None = None, maker_fee: float | None = None
    ) -> MarketRules:
        """`symbol`'s trading rules (settings' fees override the market's when given)."""
        mode = getattr(self.exchange, "precisionMode", 4)
        return market_rules(self.market(symbol), mode, taker_fee, maker_fee)

    def exchange_now(self) -> int:
        """The exchange's clock in ms (its time endpoint when it has one)."""
        if (getattr(self.exchange, "has", None) or {}).get("fetchTime"):
            return int(retry.call(self.policy, f"{self.exchange.id} fetch_time", self.exchange.fetch_time))
        return int(self.exchange.milliseconds())

    def download(
        self,
        symbol: str,
        timeframe: str,
        since: str | pd.Timestamp | None = None,
        until: str | pd.Timestamp | None = None,
        on_page: Callable[[int], None] | None = None,
        on_plan: Callable[[DownloadPlan], None] | None = None,
    ) -> DownloadReport:
        """Fetch what is missing for `symbol` and store it (see the module contract)."""
        timeframe_ms(timeframe)
        since_ms, until_ms = to_ms(since), to_ms(until)
        self.market(symbol)
        plan = plan_download(
            self.store.read(self.exchange.id, symbol, timeframe),
            symbol,
            timeframe,
            since_ms,
            until_ms,
            self.exchange_now(),
        )
        if on_plan is not None:
            on_plan(plan)
        requests = 0

        def count_page(n: int) -> None:
            nonlocal requests
            requests += 1
            if on_page is not None:
                on_page(n)

        rows: list[Row] = []
        for start, end in plan.ranges:
            rows += fetch_range(self.exchange, symbol, timeframe, start, end, self.policy, count_page)
        return finish_download(self.store, self.exchange.id, plan, rows, requests)


def _iso(ms: int) -> str:
    return f"{pd.Timestamp(ms, unit='ms', tz='UTC'):%Y-%m-%d %H:%M}"
