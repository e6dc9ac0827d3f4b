"""APScheduler 3 wiring: when the daemon wakes up, in a job store kept in the ledger's database.

Contracts:
- `make_scheduler(db_url, retry_s)` is a `BackgroundScheduler` (UTC) whose default job store is a
  `ResilientJobStore` on the ledger database (`apscheduler_jobs`; an engine from `agent.db.session`, so
  SQLite gets its WAL mode and busy timeout, PostgreSQL its pre-ping), with one worker thread.
- The job store never lets a database error reach the scheduler thread (APScheduler 3 lets an error in
  `update_job` or `get_next_run_time` end that thread for good, while the lease heartbeat goes on): a
  failed read or write is logged, no job is started for `retry_s` seconds, and the scheduler wakes up again
  then. A run time it could not record is still due, so the tick runs at the next wake-up.
- Live: `cron_trigger(timeframe, delay_s)` fires at every candle close plus `tick_delay_s` (UTC), e.g. 1h
  with 10 s → minute 0, second 10 of every hour. Replay: `replay_trigger(timeframe, speed)` fires every
  bar/speed real seconds (at least `MIN_INTERVAL_S`); the simulated clock, not the trigger, says which
  bars are due.
- `schedule(...)` adds the single tick job (`JOB_ID`, replacing a crashed daemon's), first run now, with
  `max_instances=1`, `coalesce=True` and the misfire grace time given. The stored job names a module-level
  function and the job id only (what a persistent store can pickle); the callable it runs lives in this
  process's registry.
- After each wake-up the next one is the trigger's next fire from now, or sooner when `rerun_in()` asks
  for it (0 s after a wake-up that left a backlog; a retry delay after a failed one): a retry still
  pending after a wake-up that went well is dropped.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from agent.db.session import make_engine
from agent.errors import ConfigError
from agent.market.candles import timeframe_ms

JOB_ID = "tradegraph-daemon-tick"
MIN_INTERVAL_S = 0.05
"""Fastest replay wake-up rate (20 per second); a faster clock just makes more bars due per wake-up."""

log = logging.getLogger("tradegraph.daemon")
_REGISTRY: dict[str, Callable[[], Any]] = {}


def run_registered(job_id: str) -> None:
    """The function the stored job names: run this process's callable for `job_id`."""
    job = _REGISTRY.get(job_id)
    if job is None:
        log.warning("no tick job %s registered in this process; ignoring the stored job", job_id)
        return
    job()


def cron_trigger(timeframe: str, delay_s: float) -> CronTrigger:
    """Fire at each close of a `timeframe` candle plus `delay_s` seconds (UTC)."""
    tf_s = timeframe_ms(timeframe) // 1000
    offset = math.ceil(delay_s)
    if offset >= tf_s:
        raise ConfigError(f"tick_delay_s={delay_s:g} must be shorter than one {timeframe} bar ({tf_s} s)")
    hours, rest = divmod(offset, 3600)
    minutes, seconds = divmod(rest, 60)
    fields: dict[str, Any] = {"second": seconds, "timezone": UTC}
    if tf_s < 3600:
        step = tf_s // 60
        fields["minute"] = f"{minutes}-59/{step}" if step > 1 else "*"
    elif tf_s < 86400:
        step = tf_s // 3600
        fields["minute"] = minutes
        fields["hour"] = f"{hours}-23/{step}" if step > 1 else "*"
    else:
        fields.update(minute=minutes, hour=hours)
    return CronTrigger(**fields)


def replay_trigger(timeframe: str, speed: float) -> IntervalTrigger:
    """Fire every bar/speed real seconds (never more often than `MIN_INTERVAL_S`)."""
    seconds = max(timeframe_ms(timeframe) / 1000.0 / speed, MIN_INTERVAL_S)
    return IntervalTrigger(seconds=seconds, timezone=UTC)


class ResilientJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    """The SQLAlchemy job store, whose database errors never reach the scheduler thread.

    After a failed read or write, `get_due_jobs` starts nothing and `get_next_run_time` answers no earlier
    than `retry_s` seconds later, so the scheduler neither dies nor spins; the job stays due in the table.
    """

    def __init__(self, engine: Engine, retry_s: float) -> None:
        super().__init__(engine=engine)
        self.retry_s = float(retry_s)
        self._hold_until = 0.0
        self._lock = threading.Lock()

    def get_due_jobs(self, now: datetime) -> list[Any]:
        """See `SQLAlchemyJobStore.get_due_jobs`; nothing while holding off after an error."""
        if self._holding():
            return []
        try:
            return list(super().get_due_jobs(now))
        except SQLAlchemyError as e:
            self._failed("read the due jobs", e)
            return []

    def update_job(self, job: Any) -> None:
        """See `SQLAlchemyJobStore.update_job`; after a database error the stored job stays as it was."""
        try:
            super().update_job(job)
        except SQLAlchemyError as e:
            self._failed("record the next run time", e)

    def get_next_run_time(self) -> datetime | None:
        """See `SQLAlchemyJobStore.get_next_run_time`; never earlier than the end of a hold-off."""
        stored: datetime | None = None
        try:
            stored = super().get_next_run_time()
        except SQLAlchemyError as e:
            self._failed("read the next run time", e)
        with self._lock:
            hold = self._hold_until
        if hold <= time.time():
            return stored
        resume = datetime.fromtimestamp(hold, UTC)
        return resume if stored is None or stored < resume else stored

    def _holding(self) -> bool:
        with self._lock:
            return time.time() < self._hold_until

    def _failed(self, what: str, error: SQLAlchemyError) -> None:
        with self._lock:
            self._hold_until = time.time() + self.retry_s
        reason = " ".join(str(error).split())[:300]
        log.warning(
            "job store: cannot %s (%s); retrying in %g s",
            what,
            reason,
            self.retry_s,
            extra={"event": "job_store_error"},
        )


def make_scheduler(db_url: str, retry_s: float = 10.0) -> BackgroundScheduler:
    """A background scheduler whose jobs live in the ledger database (its own engine: the store disposes
    of it at shutdown); job-store errors are retried every `retry_s` seconds."""
    return BackgroundScheduler(
        jobstores={"default": ResilientJobStore(make_engine(db_url), retry_s)},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        timezone=UTC,
        jobstore_retry_interval=retry_s,
    )


def schedule(
    scheduler: BackgroundScheduler,
    job: Callable[[], Any],
    trigger: BaseTrigger,
    *,
    misfire_grace_s: int | None,
    rerun_in: Callable[[], float | None] = lambda: None,
) -> None:
    """Register `job` and add it as the daemon's tick job (see the module contract)."""
    _REGISTRY[JOB_ID] = job
    scheduler.add_job(
        run_registered,
        trigger,
        args=[JOB_ID],
        id=JOB_ID,
        name="tradegraph tick",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=misfire_grace_s,
        next_run_time=datetime.now(UTC),
    )

    def after(event: JobExecutionEvent) -> None:
        if event.job_id != JOB_ID:
            return
        delay = rerun_in()
        now = datetime.now(UTC)
        try:
            stored = scheduler.get_job(JOB_ID)
            when = stored.trigger.get_next_fire_time(None, now) if stored is not None else None
            if when is not None and delay is not None:
                when = min(when, now + timedelta(seconds=delay))
            if when is not None and when != stored.next_run_time:
                scheduler.modify_job(JOB_ID, next_run_time=when)
        except Exception as e:  # noqa: BLE001 - shutting down: the job is gone, nothing to re-run
            log.debug("cannot re-plan the tick job: %s", e)

    scheduler.add_listener(after, EVENT_JOB_EXECUTED)


def unschedule() -> None:
    """Forget this process's tick job callable."""
    _REGISTRY.pop(JOB_ID, None)


def next_run_ms(scheduler: BackgroundScheduler) -> int | None:
    """When the tick job runs next (ms), or None."""
    try:
        job = scheduler.get_job(JOB_ID)
    except Exception:  # noqa: BLE001 - the store may be closing during shutdown
        return None
    when = getattr(job, "next_run_time", None) if job is not None else None
    return int(when.timestamp() * 1000) if when is not None else None
