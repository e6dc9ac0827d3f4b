"""The daemon in-process: live mode through real ccxt against the exchange emulator (cron trigger, open
candle never traded, a 503 skips the wake-up), abandoning a stuck tick on stop, stopping when the lease is
taken over, and refusing a run id that belongs to another kind of run."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from agent.daemon import Daemon, DaemonOptions, DaemonResult, ManualClock
from agent.daemon.lease import read_lease
from agent.daemon.scheduler import JOB_ID, run_registered
from agent.db.models import DaemonLease
from agent.db.session import open_db, transaction
from agent.errors import ConfigError
from agent.ledger import start_run
from agent.market.candles import read_feather
from agent.market.replay import ReplayExchange
from agent.testing.exchange_emulator import ExchangeEmulator, Fault
from tests.daemon.helpers import DATA_END, HOUR, SMA, data_dir, iso, journal_rows, ledger, settings, wait_for


class Background:
    """A daemon running in a thread of the test process."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.result: DaemonResult | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="daemon-under-test")
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self.daemon.run()
        except BaseException as e:  # noqa: BLE001 - re-raised by join()
            self.error = e

    def join(self, timeout: float = 60) -> DaemonResult:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the daemon did not stop"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@pytest.mark.timeout(180)
def test_live_mode_over_ccxt_ticks_the_last_closed_bar_and_skips_a_failing_wake_up(tmp_path: Path) -> None:
    bundled = data_dir(tmp_path / "bundle") / "binance"
    frames = {
        s: read_feather(bundled / f"{s.replace('/', '_')}-1h.feather") for s in ("BTC/USDT", "ETH/USDT")
    }
    start = DATA_END - 50 * HOUR
    now = start + 5 * HOUR + 15 * 60_000  # a quarter into the bar opened at start+5h
    folder = tmp_path / "live"
    url = f"sqlite:///{folder / 'live.db'}"
    with ExchangeEmulator(frames, timeframe="1h", now_ms=now) as emu:
        emu.push("/api/v3/klines", Fault.server_error(), Fault.server_error())  # the first wake-up fails
        cfg = settings(
            folder,
            url,
            exchange={
                "id": "binance",
                "api_url": emu.url,
                "max_retries": 1,
                "backoff_base_s": 0.0,
                "backoff_max_s": 0.0,
            },
        )
        daemon = Daemon(
            cfg,
            DaemonOptions(params=SMA, run_id="live", history_bars=60, lease_ttl_s=5, retry_s=0.2),
            clock=ManualClock(now),
        )
        bg = Background(daemon)
        try:
            wait_for(lambda: journal_rows(url, "live"), 120, "the first wake-up")
            bar, status, reason = journal_rows(url, "live")[0]
            assert (bar, status) == (start + 4 * HOUR, "skipped")
            assert reason and "failed after 2 attempts: ExchangeNotAvailable" in reason
            assert ledger(url, "live")["balances"] == []
            run_registered(JOB_ID)  # the next wake-up, without waiting for the next candle close
            bars = wait_for(lambda: [b[0] for b in ledger(url, "live")["balances"]], 60, "the tick")
            assert bars == [start + 4 * HOUR]  # the last closed bar, never the open one
            # the failed wake-up's retry (0.2 s later) finds nothing due; then the cron trigger plans the next
            lease = wait_for(
                lambda: (x := _lease(url)) and x.next_tick_ms and _at_candle_close(x.next_tick_ms) and x,
                30,
                "a wake-up at a candle close",
            )
        finally:
            daemon.stop.request("test over")
            result = bg.join()
    assert result.reason == "test over" and result.last_bar == start + 4 * HOUR and not result.finished
    assert _at_candle_close(lease.next_tick_ms)
    stored = read_feather(folder / "store" / "binance" / "BTC_USDT-1h.feather")
    assert stored.index[-1].value // 10**6 == start + 4 * HOUR
    assert len(stored) == 61  # 60 bars of history + the run's first bar


def _at_candle_close(ms: int) -> bool:
    """The cron trigger's time: a 1h candle's close + tick_delay_s (10 s)."""
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return (when.minute, when.second) == (0, 10)


def _lease(url: str) -> Any:
    engine, factory = open_db(url)
    try:
        return read_lease(factory)
    finally:
        engine.dispose()


class StuckExchange:
    """Replay exchange whose `fetch_ohlcv` hangs once `armed`, until `release` is set."""

    def __init__(self, inner: ReplayExchange) -> None:
        self.inner = inner
        self.armed = threading.Event()
        self.stuck = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def fetch_ohlcv(self, *args: Any, **kwargs: Any) -> Any:
        if self.armed.is_set():
            self.stuck.set()
            self.release.wait(60)
        return self.inner.fetch_ohlcv(*args, **kwargs)


@pytest.mark.timeout(120)
def test_a_stuck_wake_up_is_abandoned_after_the_grace_period_and_the_lease_released(tmp_path: Path) -> None:
    folder = data_dir(tmp_path)
    url = f"sqlite:///{tmp_path / 'stuck.db'}"
    exchange = StuckExchange(ReplayExchange(folder))
    seen: dict[str, Any] = {}

    def on_abandon() -> None:
        seen["lease"] = _lease(url)
        exchange.release.set()

    options = DaemonOptions(
        replay=True,
        speed=3600 * 10,
        start=iso(DATA_END - 500 * HOUR),
        params=SMA,
        run_id="stuck",
        stop_grace_s=0.5,
    )
    daemon = Daemon(settings(folder, url), options, exchange=exchange, on_abandon=on_abandon)
    bg = Background(daemon)
    try:
        wait_for(lambda: len(ledger(url, "stuck")["balances"]) >= 2, 120, "two ticks")
        exchange.armed.set()
        assert exchange.stuck.wait(60)
        daemon.stop.request("SIGTERM")
    finally:
        result = bg.join()
        exchange.release.set()
    assert result.abandoned and result.reason == "SIGTERM"
    assert seen["lease"].holder is None and seen["lease"].note == "SIGTERM"  # released before exiting


@pytest.mark.timeout(120)
def test_a_daemon_whose_lease_is_taken_over_stops(tmp_path: Path) -> None:
    folder = data_dir(tmp_path)
    url = f"sqlite:///{tmp_path / 'lost.db'}"
    options = DaemonOptions(
        replay=True,
        speed=3600 * 10,
        start=iso(DATA_END - 500 * HOUR),
        params=SMA,
        run_id="lost",
        lease_ttl_s=0.6,
    )
    bg = Background(Daemon(settings(folder, url), options))
    wait_for(lambda: len(ledger(url, "lost")["balances"]) >= 2, 120, "two ticks")
    engine, factory = open_db(url)
    try:
        with transaction(factory) as session:  # another process claims the lease (as after a long stall)
            session.execute(update(DaemonLease).values(epoch=DaemonLease.epoch + 1, holder="thief"))
        result = bg.join()
        assert result.reason == "lease lost"
        assert read_lease(factory).holder == "thief"  # type: ignore[union-attr]
    finally:
        engine.dispose()


def test_a_run_id_of_another_kind_of_run_is_refused_before_the_lease(tmp_path: Path) -> None:
    folder = data_dir(tmp_path)
    url = f"sqlite:///{tmp_path / 'clash.db'}"
    engine, factory = open_db(url)
    try:
        start_run(
            factory, "taken", kind="backtest", strategy="sma_cross", symbols=["BTC/USDT"], timeframe="1h"
        )
        daemon = Daemon(settings(folder, url), DaemonOptions(replay=True, params=SMA, run_id="taken"))
        with pytest.raises(ConfigError, match="run taken is a backtest run of sma_cross on BTC/USDT 1h"):
            daemon.run()
        assert read_lease(factory) is None
    finally:
        engine.dispose()


@pytest.mark.timeout(120)
def test_a_short_replay_runs_to_its_end_on_either_database(tmp_path: Path, db_url: str) -> None:
    folder = data_dir(tmp_path)
    options = DaemonOptions(
        replay=True, speed=3600 * 50, start=iso(DATA_END - 12 * HOUR), params=SMA, run_id="both"
    )
    result = Daemon(settings(folder, db_url), options).run()
    assert result.finished and result.last_bar == DATA_END - HOUR
    expected = [DATA_END - (12 - i) * HOUR for i in range(12)]
    assert [b[0] for b in ledger(db_url, "both")["balances"]] == expected
    assert {status for _, status, _ in journal_rows(db_url, "both")} == {"done"}
    lease = _lease(db_url)
    assert lease.holder is None and lease.last_bar_ts == DATA_END - HOUR
    from sqlalchemy import create_engine, inspect

    engine = create_engine(db_url)
    try:
        assert "apscheduler_jobs" in inspect(engine).get_table_names()  # the job store is in the same db
    finally:
        engine.dispose()


def test_an_unreachable_exchange_at_start_is_one_line_and_frees_the_lease(tmp_path: Path) -> None:
    import socket

    from agent.errors import TemporaryExchangeError

    with socket.socket() as probe:  # a port that was free a moment ago: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"sqlite:///{tmp_path / 'down.db'}"
    exchange = {
        "id": "binance",
        "api_url": f"http://127.0.0.1:{port}",
        "max_retries": 1,
        "backoff_base_s": 0.0,
    }
    cfg = settings(tmp_path / "live", url, exchange=exchange)
    with pytest.raises(TemporaryExchangeError, match=r"load_markets failed after 2 attempts: NetworkError"):
        Daemon(cfg, DaemonOptions(params=SMA, run_id="down")).run()
    lease = _lease(url)
    assert lease is not None and lease.holder is None


@pytest.mark.timeout(180)
def test_a_replay_over_an_earlier_window_fills_the_stores_hole(tmp_path: Path) -> None:
    folder = data_dir(tmp_path)
    later = DaemonOptions(
        replay=True,
        speed=3600 * 50,
        start=iso(DATA_END - 20 * HOUR),
        params=SMA,
        run_id="later",
        history_bars=30,
    )
    assert Daemon(settings(folder, f"sqlite:///{tmp_path / 'later.db'}"), later).run().finished
    # the store now holds DATA_END-50h .. DATA_END-1h; the earlier run needs DATA_END-150h .. DATA_END-101h
    start, end = DATA_END - 120 * HOUR, DATA_END - 100 * HOUR
    earlier = DaemonOptions(
        replay=True,
        speed=3600 * 50,
        start=iso(start),
        end=iso(end),
        params=SMA,
        run_id="earlier",
        history_bars=30,
    )
    url = f"sqlite:///{tmp_path / 'earlier.db'}"
    bg = Background(Daemon(settings(folder, url), earlier))
    try:
        wait_for(
            lambda: bg.result is not None or len(ledger(url, "earlier")["balances"]) >= 20,
            120,
            "the earlier window's bars",
        )
    finally:
        bg.daemon.stop.request("test over")
        result = bg.join()
    expected = [start + i * HOUR for i in range(20)]
    assert [b[0] for b in ledger(url, "earlier")["balances"]] == expected
    assert not [r for r in journal_rows(url, "earlier") if r[1] != "done"]
    assert result.finished or result.reason == "test over"

    fresh = data_dir(tmp_path / "fresh")  # the same window on an empty store gives the same ledger
    ref = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert Daemon(settings(fresh, ref), earlier).run().finished
    assert ledger(ref, "earlier") == ledger(url, "earlier")
