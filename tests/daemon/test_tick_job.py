"""The wake-up logic on a hand-driven clock with the real agent graph: bounded catch-up, exchange faults and
stale or late data skip with a reason and lose nothing, an unexpected fault is journalled and retried."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker

from agent.daemon.clock import ManualClock
from agent.daemon.feed import CachedStore, CandleFeed
from agent.daemon.plan import Window
from agent.daemon.signals import StopSignal
from agent.daemon.tick_job import TickJob
from agent.db.session import open_db
from agent.graph.factory import open_agent
from agent.graph.runner import TickOutcome
from agent.market.candles import read_feather
from agent.market.replay import ReplayExchange
from agent.market.retry import RetryPolicy
from agent.market.service import MarketDataService
from tests.daemon.helpers import DATA_END, HOUR, SMA, FlakyExchange, data_dir, journal_rows, ledger, settings

START = DATA_END - 100 * HOUR


@dataclass
class Rig:
    job: TickJob
    clock: ManualClock
    url: str
    exchange: FlakyExchange
    factory: sessionmaker[Session]

    def bars(self) -> list[int]:
        return [b[0] for b in ledger(self.url, "tj")["balances"]]

    def journal(self) -> list[tuple[int, str, str | None]]:
        return journal_rows(self.url, "tj")


@contextmanager
def rig(tmp_path: Path, frames: dict[tuple[str, str], Any] | None = None, max_bars: int = 5) -> Iterator[Rig]:
    folder = data_dir(tmp_path)
    url = f"sqlite:///{tmp_path / 'tj.db'}"
    cfg = settings(folder, url)
    engine, factory = open_db(url)
    exchange = FlakyExchange(ReplayExchange(folder, frames=frames), rate=0.0, seed=1)
    policy = RetryPolicy(max_retries=1, sleep=lambda _s: None)
    service = MarketDataService(exchange, CachedStore(folder), policy)
    feed = CandleFeed(service, cfg.symbols, "1h", START - 200 * HOUR, set_exchange_clock=True)
    clock = ManualClock(START)
    try:
        with open_agent(
            cfg,
            run_id="tj",
            kind="daemon",
            strategy="sma_cross",
            params=SMA,
            source=feed.source,
            factory=factory,
        ) as runner:
            job = TickJob(
                runner,
                feed,
                clock,
                Window(START),
                factory=factory,
                stale_after_bars=2,
                max_bars=max_bars,
                stop=StopSignal(),
            )
            yield Rig(job, clock, url, exchange, factory)
    finally:
        engine.dispose()


def test_catch_up_is_bounded_per_wake_up_and_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with rig(tmp_path) as r:
        assert r.job().due == 0 and r.bars() == []  # at START nothing is closed yet
        r.clock.set(START + 12 * HOUR)  # the daemon was down: 12 bars closed meanwhile
        with caplog.at_level(logging.INFO, logger="tradegraph.daemon"):
            first = r.job()
        assert (first.due, first.ticked, first.backlog) == (12, 5, 7)
        assert any(getattr(rec, "event", None) == "catch_up" for rec in caplog.records)
        assert (r.job().ticked, r.job().ticked, r.job().due) == (5, 2, 0)
        assert r.bars() == [START + i * HOUR for i in range(12)]
        assert [status for _, status, _ in r.journal()] == ["done"] * 12


def test_exchange_fault_skips_the_wake_up_with_its_reason_and_the_next_one_catches_up(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.clock.set(START + 3 * HOUR)
        r.job()
        r.exchange.rate = 1.0  # the exchange is down
        r.clock.set(START + 6 * HOUR)
        report = r.job()
        assert report.skipped and "failed after 2 attempts: NetworkError" in report.skipped
        assert r.bars() == [START, START + HOUR, START + 2 * HOUR]
        bar, status, reason = r.journal()[-1]
        assert (bar, status) == (START + 5 * HOUR, "skipped")
        assert reason and reason.startswith("market data: ")
        r.exchange.rate = 0.0
        r.clock.set(START + 7 * HOUR)
        assert r.job().ticked == 4
        assert r.bars() == [START + i * HOUR for i in range(7)]


def test_stale_data_is_never_traded_and_a_late_symbol_is_waited_for(tmp_path: Path) -> None:
    eth = read_feather(data_dir(tmp_path) / "binance" / "ETH_USDT-1h.feather")
    frames = {("ETH/USDT", "1h"): eth[eth.index < pd.Timestamp(START + 4 * HOUR, unit="ms", tz="UTC")]}
    with rig(tmp_path, frames) as r:
        r.clock.set(START + 6 * HOUR)  # ETH's last bar (START+3h) closed 2 bars ago: late, not stale
        report = r.job()
        assert report.skipped is None
        assert r.bars() == [START + i * HOUR for i in range(4)]  # BTC's newer bars wait for ETH
        r.clock.set(START + 8 * HOUR)  # now 4 bars old: stale
        report = r.job()
        assert report.skipped
        assert report.skipped.startswith("stale data (older than 2 bars): ETH/USDT: last candle")
        assert "closed 4.0 bars ago" in report.skipped
        assert r.bars() == [START + i * HOUR for i in range(4)]  # nothing traded on stale data
        assert r.journal()[-1][1] == "skipped"


def test_an_unexpected_fault_is_journalled_and_the_bar_retried(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        real = r.job.runner
        failing = {START + HOUR}

        class Flaky:
            run_id = real.run_id

            def last_processed_bar(self) -> int | None:
                return real.last_processed_bar()

            def tick(self, bar_ts: int) -> TickOutcome:
                if bar_ts in failing:
                    failing.discard(bar_ts)
                    raise RuntimeError("disk full")
                return real.tick(bar_ts)

        r.job.runner = Flaky()
        r.clock.set(START + 3 * HOUR)
        report = r.job()
        assert report.ticked == 1 and report.backlog == 2
        assert r.journal()[-1] == (START + HOUR, "error", "RuntimeError: disk full")
        assert r.job().ticked == 2
        assert r.bars() == [START, START + HOUR, START + 2 * HOUR]


def test_a_wake_up_never_overlaps_another_and_none_starts_after_close(tmp_path: Path) -> None:
    with rig(tmp_path) as r:
        r.clock.set(START + 2 * HOUR)
        r.job.idle.clear()  # as if another wake-up were running
        assert r.job().skipped == "busy" and r.bars() == []
        r.job.idle.set()
        r.job.close()
        assert r.job().skipped == "stopping" and r.bars() == []
