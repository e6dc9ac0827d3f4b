"""The daemon keeps trading, or `tradegraph status` says that it cannot: faults injected into a real daemon
subprocess replaying the bundled candles.

- PostgreSQL connections terminated mid-run (once per wake-up, until a wake-up failed on it): status says
  `degraded` with the error, trading resumes within two wake-ups of that termination, no bar is lost.
- SQLite locked past the daemon's busy timeout: status turns `degraded` while the lock is held; the
  scheduler survives and the replay catches up to its end.
- A tick blocked for more than two bar intervals (its checkpoint table locked) while the heartbeat goes on:
  status says `stalled` (no tick has run), then the daemon catches up.
- A poisoned checkpoint: the bar fails three times from it, the checkpoint is discarded (journalled with the
  reason) and the bar re-run from scratch, with the ledger of an undisturbed run.

Every wait polls the database or `tradegraph status` with a deadline; nothing sleeps for synchronisation.
To read a state that lasts a few wake-ups (degraded right after a fault), the daemon is frozen (SIGSTOP)
the moment the journal shows the fault, and thawed (SIGCONT) after `status` was read. The faults are held
in wall time (the busy timeout and the lease TTL are wall-clock), but the replay clock runs 2 to 4 hours
per second, so a long outage in market time costs seconds.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from agent.daemon import Daemon, DaemonOptions
from agent.db.session import open_db
from agent.graph import names
from agent.graph.checkpoint import tick_thread_id
from agent.graph.factory import open_agent
from tests.daemon.helpers import (
    DAEMON_APP,
    DATA_END,
    HOUR,
    SMA,
    bars,
    data_dir,
    iso,
    journal_rows,
    ledger,
    running,
    settings,
    start_daemon,
    status_rows,
    stop_daemon,
    wait_for,
)

BARS = 40
START = DATA_END - BARS * HOUR
EXPECTED = [START + i * HOUR for i in range(BARS)]
RUN_ID = "resilient"
TICKED = ("done", "resumed")
FAILED = ("error", "skipped")


def _args(speed: float, ttl: float, *more: str) -> list[str]:
    return ["--speed", str(speed), "--start", iso(START), "--run-id", RUN_ID, "--lease-ttl", str(ttl), *more]


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _ticked_once(url: str, *, faults: bool = False) -> None:
    """No bar ticked twice; without `faults`, every bar journalled as ticked. (A fault that hits a tick after
    its ledger transaction leaves the bar processed, as the ledger says, with an `error` row or, when the
    journal could not be written either, none: the ledger is the truth, see `agent.daemon.journal`.)"""
    counts = Counter(bar for bar, status, _ in journal_rows(url, RUN_ID) if status in TICKED)
    assert set(counts.values()) == {1} and set(counts) <= set(EXPECTED)
    assert faults or sorted(counts) == EXPECTED


def _finished(proc: object, log: Path, timeout: float = 180) -> None:
    wait_for(lambda: proc.poll() is not None, timeout, "the replay to finish")  # type: ignore[attr-defined]
    assert proc.returncode == 0, log.read_text()[-3000:]  # type: ignore[attr-defined]


def _terminate_mid_statement(url: str) -> int:
    """Terminate the daemon's PostgreSQL backends the moment one is busy (running a statement or inside a
    transaction), so that an operation is cut mid-flight, then all its others; how many were terminated.

    The brief's query (`datname = <db> AND pid <> pg_backend_pid()`), narrowed to the daemon's application
    name (the test's own `status` reads are not cut) and polled until a backend is busy."""
    query = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
        "AND pid <> pg_backend_pid() AND application_name = %s"
    )
    busy = query + " AND state IN ('active', 'idle in transaction')"
    args = (make_url(url).database, DAEMON_APP)
    with psycopg.connect(_plain(url), autocommit=True) as conn:
        cut = wait_for(
            lambda: len(conn.execute(busy, args).fetchall()), 30, "a busy daemon connection", interval=0.001
        )
        return int(cut) + len(conn.execute(query, args).fetchall())


