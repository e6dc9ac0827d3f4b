"""The market-data service over the real ccxt binance client and the exchange emulator."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from agent.errors import ConfigError, DataError, ExchangeError, TemporaryExchangeError
from agent.market.candles import read_feather
from agent.market.exchange import make_exchange
from agent.market.service import MarketDataService, plan_download
from agent.market.store import CandleStore
from agent.market.validate import find_gaps
from agent.testing.exchange_emulator import ExchangeEmulator, Fault
from tests.market.helpers import HOUR_MS, SleepRecorder, emulator_settings, instant_policy, ms, shared_candles

KLINES = "/api/v3/klines"
HOUR = pd.Timedelta(hours=1)


def source() -> pd.DataFrame:
    """Real BTC/USDT 1h candles, Feb–Oct 2021: ~6,500 bars including six of Binance's real gaps."""
    full = shared_candles("BTC/USDT")
    return full[(full.index >= "2021-02-01") & (full.index < "2021-11-01")]


def closed_at(frame: pd.DataFrame, now_ms: int) -> pd.DataFrame:
    """The bars of `frame` that are closed at `now_ms` (open + 1h <= now)."""
    return frame[frame.index + HOUR <= pd.Timestamp(now_ms, unit="ms", tz="UTC")]


def service_for(
    emu: ExchangeEmulator, data_dir: Path, sleeper: SleepRecorder | None = None, **exchange: object
) -> MarketDataService:
    settings = emulator_settings(emu, data_dir, **exchange)
    return MarketDataService(
        make_exchange(settings), CandleStore(data_dir), instant_policy(settings, sleeper)
    )


