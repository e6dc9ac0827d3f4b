"""The exchange seam: the duck-typed subset of ccxt's `Exchange` that tradegraph's market code calls.

A ccxt instance (`ccxt.binance(...)`) satisfies `ExchangeClient` as is; `agent.market.replay.ReplayExchange`
is the offline implementation and the test fake. The concurrent downloader (`agent.market.async_fetch`)
calls the coroutine twins of the same methods on `ccxt.async_support` instances.

Contracts shared by every implementation:
- `fetch_ohlcv` returns rows `[open_time_ms, open, high, low, close, volume]`, ascending, starting at the
  first bar with open time >= `since`, at most `limit` rows. It may include the still-open last bar; the
  caller drops it using the exchange clock (`fetch_time()`).
- Failures are raised as ccxt exceptions (`ccxt.NetworkError` family = retryable, `ccxt.BaseError` = not);
  `agent.market.retry` translates them.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ExchangeClient(Protocol):
    """Synchronous market-data access (ccxt's `Exchange` or the replay exchange)."""

    id: str
    markets: dict[str, Any] | None

    def load_markets(self, reload: bool = False) -> dict[str, Any]:
        """Markets keyed by unified symbol (ccxt's market structure)."""
        ...

    def market(self, symbol: str) -> dict[str, Any]:
        """One loaded market; raises `ccxt.BadSymbol` for an unknown symbol."""
        ...

    def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[list[float]]:
        """Candles from `since` on (see the module contract)."""
        ...

    def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        """ccxt's ticker structure (`last`, `timestamp`, ...)."""
        ...

    def fetch_time(self) -> int:
        """The exchange's clock in ms (the simulated now for replay and emulator)."""
        ...

    def milliseconds(self) -> int:
        """The client's clock in ms."""
        ...
