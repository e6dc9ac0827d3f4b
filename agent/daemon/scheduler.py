"""APScheduler 3 wiring: when the daemon wakes up, in a job store kept in the ledger's database.

Contracts:
- `make_scheduler(db_url)` is a `BackgroundScheduler` (UTC) whose default job store is a
  `SQLAlchemyJobStore` on the ledger database (`apscheduler_jobs`; an engine from `agent.db.session`, so
  SQLite gets its WAL mode and busy timeout), with one worker thread.
- Live: `cron_trigger(timeframe, delay_s)` fires at every candle close plus `tick_delay_s` (UTC), e.g. 1h
  with 10 s → minute 0, second 10 of every hour. Replay: `replay_trigger(timeframe, speed)` fires every
  bar/speed real seconds (at least `MIN_INTERVAL_S`); the simulated clock, not the trigger, says which
  bars are due.
- `schedule(...)` adds the single tick job (`JOB_ID`, replacing a crashed daemon's), first run now, with
  `max_instances=1`, `coalesce=True` and the misfire grace time given. The stored job names a module-level
  function and the job id only (what a persistent store can pickle); the callable it runs lives in this
  process's registry.
- After a wake-up that left a backlog (bounded catch-up), the job is re-run at once rather than at the next
  candle close.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

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


def make_scheduler(db_url: str) -> BackgroundScheduler:
    """A background scheduler whose jobs live in the ledger database (its own engine: the store disposes
    of it at shutdown)."""
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=make_engine(db_url))},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        timezone=UTC,
    )


def schedule(
    scheduler: BackgroundScheduler,
    job: Callable[[], Any],
    trigger: BaseTrigger,
    *,
    misfire_grace_s: int | None,
    rerun_now: Callable[[], bool] = lambda: False,
) -> None:
    """Register `job` and add it as the daemon's tick job (see the module contract)."""
    _REGISTRY[JOB_ID] = job
    scheduler.add_job(
        run_registered, trigger, args=[JOB_ID], id=JOB_ID, name="tradegraph tick", replace_existing=True,
        max_instances=1, coalesce=True, misfire_grace_time=misfire_grace_s, next_run_time=datetime.now(UTC),
    )

    def after(event: JobExecutionEvent) -> None:
        if event.job_id == JOB_ID and rerun_now():
            try:
                scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))
            except Exception as e:  # noqa: BLE001 - shutting down: the job is gone, nothing to re-run
                log.debug("cannot re-run the tick job: %s", e)

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