def _terminate_until_a_wake_up_fails(url: str, attempts: int = 50) -> int:
    """Terminate the daemon's connections mid-statement, then wait for its next journalled wake-up; again
    until that one failed. Returns the journal's last id before the termination that made it fail."""
    for _ in range(attempts):
        mark = _last_journal_id(url)
        _terminate_mid_statement(url)
        after = wait_for(lambda mark=mark: _statuses_after(url, mark), 60, "the next wake-up")
        if after[0] in FAILED:
            return mark
    raise AssertionError(f"no wake-up failed after {attempts} terminations")


@contextmanager
def _frozen(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """The daemon stopped (SIGSTOP) for the duration: the database shows the state it left."""
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def _failed_at(url: str, bar: int) -> bool:
    return any(b == bar and status == "error" for b, status, _ in journal_rows(url, RUN_ID))


def _last_journal_id(url: str) -> int:
    with psycopg.connect(_plain(url)) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM daemon_ticks").fetchone()
        return int(row[0]) if row else 0


def _statuses_after(url: str, mark: int) -> list[str]:
    with psycopg.connect(_plain(url)) as conn:
        rows = conn.execute("SELECT status FROM daemon_ticks WHERE id > %s ORDER BY id", (mark,)).fetchall()
    return [r[0] for r in rows]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_postgres_connections_terminated_mid_run_trading_resumes_within_two_wake_ups(
    tmp_path: Path, pg_url: str
) -> None:
    folder = data_dir(tmp_path)
    log = tmp_path / "daemon.log"
    proc = start_daemon(folder, pg_url, log, *_args(3600 * 2, 15))
    try:
        wait_for(lambda: running(proc, log) and len(bars(pg_url, RUN_ID)) >= 5, 120, "five processed bars")
        mark = _terminate_until_a_wake_up_fails(pg_url)
        with _frozen(proc):
            shown = status_rows(pg_url)
        assert shown["state"] == "degraded", shown
        assert "closed the connection" in shown.get("last error", "") or "terminat" in shown["last error"]
        _finished(proc, log)
    finally:
        stop_daemon(proc)
    assert bars(pg_url, RUN_ID) == EXPECTED, "no bar lost"
    _ticked_once(pg_url, faults=True)
    after = _statuses_after(pg_url, mark)
    assert after[0] in FAILED and after[1] in TICKED, f"trading resumed at the next wake-up: {after[:5]}"
    assert status_rows(pg_url)["state"] == "stopped"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sqlite_locked_past_the_busy_timeout_the_scheduler_survives_and_catches_up(tmp_path: Path) -> None:
    folder = data_dir(tmp_path)
    db = folder / "tradegraph.db"
    url = f"sqlite:///{db}?timeout=0.5"  # the daemon's busy timeout: the lock below outlives it many times
    log = tmp_path / "daemon.log"
    # lease ttl 15 s: a heartbeat every 5 s, late (degraded) from 10 s on, dead (stalled) after 15 s
    proc = start_daemon(folder, url, log, *_args(3600 * 4, 15))
    try:
        wait_for(lambda: running(proc, log) and len(bars(url, RUN_ID)) >= 5, 120, "five processed bars")
        locker = sqlite3.connect(db, isolation_level=None, timeout=30)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            shown = wait_for(
                lambda: (s := status_rows(url))["state"] == "degraded" and s, 60, "status to say degraded"
            )
            assert "heartbeat" in shown.get("reason", ""), shown
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        _finished(proc, log)
    finally:
        stop_daemon(proc)
    assert b"database is locked" in log.read_bytes(), "the lock outlived the daemon's busy timeout"
    assert bars(url, RUN_ID) == EXPECTED, "the scheduler survived and caught up"
    _ticked_once(url, faults=True)
    assert status_rows(url)["state"] == "stopped"


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_tick_blocked_for_two_bar_intervals_is_stalled_and_catches_up(tmp_path: Path, pg_url: str) -> None:
    folder = data_dir(tmp_path)
    log = tmp_path / "daemon.log"
    proc = start_daemon(folder, pg_url, log, *_args(3600 * 4, 6))
    try:
        wait_for(lambda: running(proc, log) and len(bars(pg_url, RUN_ID)) >= 5, 120, "five processed bars")
        with psycopg.connect(_plain(pg_url)) as blocker:  # checkpoint writes wait; reads and the lease go on
            blocker.execute("LOCK TABLE checkpoints IN EXCLUSIVE MODE")
            shown = wait_for(
                lambda: (s := status_rows(pg_url))["state"] == "stalled" and s, 60, "status to say stalled"
            )
            assert "no tick has run for" in shown.get("reason", ""), shown
            assert running(proc, log)
            blocker.rollback()
        _finished(proc, log)
    finally:
        stop_daemon(proc)
    assert bars(pg_url, RUN_ID) == EXPECTED
    _ticked_once(pg_url)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_poisoned_checkpoint_is_discarded_after_three_failures_and_the_bar_re_run(tmp_path: Path) -> None:
    folder = data_dir(tmp_path)
    db = folder / "tradegraph.db"
    url = f"sqlite:///{db}"
    poisoned = EXPECTED[5]
    thread = tick_thread_id(RUN_ID, poisoned)
    cfg = settings(folder, url, symbols=["BTC/USDT"])
    engine, factory = open_db(url)
    try:  # five bars ticked, the sixth interrupted after `settle`, its checkpoint then corrupted
        with open_agent(
            cfg,
            run_id=RUN_ID,
            kind="daemon",
            strategy="sma_cross",
            params=SMA,
            factory=factory,
            start_ts=START,
            end_ts=DATA_END,
        ) as runner:
            assert [runner.tick(b).status for b in EXPECTED[:5]] == ["done"] * 5
            config = {"configurable": {"thread_id": thread}}
            initial = {"run_id": RUN_ID, "bar_ts": poisoned, "symbols": ["BTC/USDT"], "strategy": "sma_cross"}
            runner.graph.invoke(initial, config, interrupt_after=[names.SETTLE])
            assert runner.graph.get_state(config).next == (names.SCREEN,)
    finally:
        engine.dispose()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE checkpoints SET checkpoint = X'C1' WHERE thread_id = ?", (thread,))

    log = tmp_path / "daemon.log"
    proc = start_daemon(folder, url, log, *_args(3600 * 2, 9))
    try:
        wait_for(lambda: running(proc, log) and _failed_at(url, poisoned), 120, "the poisoned bar to fail")
        with _frozen(proc):
            shown = status_rows(url)
        assert shown["state"] == "degraded" and "ValueError" in shown.get("last error", ""), shown
        _finished(proc, log)
    finally:
        stop_daemon(proc)

    rows = [(status, reason) for bar, status, reason in journal_rows(url, RUN_ID) if bar == poisoned]
    assert [s for s, _ in rows] == ["error", "error", "error", "discarded", "done"], rows
    why = rows[3][1] or ""
    assert "after 3 failed attempts" in why and "ValueError" in why and "re-run from scratch" in why
    assert bars(url, RUN_ID) == EXPECTED
    with sqlite3.connect(db) as conn:
        assert not conn.execute("SELECT count(*) FROM checkpoints WHERE checkpoint = X'C1'").fetchone()[0]

    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    options = DaemonOptions(replay=True, speed=3600 * 50, start=iso(START), params=SMA, run_id=RUN_ID)
    assert Daemon(settings(folder, reference, symbols=["BTC/USDT"]), options).run().finished
    assert ledger(url, RUN_ID) == ledger(reference, RUN_ID), "the re-run bar is the undisturbed one"
