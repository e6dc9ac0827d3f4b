"""Concurrent downloads (ccxt.async_support): bounded concurrency, per-symbol failures, always closed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from agent.config import DEFAULT_DATA_DIR
from agent.errors import DataError, ExchangeError, TemporaryExchangeError
from agent.market.async_fetch import download_many, download_symbols
from agent.market.candles import read_feather
from agent.market.exchange import make_exchange
from agent.market.replay import AsyncReplayExchange, ReplayExchange
from agent.market.service import DownloadReport
from agent.market.store import CandleStore
from agent.testing.exchange_emulator import Fault
from tests.market.helpers import HOUR_MS, SleepRecorder, emulator_settings, instant_policy, ms, shared_candles

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT"]


class GatedExchange(AsyncReplayExchange):
    """Replay behind the async interface; every candle request waits for `gate` and is counted in flight."""

    def __init__(self) -> None:
        super().__init__(ReplayExchange(DEFAULT_DATA_DIR))
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.close_calls = 0
        self.fail: dict[str, BaseException] = {}

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[list[float]]:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.gate.wait()
            if symbol in self.fail:
                raise self.fail[symbol]
            return await super().fetch_ohlcv(symbol, timeframe, since, limit)
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        self.close_calls += 1


async def settle(condition: Any, rounds: int = 200) -> None:
    """Let the event loop run (no I/O involved) until `condition()` holds; fail after `rounds` turns."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


def policy() -> Any:
    from agent.market.retry import RetryPolicy

    sleeper = SleepRecorder()
    return RetryPolicy(max_retries=0, sleep=sleeper, async_sleep=sleeper.asleep)


def test_no_more_than_concurrency_symbols_are_fetched_at_once(tmp_path: Path):
    async def scenario() -> tuple[GatedExchange, dict[str, Any], int]:
        ex = GatedExchange()
        task = asyncio.create_task(
            download_many(
                ex, CandleStore(tmp_path), SYMBOLS, "1d", policy(), concurrency=2, since="2025-01-01"
            )
        )
        await settle(lambda: ex.in_flight == 2)
        for _ in range(50):  # everything else is blocked on the semaphore: nothing more may start
            await asyncio.sleep(0)
        blocked_in_flight = ex.in_flight
        ex.gate.set()
        return ex, await task, blocked_in_flight

    ex, results, blocked_in_flight = asyncio.run(scenario())
    assert blocked_in_flight == 2 and ex.max_in_flight == 2
    assert all(isinstance(r, DownloadReport) for r in results.values()) and list(results) == SYMBOLS
    assert ex.close_calls == 1
    bundled = read_feather(DEFAULT_DATA_DIR / "binance" / "XRP_USDT-1d.feather")
    pd.testing.assert_frame_equal(
        read_feather(results["XRP/USDT"].path), bundled[bundled.index >= "2025-01-01"]
    )


def test_one_failing_symbol_does_not_stop_the_others_and_the_exchange_is_closed(tmp_path: Path):
    ex = GatedExchange()
    ex.gate.set()
    ex.fail["ETH/USDT"] = TemporaryExchangeError("boom")  # raised as is: already a tradegraph error
    import ccxt

    ex.fail["SOL/USDT"] = ccxt.BadSymbol("gone")
    results = asyncio.run(
        download_many(ex, CandleStore(tmp_path), SYMBOLS, "1d", policy(), 3, since="2025-01-01")
    )
    assert isinstance(results["ETH/USDT"], TemporaryExchangeError)
    assert isinstance(results["SOL/USDT"], ExchangeError) and "BadSymbol" in str(results["SOL/USDT"])
    assert isinstance(results["BTC/USDT"], DownloadReport)
    assert not CandleStore(tmp_path).path("replay", "ETH/USDT", "1d").exists()
    assert ex.close_calls == 1


def test_a_bug_propagates_after_closing(tmp_path: Path):
    ex = GatedExchange()
    ex.gate.set()
    ex.fail["BTC/USDT"] = ZeroDivisionError()
    with pytest.raises(ZeroDivisionError):
        asyncio.run(
            download_many(ex, CandleStore(tmp_path), SYMBOLS[:2], "1d", policy(), 2, since="2025-01-01")
        )
    assert ex.close_calls == 1


def test_real_ccxt_async_client_through_the_emulator(emulator, tmp_path: Path):
    btc, eth = shared_candles("BTC/USDT").iloc[-1500:], shared_candles("ETH/USDT").iloc[-1500:]
    now = ms(btc.index[-1]) + HOUR_MS
    emu = emulator({"BTC/USDT": btc, "ETH/USDT": eth, "BNB/USDT": btc}, now_ms=now)
    emu.push("/api/v3/klines", Fault.too_many_requests())
    settings = emulator_settings(emu, tmp_path)
    ex = make_exchange(settings, asynchronous=True)
    closes: list[bool] = []
    real_close = ex.close

    async def spy_close() -> None:
        closes.append(True)
        await real_close()

    ex.close = spy_close
    symbols = ["BTC/USDT", "DOGE/EUR", "ETH/USDT", "SOL/USDT"]
    results = asyncio.run(
        download_many(
            ex, CandleStore(tmp_path), symbols, "1h", instant_policy(settings), 2, since=btc.index[0]
        )
    )

    assert closes == [True] and ex.session is None
    assert isinstance(results["DOGE/EUR"], ExchangeError) and "BadSymbol" in str(results["DOGE/EUR"])
    assert isinstance(results["SOL/USDT"], DataError)  # listed, but the exchange has no candles for it
    for symbol, src in (("BTC/USDT", btc), ("ETH/USDT", eth)):
        report = results[symbol]
        assert isinstance(report, DownloadReport)
        pd.testing.assert_frame_equal(read_feather(report.path), src)
    assert emu.max_in_flight <= 2 and emu.max_limit == 1000


def test_a_shared_failure_raises_and_still_closes(emulator, tmp_path: Path):
    emu = emulator({})
    emu.push("/api/v3/exchangeInfo", Fault.server_error(502), Fault.server_error(502))
    settings = emulator_settings(emu, tmp_path, max_retries=1)
    ex = make_exchange(settings, asynchronous=True)
    with pytest.raises(TemporaryExchangeError, match="load_markets failed after 2 attempts"):
        asyncio.run(
            download_many(
                ex, CandleStore(tmp_path), ["BTC/USDT"], "1h", instant_policy(settings), 2, since="2024-01-01"
            )
        )
    assert ex.closed_by_user is True and ex.session is None


def test_download_symbols_uses_the_settings(tmp_path: Path):
    import shutil

    from agent.config import load_settings

    shutil.copytree(DEFAULT_DATA_DIR / "binance", tmp_path / "binance")
    settings = load_settings(
        data_dir=tmp_path, symbols="BNB/USDT,XRP/USDT", timeframe="1d", exchange={"concurrency": 1}
    )
    results = asyncio.run(download_symbols(settings, since="2025-09-01"))
    assert list(results) == ["BNB/USDT", "XRP/USDT"]
    report = results["BNB/USDT"]
    assert isinstance(report, DownloadReport) and report.path.parent == tmp_path / "store" / "replay"
    assert report.first == pd.Timestamp("2025-09-01", tz="UTC") and report.rows == 18
