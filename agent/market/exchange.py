"""Building the exchange client from settings, and reading a symbol's trading rules from its market.

Contracts:
- `make_exchange(settings)` returns the offline `ReplayExchange` when `settings.exchange.id == "replay"`,
  else a ccxt instance (`asynchronous=True`: from `ccxt.async_support`) configured with
  `enableRateLimit`, `timeout = settings.exchange.timeout_ms`, the credentials from settings (passed to
  ccxt only, never logged or printed), `options['defaultType'] = 'spot'` and, where the exchange has a
  `fetchMarkets` type list (binance, bybit, okx, ...), spot markets only.
- `settings.exchange.api_url` (emulators, proxies) replaces the scheme and host of every URL in
  `urls['api']`, keeping each URL's path: with `http://127.0.0.1:9000`, binance's
  `https://api.binance.com/api/v3` becomes `http://127.0.0.1:9000/api/v3`. A path in `api_url` is
  prepended (`http://proxy/binance` → `http://proxy/binance/api/v3`).
- The ccxt instance refuses malformed bodies: a 2xx answer whose body ccxt cannot decode raises
  `ccxt.BadResponse` (ccxt itself would hand the raw text to the parser, which silently yields nothing).
- An unknown exchange id raises `ConfigError`.
- `market_rules(market)` reads amount step, minimum amount, minimum notional and fees from a loaded ccxt
  market into a frozen `MarketRules`; fees missing from the market must come from the caller
  (`Settings.broker.taker_fee`/`maker_fee`), else `DataError` — never a silent default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from agent.errors import ConfigError, DataError

if TYPE_CHECKING:
    from agent.config import Settings

TICK_SIZE = 4
"""ccxt's precision mode in which `precision.amount` is a step size (ccxt.base.decimal_to_precision)."""


@dataclass(frozen=True)
class MarketRules:
    """A spot symbol's trading rules, as the paper broker and the backtest engine apply them."""

    symbol: str
    amount_step: float
    min_amount: float
    min_notional: float
    taker_fee: float
    maker_fee: float
    price_step: float = 0.0


def make_exchange(settings: Settings, *, asynchronous: bool = False) -> Any:
    """The exchange client the settings ask for (see the module contract)."""
    exchange_id = settings.exchange.id
    if exchange_id == "replay":
        from agent.market.replay import AsyncReplayExchange, ReplayExchange

        replay = ReplayExchange(settings.data_dir)
        return AsyncReplayExchange(replay) if asynchronous else replay
    if asynchronous:
        import ccxt.async_support as ccxt_module
    else:
        import ccxt as ccxt_module
    if exchange_id not in getattr(ccxt_module, "exchanges", []):
        raise ConfigError(f"unknown exchange id {exchange_id!r}; use 'replay' or a ccxt id such as 'binance'")
    base_cls = getattr(ccxt_module, exchange_id)
    strict_cls = type(f"Strict{base_cls.__name__}", (_StrictResponses, base_cls), {})
    exchange = strict_cls(_ccxt_config(settings))
    fetch_markets = exchange.options.get("fetchMarkets")
    if isinstance(fetch_markets, dict) and "types" in fetch_markets:
        exchange.options["fetchMarkets"] = {**fetch_markets, "types": ["spot"]}
    if settings.exchange.api_url:
        exchange.urls["api"] = redirect_urls(exchange.urls["api"], settings.exchange.api_url)
    return exchange


def _ccxt_config(settings: Settings) -> dict[str, Any]:
    ex = settings.exchange
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": ex.timeout_ms,
        "options": {"defaultType": "spot"},
    }
    for key, secret in (("apiKey", ex.api_key), ("secret", ex.secret), ("password", ex.password)):
        if secret is not None and secret.get_secret_value():
            config[key] = secret.get_secret_value()
    return config


def redirect_urls(urls: Any, api_url: str) -> Any:
    """`urls` (a URL string or a nested dict of them) with scheme and host replaced by `api_url`'s."""
    if isinstance(urls, dict):
        return {key: redirect_urls(value, api_url) for key, value in urls.items()}
    if not isinstance(urls, str):
        return urls
    target = urlsplit(api_url)
    if not target.scheme or not target.netloc:
        raise ConfigError(f"invalid exchange.api_url {api_url!r}; use e.g. http://127.0.0.1:9000")
    original = urlsplit(urls)
    path = target.path.rstrip("/") + original.path
    return urlunsplit((target.scheme, target.netloc, path, original.query, original.fragment))


class _StrictResponses:
    """Mixin for ccxt classes: a 2xx body that is not valid JSON is an error, not an empty result."""

    id: str

    def handle_errors(
        self,
        code: int,
        reason: str,
        url: str,
        method: str,
        headers: dict[str, Any],
        body: str,
        response: object,
        request_headers: object,
        request_body: object,
    ) -> Any:
        if 200 <= code < 300 and response is None and body:
            import ccxt

            snippet = " ".join(str(body)[:60].split())
            where = f"{self.id} {method} {urlsplit(url).path}"
            raise ccxt.BadResponse(f"{where}: malformed response body {snippet!r}")
        return super().handle_errors(  # type: ignore[misc]
            code, reason, url, method, headers, body, response, request_headers, request_body
        )


def market_rules(
    market: dict[str, Any],
    precision_mode: int = TICK_SIZE,
    taker_fee: float | None = None,
    maker_fee: float | None = None,
) -> MarketRules:
    """Trading rules from a loaded ccxt market; `taker_fee`/`maker_fee` override the market's fees."""
    symbol = str(market.get("symbol"))
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    taker = taker_fee if taker_fee is not None else market.get("taker")
    maker = maker_fee if maker_fee is not None else market.get("maker")
    if taker is None or maker is None:
        raise DataError(f"market {symbol} states no trading fee; set broker.taker_fee and broker.maker_fee")
    return MarketRules(
        symbol=symbol,
        amount_step=_step(precision.get("amount"), precision_mode),
        min_amount=float((limits.get("amount") or {}).get("min") or 0.0),
        min_notional=float((limits.get("cost") or {}).get("min") or 0.0),
        taker_fee=float(taker),
        maker_fee=float(maker),
        price_step=_step(precision.get("price"), precision_mode),
    )


def _step(value: float | None, precision_mode: int) -> float:
    """A precision as a step size: 0 = none stated; decimal places are converted (2 → 0.01)."""
    if value is None:
        return 0.0
    return float(value) if precision_mode == TICK_SIZE else 10.0 ** -float(value)
