"""`make_exchange` (ccxt configuration, URL redirection, spot only) and `market_rules`."""

from __future__ import annotations

import asyncio

import ccxt
import ccxt.async_support
import pytest

from agent.config import load_settings
from agent.errors import ConfigError, DataError
from agent.market.binance_spot import unified_market
from agent.market.exchange import MarketRules, make_exchange, market_rules, redirect_urls
from agent.market.replay import AsyncReplayExchange, ReplayExchange


def test_binance_is_configured_from_the_settings():
    settings = load_settings(exchange={"id": "binance", "timeout_ms": 1234, "api_key": "K", "secret": "S"})
    ex = make_exchange(settings)
    assert isinstance(ex, ccxt.binance)
    assert ex.enableRateLimit is True and ex.timeout == 1234
    assert (ex.apiKey, ex.secret) == ("K", "S")
    assert ex.options["defaultType"] == "spot"
    assert ex.options["fetchMarkets"]["types"] == ["spot"]
    assert ex.urls["api"]["public"] == "https://api.binance.com/api/v3"


def test_no_credentials_are_set_when_none_are_configured():
    ex = make_exchange(load_settings(exchange={"id": "kraken"}))
    assert isinstance(ex, ccxt.kraken) and not ex.apiKey and not ex.secret


def test_api_url_replaces_the_host_of_every_api_url():
    ex = make_exchange(load_settings(exchange={"id": "binance", "api_url": "http://127.0.0.1:9"}))
    urls = ex.urls["api"]
    assert urls["public"] == "http://127.0.0.1:9/api/v3" and urls["sapi"] == "http://127.0.0.1:9/sapi/v1"
    assert urls["fapiPublic"] == "http://127.0.0.1:9/fapi/v1"
    assert all(url.startswith("http://127.0.0.1:9/") for url in urls.values())


def test_redirect_keeps_paths_nests_and_rejects_bad_urls():
    nested = {"rest": {"public": "https://api.x.com/v1?a=1"}, "n": None}
    assert redirect_urls(nested, "http://proxy:8080/x/") == {
        "rest": {"public": "http://proxy:8080/x/v1?a=1"},
        "n": None,
    }
    with pytest.raises(ConfigError, match="api_url"):
        redirect_urls("https://api.x.com/v1", "localhost:9000")


def test_async_variant_and_replay_and_unknown_ids(tmp_path):
    ex = make_exchange(load_settings(exchange={"id": "binance"}), asynchronous=True)
    assert isinstance(ex, ccxt.async_support.binance)
    asyncio.run(ex.close())
    assert isinstance(make_exchange(load_settings(data_dir=tmp_path)), ReplayExchange)
    assert isinstance(make_exchange(load_settings(data_dir=tmp_path), asynchronous=True), AsyncReplayExchange)
    with pytest.raises(ConfigError, match="unknown exchange id 'nope'"):
        make_exchange(load_settings(exchange={"id": "nope"}))


def test_market_rules_from_a_tick_size_market():
    rules = market_rules(unified_market("ETH/USDT"))
    assert rules == MarketRules("ETH/USDT", 0.0001, 0.0001, 5.0, 0.001, 0.001, 0.01)


def test_market_rules_convert_decimal_places_and_accept_fee_overrides():
    market = {
        "symbol": "A/B",
        "precision": {"amount": 3, "price": 2},
        "limits": {},
        "taker": 0.002,
        "maker": None,
    }
    rules = market_rules(market, precision_mode=2, maker_fee=0.0005)
    assert (rules.amount_step, rules.price_step) == pytest.approx((0.001, 0.01))
    assert (rules.min_amount, rules.min_notional, rules.taker_fee, rules.maker_fee) == (
        0.0,
        0.0,
        0.002,
        0.0005,
    )


def test_market_rules_refuse_a_market_without_fees():
    with pytest.raises(DataError, match="A/B states no trading fee"):
        market_rules({"symbol": "A/B", "precision": {}, "limits": {}})