def test_download_pages_and_stores_the_source_exactly_then_updates_only_new_bars(emulator, tmp_path):
    src = source()
    now = ms(src.index[-300]) + HOUR_MS // 2  # mid-bar: bar -300 is still open
    emu = emulator({"BTC/USDT": src}, now_ms=now)
    service = service_for(emu, tmp_path)

    report = service.download("BTC/USDT", "1h", since=src.index[0])

    expected = closed_at(src, now)
    stored = read_feather(report.path)
    assert len(stored) >= 5000
    pd.testing.assert_frame_equal(stored, expected)
    assert stored.index[-1] == src.index[-301]  # the open bar was served but not stored
    pages = emu.count(KLINES)
    assert pages >= -(-len(expected) // 1000) and report.requests == pages
    assert emu.max_limit == 1000
    assert report.gaps == find_gaps(expected.index, "1h") and len(report.gaps) == 6

    grown = 37
    emu.set_now(now + grown * HOUR_MS)
    update = service.download("BTC/USDT", "1h")

    assert emu.count(KLINES) == pages + 1 and update.requests == 1
    assert emu.log[-1].params["startTime"] == str(ms(stored.index[-1]) + HOUR_MS)
    assert update.new_bars == grown
    pd.testing.assert_frame_equal(read_feather(report.path), closed_at(src, now + grown * HOUR_MS))


def test_update_with_nothing_new_neither_fetches_candles_nor_rewrites(emulator, tmp_path):
    src = source().iloc[:500]
    emu = emulator({"BTC/USDT": src}, now_ms=ms(src.index[-1]) + HOUR_MS)
    service = service_for(emu, tmp_path)
    report = service.download("BTC/USDT", "1h", since=src.index[0])
    stamp = report.path.stat().st_mtime_ns
    again = service.download("BTC/USDT", "1h")
    assert again.new_bars == 0 and again.requests == 0 and emu.count(KLINES) == report.requests
    assert report.path.stat().st_mtime_ns == stamp


def test_a_429_is_retried_with_backoff_and_the_download_succeeds(emulator, tmp_path):
    src = source().iloc[:300]
    emu = emulator({"BTC/USDT": src}, now_ms=ms(src.index[-1]) + HOUR_MS)
    sleeper = SleepRecorder()
    service = service_for(emu, tmp_path, sleeper)
    emu.push(KLINES, Fault.too_many_requests())

    report = service.download("BTC/USDT", "1h", since=src.index[0])

    assert emu.count(KLINES) == 2 and report.requests == 1
    assert sleeper.waits == [service.policy.delay(0)] == [0.375]
    pd.testing.assert_frame_equal(read_feather(report.path), src)


def test_server_errors_and_timeouts_are_retried(emulator, tmp_path):
    src = source().iloc[:300]
    emu = emulator({"BTC/USDT": src}, now_ms=ms(src.index[-1]) + HOUR_MS)
    sleeper = SleepRecorder()
    service = service_for(emu, tmp_path, sleeper, timeout_ms=300)
    emu.push(KLINES, Fault.server_error(503), Fault.slow(30))

    report = service.download("BTC/USDT", "1h", since=src.index[0])

    assert emu.count(KLINES) == 3 and len(sleeper.waits) == 2
    assert sleeper.waits[1] > sleeper.waits[0]  # exponential
    assert report.rows == len(src)


def test_five_consecutive_failures_raise_one_line_and_leave_the_file_unchanged(emulator, tmp_path):
    src = source().iloc[:400]
    now = ms(src.index[200])
    emu = emulator({"BTC/USDT": src}, now_ms=now)
    sleeper = SleepRecorder()
    service = service_for(emu, tmp_path, sleeper, max_retries=4)
    path = service.download("BTC/USDT", "1h", since=src.index[0]).path
    before, stamp = path.read_bytes(), path.stat().st_mtime_ns
    emu.set_now(now + 100 * HOUR_MS)
    emu.push(KLINES, *[Fault.too_many_requests()] * 5)
    pages = emu.count(KLINES)

    with pytest.raises(TemporaryExchangeError) as caught:
        service.download("BTC/USDT", "1h")

    message = str(caught.value)
    assert "\n" not in message and "after 5 attempts" in message and "DDoSProtection" in message
    assert emu.count(KLINES) == pages + 5
    assert sleeper.waits == [0.375, 0.75, 1.5, 3.0]
    assert path.read_bytes() == before and path.stat().st_mtime_ns == stamp


def test_an_unknown_symbol_fails_at_once_without_requesting_candles(emulator, tmp_path):
    emu = emulator({"BTC/USDT": source().iloc[:10]})
    service = service_for(emu, tmp_path)
    with pytest.raises(ExchangeError) as caught:
        service.download("DOGE/EUR", "1h", since="2021-02-01")
    assert not isinstance(caught.value, TemporaryExchangeError)
    assert "BadSymbol" in str(caught.value) and "\n" not in str(caught.value)
    assert emu.count(KLINES) == 0


def test_a_bad_symbol_answer_is_not_retried(emulator, tmp_path):
    emu = emulator({"BTC/USDT": source().iloc[:10]})
    sleeper = SleepRecorder()
    service = service_for(emu, tmp_path, sleeper)
    emu.push(KLINES, Fault.bad_symbol())
    with pytest.raises(ExchangeError) as caught:
        service.download("BTC/USDT", "1h", since="2021-02-01")
    assert not isinstance(caught.value, TemporaryExchangeError)
    assert str(caught.value).startswith("binance fetch_ohlcv BTC/USDT 1h failed: BadSymbol:")
    assert emu.count(KLINES) == 1 and sleeper.waits == []
    assert not service.store.path("binance", "BTC/USDT", "1h").exists()


def test_a_malformed_body_is_an_error_not_an_empty_answer(emulator, tmp_path):
    src = source().iloc[:300]
    emu = emulator({"BTC/USDT": src}, now_ms=ms(src.index[100]))
    service = service_for(emu, tmp_path)
    path = service.download("BTC/USDT", "1h", since=src.index[0]).path
    before = path.read_bytes()
    emu.set_now(ms(src.index[-1]))
    emu.push(KLINES, Fault.malformed())
    with pytest.raises(ExchangeError, match="BadResponse: .*malformed response body"):
        service.download("BTC/USDT", "1h")
    assert path.read_bytes() == before


def test_candles_failing_ohlc_sanity_are_rejected_and_nothing_is_stored(emulator, tmp_path):
    src = source().iloc[:50].copy()
    src.iloc[10, src.columns.get_loc("high")] = src["low"].iloc[10] - 1.0
    emu = emulator({"BTC/USDT": src}, now_ms=ms(src.index[-1]) + HOUR_MS)
    service = service_for(emu, tmp_path)
    with pytest.raises(DataError, match=r"high < max\(open, close\).*nothing stored"):
        service.download("BTC/USDT", "1h", since=src.index[0])
    assert not service.store.path("binance", "BTC/USDT", "1h").exists()


def test_market_rules_come_from_load_markets(emulator, tmp_path):
    emu = emulator({"BTC/USDT": source().iloc[:10]})
    rules = service_for(emu, tmp_path).rules("XRP/USDT")
    assert (rules.amount_step, rules.min_amount, rules.min_notional) == (0.1, 0.1, 5.0)
    assert (rules.taker_fee, rules.maker_fee, rules.price_step) == (0.001, 0.001, 0.0001)


# ---- the download plan (pure) ----------------------------------------------------------------------------


def test_plan_fetches_before_the_first_and_after_the_last_stored_bar():
    stored = source().iloc[100:200]
    first, last = ms(stored.index[0]), ms(stored.index[-1])
    now = last + 10 * HOUR_MS + 5
    plan = plan_download(stored, "BTC/USDT", "1h", first - 50 * HOUR_MS, None, now)
    assert plan.ranges == ((first - 50 * HOUR_MS, first), (last + HOUR_MS, last + 10 * HOUR_MS))
    assert plan.expected_bars == 50 + 9


def test_plan_needs_a_start_when_nothing_is_stored_and_a_sane_window():
    with pytest.raises(ConfigError, match="--since"):
        plan_download(None, "BTC/USDT", "1h", None, None, 10 * HOUR_MS)
    with pytest.raises(ConfigError, match="before --until"):
        plan_download(None, "BTC/USDT", "1h", 5 * HOUR_MS, 5 * HOUR_MS, 10 * HOUR_MS)
    assert plan_download(None, "BTC/USDT", "1h", 0, 3 * HOUR_MS, 10 * HOUR_MS).ranges == ((0, 3 * HOUR_MS),)


def test_tickers_and_time_through_the_real_client(emulator, tmp_path):
    btc, eth = source().iloc[:100], shared_candles("ETH/USDT").iloc[:100]
    now = ms(btc.index[50]) + HOUR_MS // 2  # bar 50 is open: only its open price is known
    emu = emulator({"BTC/USDT": btc, "ETH/USDT": eth}, now_ms=now)
    ex = make_exchange(emulator_settings(emu, tmp_path))
    assert ex.fetch_time() == now
    ticker = ex.fetch_ticker("BTC/USDT")
    assert ticker["timestamp"] == now and ticker["last"] == btc["open"].iloc[50]
    assert ticker["high"] == max(btc["high"].iloc[27:50].max(), btc["open"].iloc[50])
    assert ticker["open"] == btc["open"].iloc[27]
    tickers = ex.fetch_tickers(["BTC/USDT", "ETH/USDT"])
    assert sorted(tickers) == ["BTC/USDT", "ETH/USDT"] and emu.log[-1].params == {
        "symbols": '["BTCUSDT","ETHUSDT"]'
    }
