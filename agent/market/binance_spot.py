"""Binance spot reference data for the bundled symbols, and Binance's REST wire format for it.

The offline replay exchange builds its ccxt-style markets from this table; the test exchange emulator
answers `/api/v3/exchangeInfo`, `/api/v3/klines` and `/api/v3/ticker/24hr` with the payload builders
below, so replay, emulator and the real exchange describe the same markets.

Contracts:
- Values are Binance's spot filters (PRICE_FILTER tick size, LOT_SIZE step/min/max, NOTIONAL minimum of
  5 USDT) as strings, exactly as Binance sends them; fees are the standard spot tier (0.1% taker and maker).
- Payloads follow Binance's spot REST API (numbers as decimal strings that parse back to the exact
  float, times in ms); `kline` is one row of `/api/v3/klines` (12 fields).
- `unified_market(symbol)` returns the subset of ccxt's unified market structure that tradegraph reads
  (`id, symbol, base, quote, type, spot, active, taker, maker, precision, limits`), with ccxt's TICK_SIZE
  precision mode (precision = step size, not a number of decimals).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TAKER_FEE = 0.001
MAKER_FEE = 0.001
MIN_NOTIONAL = "5.00000000"


@dataclass(frozen=True)
class SpotSymbol:
    """One Binance spot pair's filters (decimal strings)."""

    base: str
    quote: str
    tick_size: str
    step_size: str
    min_qty: str
    max_qty: str
    min_notional: str = MIN_NOTIONAL
    min_price: str = "0.01000000"
    max_price: str = "1000000.00000000"

    @property
    def market_id(self) -> str:
        """Binance's id for the pair, e.g. `BTCUSDT`."""
        return f"{self.base}{self.quote}"

    @property
    def symbol(self) -> str:
        """ccxt's unified symbol, e.g. `BTC/USDT`."""
        return f"{self.base}/{self.quote}"


SPOT_SYMBOLS: dict[str, SpotSymbol] = {
    s.symbol: s
    for s in (
        SpotSymbol("BTC", "USDT", "0.01000000", "0.00001000", "0.00001000", "9000.00000000"),
        SpotSymbol("ETH", "USDT", "0.01000000", "0.00010000", "0.00010000", "9000.00000000"),
        SpotSymbol("SOL", "USDT", "0.01000000", "0.00100000", "0.00100000", "9000000.00000000"),
        SpotSymbol("BNB", "USDT", "0.01000000", "0.00100000", "0.00100000", "9000.00000000"),
        SpotSymbol(
            "XRP",
            "USDT",
            "0.00010000",
            "0.10000000",
            "0.10000000",
            "9222449.00000000",
            "5.00000000",
            "0.00010000",
            "1000.00000000",
        ),
        SpotSymbol("LTC", "USDT", "0.01000000", "0.00100000", "0.00100000", "90000.00000000"),
    )
}
"""The bundled symbols (plus LTC/USDT, which ccxt's recorded fixtures use), keyed by unified symbol."""


def unified_market(symbol: str) -> dict[str, Any]:
    """The ccxt-style market dict for one of `SPOT_SYMBOLS` (KeyError for any other symbol)."""
    s = SPOT_SYMBOLS[symbol]
    return {
        "id": s.market_id,
        "symbol": s.symbol,
        "base": s.base,
        "quote": s.quote,
        "baseId": s.base,
        "quoteId": s.quote,
        "type": "spot",
        "spot": True,
        "margin": False,
        "swap": False,
        "future": False,
        "option": False,
        "contract": False,
        "active": True,
        "taker": TAKER_FEE,
        "maker": MAKER_FEE,
        "precision": {"amount": float(s.step_size), "price": float(s.tick_size)},
        "limits": {
            "amount": {"min": float(s.min_qty), "max": float(s.max_qty)},
            "price": {"min": float(s.min_price), "max": float(s.max_price)},
            "cost": {"min": float(s.min_notional), "max": None},
        },
        "info": {},
    }


# ---- Binance's wire format --------------------------------------------------------------------------------


def decimal(x: float) -> str:
    """A float as Binance-style decimal text (no exponent) that parses back to exactly the same float."""
    return str(np.format_float_positional(float(x), trim="-"))


def kline(ts: int, tf_ms: int, o: float, h: float, low: float, c: float, v: float) -> list[Any]:
    """One `/api/v3/klines` row: open time, OHLCV, close time, quote volume, trades, taker volumes."""
    return [
        ts,
        decimal(o),
        decimal(h),
        decimal(low),
        decimal(c),
        decimal(v),
        ts + tf_ms - 1,
        decimal(c * v),
        1000,
        decimal(v / 2),
        decimal(c * v / 2),
        "0",
    ]


def ticker_24hr(s: SpotSymbol, day: list[list[Any]], now: int) -> dict[str, Any]:
    """`/api/v3/ticker/24hr` for one symbol from the klines rows of the last 24 hours (ascending)."""
    opened = now - 86_400_000
    if not day:
        return {"symbol": s.market_id, "lastPrice": None, "openTime": opened, "closeTime": now}
    first_open, last = float(day[0][1]), float(day[-1][4])
    volume = sum(float(r[5]) for r in day)
    quote_volume = sum(float(r[7]) for r in day)
    return {
        "symbol": s.market_id,
        "priceChange": decimal(last - first_open),
        "priceChangePercent": decimal(round((last / first_open - 1) * 100, 3)),
        "weightedAvgPrice": decimal(quote_volume / volume if volume else last),
        "prevClosePrice": decimal(first_open),
        "lastPrice": decimal(last),
        "lastQty": "0.01000000",
        "bidPrice": decimal(last - float(s.tick_size)),
        "bidQty": "1.00000000",
        "askPrice": decimal(last),
        "askQty": "1.00000000",
        "openPrice": decimal(first_open),
        "highPrice": decimal(max(float(r[2]) for r in day)),
        "lowPrice": decimal(min(float(r[3]) for r in day)),
        "volume": decimal(volume),
        "quoteVolume": decimal(quote_volume),
        "openTime": opened,
        "closeTime": now,
        "firstId": 1,
        "lastId": 1000,
        "count": 1000,
    }


def exchange_info(symbols: list[SpotSymbol], now: int) -> dict[str, Any]:
    """`/api/v3/exchangeInfo` listing `symbols`."""
    return {
        "timezone": "UTC",
        "serverTime": now,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        ],
        "exchangeFilters": [],
        "symbols": [exchange_info_entry(s) for s in symbols],
    }


def exchange_info_entry(s: SpotSymbol) -> dict[str, Any]:
    """One `symbols` entry of `/api/v3/exchangeInfo`: status, assets and the spot filters."""
    return {
        "symbol": s.market_id,
        "status": "TRADING",
        "baseAsset": s.base,
        "baseAssetPrecision": 8,
        "quoteAsset": s.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": s.min_price,
                "maxPrice": s.max_price,
                "tickSize": s.tick_size,
            },
            {"filterType": "LOT_SIZE", "minQty": s.min_qty, "maxQty": s.max_qty, "stepSize": s.step_size},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": s.max_qty,
                "stepSize": "0.00000000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": s.min_notional,
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }
