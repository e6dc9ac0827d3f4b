"""The offline replay exchange: Binance-like markets, a settable clock, point-in-time candles."""

from __future__ import annotations

import ccxt
import pandas as pd
import pytest

from agent.config import DEFAULT_DATA_DIR, load_settings
from agent.errors import ExchangeError
from agent.market.candles import read_feather
from agent.market.exchange import make_exchange, market_rules
from agent.market.protocol import ExchangeClient
from agent.market.replay import ReplayExchange
from agent.market.retry import RetryPolicy
from agent.market.service import MarketDataService
from agent.market.store import CandleStore
from tests.market.helpers import HOUR_MS, ms

BUNDLED = read_feather(DEFAULT_DATA_DIR / "binance" / "BTC_USDT-1h.feather")


def test_markets_are_the_bundled_symbols_with_binance_spot_rules():
    replay = ReplayExchange(DEFAULT_DATA_DIR)
    markets = replay.load_markets()
    assert sorted(markets) == ["BNB/USDT", "BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
    btc = market_rules(replay.market("BTC/USDT"), replay.precisionMode)
    assert (btc.amount_step, btc.min_amount, btc.min_notional) == (0.00001, 0.00001, 5.0)
    assert (btc.taker_fee, btc.maker_fee, btc.price_step) == (0.001, 0.001, 0.01)
    assert market_rules(replay.market("XRP/USDT")).amount_step == 0.1
    with pytest.raises(ccxt.BadSymbol):
        replay.market("DOGE/USDT")


def test_nothing_at_or_after_now_and_never_the_open_bar():
    replay = ReplayExchange(DEFAULT_DATA_DIR)
    bar = BUNDLED.index[5000]
    replay.set_now(ms(bar) + HOUR_MS // 2)  # bar 5000 is open
    rows = replay.fetch_ohlcv("BTC/USDT", "1h", since=ms(BUNDLED.index[4500]), limit=1000)
    assert len(rows) == 500 and rows[-1][0] == ms(BUNDLED.index[4999])
    assert rows[0] == [ms(BUNDLED.index[4500]), *BUNDLED.iloc[4500].tolist()]
    replay.set_now(ms(bar) + HOUR_MS)  # now it closed
    assert replay.fetch_ohlcv("BTC/USDT", "1h", since=ms(bar))[0][0] == ms(bar)
    assert replay.fetch_ohlcv("BTC/USDT", "1h", since=ms(bar) + HOUR_MS) == []


def test_paging_follows_binance():
    replay = ReplayExchange(DEFAULT_DATA_DIR)
    latest = replay.fetch_ohlcv("BTC/USDT", "1h")
    assert len(latest) == 500 and latest[-1][0] == ms(BUNDLED.index[-1])
    assert len(replay.fetch_ohlcv("BTC/USDT", "1h", since=0, limit=5000)) == 1000
    assert replay.fetch_ohlcv("BTC/USDT", "1h", since=0, limit=3)[0][0] == ms(BUNDLED.index[0])
    assert replay.milliseconds() == ms(BUNDLED.index[-1]) + HOUR_MS  # default clock: end of the data
    with pytest.raises(ccxt.BadRequest):
        replay.fetch_ohlcv("BTC/USDT", "1m")  # nothing as short as 1m to build it from


def test_ticker_is_the_last_closed_bar():
    replay = ReplayExchange(DEFAULT_DATA_DIR)
    now = ms(BUNDLED.index[3000]) + 10
    replay.set_now(now)
    ticker = replay.fetch_ticker("BTC/USDT")
    day = BUNDLED.iloc[2976:3000]
    assert ticker["last"] == BUNDLED["close"].iloc[2999] and ticker["timestamp"] == now
    assert ticker["high"] == day["high"].max() and ticker["open"] == day["open"].iloc[0]


def test_frames_can_be_injected():
    frame = BUNDLED.iloc[:10]
    replay = ReplayExchange("no-such-dir", frames={("ETH/USDT", "1h"): frame})
    assert "ETH/USDT" in replay.load_markets() and "BTC/USDT" in replay.load_markets()  # sample: fallback
    assert len(replay.fetch_ohlcv("ETH/USDT", "1h", since=0)) == 10  # the injected frame wins


def test_the_service_runs_unchanged_over_replay(tmp_path):
    settings = load_settings(data_dir=tmp_path)  # an empty data_dir: replay serves the bundled sample
    replay = make_exchange(settings)
    assert isinstance(replay, ReplayExchange)
    now = ms(BUNDLED.index[-2000])
    replay.set_now(now)
    service = MarketDataService(replay, CandleStore(tmp_path), RetryPolicy(max_retries=0))

    report = service.download("BTC/USDT", "1h", since=BUNDLED.index[0])

    stored = read_feather(report.path)
    assert report.path == tmp_path / "store" / "replay" / "BTC_USDT-1h.feather"
    pd.testing.assert_frame_equal(stored, BUNDLED.iloc[:-2000])
    assert report.requests == 7
    replay.set_now(now + 24 * HOUR_MS)
    assert service.download("BTC/USDT", "1h").new_bars == 24
    pd.testing.assert_frame_equal(read_feather(report.path), BUNDLED.iloc[:-1976])
    with pytest.raises(ExchangeError, match="BadSymbol"):
        service.download("DOGE/USDT", "1h", since="2025-01-01")


def test_replay_and_ccxt_both_satisfy_the_exchange_protocol():
    assert isinstance(ReplayExchange(DEFAULT_DATA_DIR), ExchangeClient)
    assert isinstance(make_exchange(load_settings(exchange={"id": "binance"})), ExchangeClient)
