"""One wake-up of the daemon: refresh data → due bars → ticks → heartbeat. The same code live and in replay.

Contracts:
- Due bars are the bars with data after the ledger's last processed bar (so nothing is lost after downtime
  or a skipped wake-up), from the run's first bar, up to the newest bar that is closed at the clock's now and
  present for every symbol (a symbol one bar late is waited for, not traded around), before the window end.
  At most `max_bars` are ticked per wake-up, oldest first; the rest is reported as `backlog` and logged.
- An exchange fault that outlived the market service's retries, or invalid data, skips the wake-up: one
  `skipped` journal row for the newest closed bar, with the reason. Stale data (a symbol's last closed
  candle older than `settings.stale_after_bars` bars) skips it the same way: nothing is traded on it.
- Each bar goes through `runner.tick` (idempotent, resumable); its outcome is journalled. A tick the graph
  could not settle is journalled `skipped` and the next bar follows, as in a backtest. An unexpected
  exception is journalled `error` and ends the wake-up (the bar is retried next time); the daemon lives on.
  So is an exception anywhere else in the wake-up (e.g. the database gone), journalled when the journal can
  be written at all. A failed wake-up reports `failed`, so the scheduler retries it rather than re-running
  it at once.
- A bar that failed `discard_after` times in a row (counted in the journal, so across restarts) and has a
  checkpoint is poisoned: its checkpoint thread is deleted (`runner.discard`), a `discarded` row records
  why, and the bar is re-run from scratch in the same wake-up.
- Between bars the job checks the stop signal: a stop request abandons the remaining bars; once stopping
  (or after `close()`), a wake-up the scheduler still starts returns at once.
- After the bars, the lease heartbeat records now, the last processed bar and the next planned wake-up;
  `LeaseLost` requests a stop; a database error there is logged (the watch thread's heartbeat goes on).
  In replay, reaching the end of the window with no backlog sets `finished`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from agent.daemon import journal
from agent.daemon.clock import Clock, last_closed_bar
from agent.daemon.feed import CandleFeed
from agent.daemon.journal import JournalEntry
from agent.daemon.lease import Lease, LeaseLost
from agent.daemon.plan import Window
from agent.daemon.signals import StopSignal
from agent.db.models import utcnow
from agent.errors import DataError, ExchangeError
from agent.market.candles import timeframe_ms

if TYPE_CHECKING:
    from agent.graph.runner import TickOutcome

log = logging.getLogger("tradegraph.daemon")
REPLAY_FINISHED = "replay finished"
"""The stop reason the job gives when a replay reached the end of its window."""


class Ticker(Protocol):
    """What the job needs from `agent.graph.runner.AgentRunner`."""

    @property
    def run_id(self) -> str: ...

    def tick(self, bar_ts: int) -> TickOutcome: ...

    def last_processed_bar(self) -> int | None: ...

    def discard(self, bar_ts: int) -> bool: ...


@dataclass(frozen=True)
class WakeReport:
    """What one wake-up did."""

    now_ms: int
    due: int = 0
    ticked: int = 0
    backlog: int = 0
    skipped: str | None = None
    finished: bool = False
    failed: bool = False
    """Something went wrong (a tick, the market data, the wake-up itself): retry later, not at once."""


class TickJob:
    """The scheduler's job body (see the module contract)."""

    def __init__(
        self,
        runner: Ticker,
        feed: CandleFeed,
        clock: Clock,
        window: Window,
        *,
        factory: sessionmaker[Session],
        stale_after_bars: int,
        max_bars: int,
        stop: StopSignal,
        lease: Lease | None = None,
        next_wake_ms: Callable[[], int | None] = lambda: None,
        discard_after: int = 3,
    ) -> None:
        self.runner = runner
        self.feed = feed
        self.clock = clock
        self.window = window
        self.factory = factory
        self.stale_after_bars = stale_after_bars
        self.max_bars = max(1, int(max_bars))
        self.stop = stop
        self.lease = lease
        self.next_wake_ms = next_wake_ms
        self.discard_after = max(1, int(discard_after))
        self.tf_ms = timeframe_ms(feed.timeframe)
        self.idle = threading.Event()
        self.idle.set()
        self.last_report: WakeReport | None = None
        self._gate = threading.Lock()
        self._closed = False
        self._suspect: int | None = None
        """The bar whose failures to count before ticking it: the last one that failed, or (at start) any."""
        self._started = False

    @property
    def holder(self) -> str | None:
        """The lease holder id written into journal rows."""
        return self.lease.holder.id if self.lease is not None else None

    def close(self) -> None:
        """Let no further wake-up start (one already running goes on; wait for `idle`)."""
        with self._gate:
            self._closed = True

    def __call__(self) -> WakeReport:
        """Run one wake-up (never raises: faults are journalled and logged); nothing once stopping."""
        with self._gate:
            if self._closed or self.stop.requested:
                return WakeReport(self.clock.now_ms(), skipped="stopping")
            if not self.idle.is_set():  # one wake-up at a time, however it was started
                return WakeReport(self.clock.now_ms(), skipped="busy")
            self.idle.clear()
        try:
            report = self._wake()
        except Exception as e:  # noqa: BLE001 - the daemon outlives any single wake-up
            log.exception("wake-up failed: %s", e, extra={"event": "wake_error"})
            report = WakeReport(self.clock.now_ms(), skipped=f"error: {e}", failed=True)
            self._journal_failure(report.now_ms, e)
        finally:
            with self._gate:
                self.idle.set()
        self.last_report = report
        if report.finished:
            self.stop.request(REPLAY_FINISHED)
        return report

    # ---- steps ---------------------------------------------------------------------------------------------

    def _wake(self) -> WakeReport:
        now = self.clock.now_ms()
        target = last_closed_bar(now, self.tf_ms)
        if self.window.end_ms is not None:
            target = min(target, self.window.end_ms - 1)
        started = utcnow()
        try:
            self.feed.refresh(now)
        except (ExchangeError, DataError) as e:  # TemporaryExchangeError is an ExchangeError
            return self._skip(now, target, f"market data: {e}", started)
        stale = self.feed.stale(now, self.stale_after_bars)
        if stale:
            limit = f"older than {self.stale_after_bars} bars"
            return self._skip(now, target, f"stale data ({limit}): " + "; ".join(map(str, stale)), started)
        due = self._due(target)
        batch = due[: self.max_bars]
        if len(due) > len(batch):
            log.info(
                "catch-up: %d bars due, ticking %d now, %d at the next wake-up",
                len(due),
                len(batch),
                len(due) - len(batch),
                extra={"event": "catch_up", "due": len(due)},
            )
        ticked, failed = 0, False
        for bar_ts in batch:
            if self.stop.requested:
                log.info(
                    "stop requested: %d due bars left for the next start",
                    len(due) - ticked,
                    extra={"event": "abandon"},
                )
                break
            if not self._tick(bar_ts):
                failed = True
                break
            ticked += 1
        backlog = len(due) - ticked
        self._heartbeat(now)
        finished = self.window.end_ms is not None and now >= self.window.end_ms and backlog == 0
        return WakeReport(now, len(due), ticked, backlog, None, finished, failed)

    def _due(self, target: int) -> list[int]:
        last = self.runner.last_processed_bar()
        lows = [self.window.start_ms] + ([last + 1] if last is not None else [])
        present = [self.feed.last_bar(s) for s in self.feed.symbols]
        frontier = min([target] + [p for p in present if p is not None])
        return self.feed.source.bar_times(start_ts=max(lows), end_ts=frontier + 1)

    def _tick(self, bar_ts: int) -> bool:
        """Tick one bar and journal it; False when the wake-up must end here."""
        started = utcnow()
        run_id = self.runner.run_id
        try:
            self._discard_if_poisoned(bar_ts)
            outcome = self.runner.tick(bar_ts)
        except LeaseLost as e:  # another process holds the run now: write nothing more (no journal), stop
            log.error("%s; stopping", e, extra={"event": "lease_lost", "run_id": run_id, "bar_ts": bar_ts})
            self.stop.request("lease lost")
            return False
        except Exception as e:  # noqa: BLE001 - journalled; the bar is retried at the next wake-up
            log.exception(
                "tick %s failed: %s",
                _iso(bar_ts),
                e,
                extra={"event": "tick_error", "run_id": run_id, "bar_ts": bar_ts},
            )
            reason = f"{type(e).__name__}: {e}"
            self._suspect = bar_ts
            self._journal(JournalEntry(run_id, bar_ts, "error", reason, started_at=started))
            return False
        self._suspect = None
        entry = JournalEntry(
            run_id,
            bar_ts,
            outcome.status,
            outcome.reason,
            outcome.orders,
            outcome.fills,
            outcome.equity,
            started,
        )
        self._journal(entry)
        level = logging.WARNING if outcome.status == "skipped" else logging.INFO
        why = f": {outcome.reason}" if outcome.reason else ""
        log.log(
            level,
            "tick %s %s%s",
            _iso(bar_ts),
            outcome.status,
            why,
            extra={
                "event": "tick",
                "run_id": run_id,
                "bar_ts": bar_ts,
                "status": outcome.status,
                "orders": outcome.orders,
                "fills": outcome.fills,
                "equity": outcome.equity,
            },
        )
        return True

    def _skip(self, now: int, bar_ts: int, reason: str, started: datetime) -> WakeReport:
        run_id = self.runner.run_id
        log.warning(
            "wake-up skipped at %s: %s",
            _iso(bar_ts),
            reason,
            extra={"event": "skip", "run_id": run_id, "bar_ts": bar_ts},
        )
        self._journal(JournalEntry(run_id, bar_ts, "skipped", reason, started_at=started))
        self._heartbeat(now)
        return WakeReport(now, skipped=reason, failed=True)

    def _discard_if_poisoned(self, bar_ts: int) -> None:
        """Delete the checkpoint of a bar that failed `discard_after` times in a row, and journal why."""
        if self._started and self._suspect != bar_ts:
            return  # only the bar that just failed (or, after a restart, the first one) can be poisoned
        self._started = True
        run_id = self.runner.run_id
        count, last = journal.failures_in_a_row(self.factory, run_id, bar_ts)
        if count < self.discard_after or not self.runner.discard(bar_ts):
            return
        reason = (
            f"checkpoint discarded after {count} failed attempts in a row (last: {last}); re-run from scratch"
        )
        log.warning(
            "tick %s: %s",
            _iso(bar_ts),
            reason,
            extra={"event": "checkpoint_discarded", "run_id": run_id, "bar_ts": bar_ts},
        )
        self._journal(JournalEntry(run_id, bar_ts, "discarded", reason))

    def _journal(self, entry: JournalEntry) -> None:
        journal.record(self.factory, entry, self.holder)

    def _journal_failure(self, now: int, error: Exception) -> None:
        """Journal a wake-up that failed outside a tick, if the journal can be written at all."""
        bar = last_closed_bar(now, self.tf_ms)
        if self.window.end_ms is not None:
            bar = min(bar, self.window.end_ms - self.tf_ms)
        reason = f"wake-up failed: {type(error).__name__}: {error}"
        try:
            self._journal(JournalEntry(self.runner.run_id, bar, "error", reason))
        except Exception as e:  # noqa: BLE001 - the database is what failed: the log has it
            log.warning("cannot journal the failed wake-up: %s", e, extra={"event": "journal_error"})

    def _heartbeat(self, now: int) -> None:
        if self.lease is None:
            return
        try:
            self.lease.heartbeat(
                clock_ms=now, last_bar_ts=self.runner.last_processed_bar(), next_tick_ms=self.next_wake_ms()
            )
        except LeaseLost as e:
            log.error("%s; stopping", e, extra={"event": "lease_lost"})
            self.stop.request("lease lost")
        except SQLAlchemyError as e:  # the watch thread renews the lease again shortly
            log.warning("heartbeat failed: %s", e, extra={"event": "heartbeat_error"})


def _iso(ms: int) -> str:
    return f"{pd.Timestamp(ms, unit='ms', tz='UTC'):%Y-%m-%d %H:%M}"
