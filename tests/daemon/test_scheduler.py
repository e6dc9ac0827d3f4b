"""The scheduler thread outlives its job store's database errors: with the SQLite file locked past the busy
timeout the tick job is retried at each retry interval, and keeps running once the lock is gone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from agent.daemon.scheduler import make_scheduler, schedule, unschedule
from tests.daemon.helpers import wait_for


@pytest.mark.timeout(120)
def test_a_locked_job_store_does_not_kill_the_scheduler_thread(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    runs: list[int] = []
    scheduler = make_scheduler(f"sqlite:///{db}?timeout=0.1", retry_s=0.1)
    schedule(scheduler, lambda: runs.append(1), IntervalTrigger(seconds=0.05), misfire_grace_s=None)
    scheduler.start()
    try:
        wait_for(lambda: len(runs) >= 2, 30, "two runs")
        locker = sqlite3.connect(db, isolation_level=None, timeout=30)
        try:
            locker.execute("BEGIN EXCLUSIVE")  # the store cannot record the next run time any more
            seen = len(runs)
            wait_for(lambda: len(runs) >= seen + 3, 30, "runs while the job store is locked")
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        seen = len(runs)
        wait_for(lambda: len(runs) >= seen + 3, 30, "runs after the lock")
    finally:
        scheduler.shutdown(wait=False)
        unschedule()
