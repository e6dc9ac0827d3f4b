"""One writer per database: the lease row is claimed by compare-and-swap, refused while its holder lives,
taken over when stale (by the database's clock, whatever the starter's clock says) or when its local holder
died; a daemon that lost it learns so at its heartbeat, and writes nothing more to the ledger. `tradegraph
tick` takes the same lease. Each test runs on SQLite and on PostgreSQL (a heartbeat is made older by editing
the row, never by waiting)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from agent.daemon.clock import ManualClock
from agent.daemon.lease import Holder, Lease, LeaseHeld, LeaseLost, read_lease
from agent.daemon.tick_job import TickJob
from agent.db.models import DaemonLease
from agent.db.session import open_db, transaction

T0 = 1_800_000_000_000


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_db(db_url)
    yield factory
    engine.dispose()


def _lease(
    factory: sessionmaker[Session], n: int, *, host: str = "h1", alive: bool = True, ttl: float = 30.0
) -> Lease:
    return Lease(factory, Holder(f"{host}:{100 + n}:x", host, 100 + n), ttl, is_alive=lambda _pid: alive)


def _backdate(factory: sessionmaker[Session], seconds: float) -> None:
    """Make the lease's last heartbeat `seconds` older, as if its holder had been silent that long."""
    with transaction(factory) as session:
        older = DaemonLease.heartbeat_ms - int(seconds * 1000)
        session.execute(update(DaemonLease).values(heartbeat_ms=older))


def _seconds(pattern: str, text: str) -> float:
    """The number of seconds `pattern` (one group) finds in `text`."""
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in {text!r}"
    return float(found.group(1))


def test_a_second_holder_is_refused_with_one_line_naming_the_first(factory: sessionmaker[Session]) -> None:
    first = _lease(factory, 1)
    first.acquire("run-a", "replay")
    _backdate(factory, 2.5)
    with pytest.raises(LeaseHeld) as refused:
        _lease(factory, 2).acquire("run-b", "replay")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("another daemon holds this database's lease (run run-a")
    assert "pid 101 on h1" in message
    assert 2.5 <= _seconds(r"heartbeat (\d+\.\d) s ago", message) < 30  # measured by the database's clock
    info = read_lease(factory)
    assert info is not None and info.holder == "h1:101:x" and info.run_id == "run-a" and info.epoch == 1


def test_heartbeat_keeps_the_lease_and_release_frees_it(factory: sessionmaker[Session]) -> None:
    first = _lease(factory, 1, ttl=10)
    first.acquire("run-a", "live")
    for step in range(1, 6):  # 40 s of regular heartbeats: older than the TTL in total, never stale
        _backdate(factory, 8)
        first.heartbeat(last_bar_ts=step, next_tick_ms=T0 + 60_000)
        with pytest.raises(LeaseHeld):
            _lease(factory, 2, ttl=10).acquire("run-b", "live")
    assert read_lease(factory).last_bar_ts == 5  # type: ignore[union-attr]
    assert first.release("SIGTERM") and not first.release("again")
    info = read_lease(factory)
    assert info is not None and info.holder is None and info.note == "SIGTERM"
    second = _lease(factory, 2)
    second.acquire("run-b", "live")
    assert second.took_over is None and read_lease(factory).epoch == 2  # type: ignore[union-attr]


def test_a_stale_lease_is_taken_over_and_the_old_holder_learns_it(factory: sessionmaker[Session]) -> None:
    old = _lease(factory, 1, ttl=30)
    old.acquire("run-a", "live")
    _backdate(factory, 29)
    with pytest.raises(LeaseHeld):
        _lease(factory, 2).acquire("run-a", "live")
    _backdate(factory, 2)  # the holder went silent longer than its TTL
    new = _lease(factory, 2)
    new.acquire("run-a", "live")
    assert new.took_over and new.took_over.startswith("stale: h1:101:x last beat ")
    assert 31 <= _seconds(r"last beat (\d+\.\d) s ago \(ttl 30 s\)", new.took_over) < 60
    with pytest.raises(LeaseLost):
        old.heartbeat()
    assert not old.release("late")  # cannot free a lease it no longer holds
    assert read_lease(factory).holder == "h1:102:x"  # type: ignore[union-attr]
    new.heartbeat()


def test_a_dead_local_holder_is_taken_over_at_once_not_a_remote_one(factory: sessionmaker[Session]) -> None:
    _lease(factory, 1).acquire("run-a", "replay")  # e.g. SIGKILLed: no release
    with pytest.raises(LeaseHeld):  # same pid check cannot be made for another host: wait for the TTL
        _lease(factory, 2, host="h2", alive=False).acquire("run-a", "replay")
    with pytest.raises(LeaseHeld):  # the local holder is alive
        _lease(factory, 3, alive=True).acquire("run-a", "replay")
    taker = _lease(factory, 4, alive=False)
    taker.acquire("run-a", "replay")
    assert taker.took_over == "dead: h1:101:x (pid 101) no longer runs on this host"


def test_two_starters_racing_for_a_stale_lease_cannot_both_win(factory: sessionmaker[Session]) -> None:
    _lease(factory, 1).acquire("run-a", "live")
    _backdate(factory, 60)
    a, b = _lease(factory, 2), _lease(factory, 3)
    seen_a, seen_b = a.read(), b.read()  # both see the same stale row ...
    assert seen_a == seen_b and a.claimable(seen_a) and b.claimable(seen_b)  # type: ignore[arg-type]
    wins = [a.try_claim(seen_a.epoch, "run-a", "live"), b.try_claim(seen_b.epoch, "run-a", "live")]  # type: ignore[union-attr]
    assert wins == [True, False]  # ... but only the first compare-and-swap matches the epoch
    with pytest.raises(LeaseLost):
        b.heartbeat()
    a.heartbeat()


def test_a_claim_is_judged_in_the_update_not_by_the_starters_read(factory: sessionmaker[Session]) -> None:
    first = _lease(factory, 1)
    first.acquire("run-a", "live")
    _backdate(factory, 60)
    late = _lease(factory, 2)
    seen = late.read()  # the starter saw a stale lease ...
    assert seen is not None and late.claimable(seen)
    first.heartbeat()  # ... but its holder beat again before the claim: same epoch, fresh heartbeat
    assert not late.try_claim(seen.epoch, "run-b", "live")
    assert read_lease(factory).holder == "h1:101:x"  # type: ignore[union-attr]


def test_concurrent_first_starts_elect_exactly_one(factory: sessionmaker[Session]) -> None:
    barrier = threading.Barrier(4)
    outcome: dict[int, str] = {}

    def start(n: int) -> None:
        lease = _lease(factory, n)
        barrier.wait()
        try:
            lease.acquire(f"run-{n}", "live")
            outcome[n] = "won"
        except LeaseHeld:
            outcome[n] = "refused"

    threads = [threading.Thread(target=start, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcome.values()) == ["refused"] * 3 + ["won"]
    winner = next(n for n, v in outcome.items() if v == "won")
    assert read_lease(factory).holder == f"h1:{100 + winner}:x"  # type: ignore[union-attr]


def test_pid_alive_sees_live_dead_and_zombie_processes() -> None:
    import os
    import signal
    import subprocess
    import sys

    from agent.daemon.lease import pid_alive
    from tests.daemon.helpers import wait_for

    assert pid_alive(os.getpid())
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert not pid_alive(done.pid)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid)
        os.kill(child.pid, signal.SIGKILL)  # not reaped yet: a zombie, which is dead for the lease
        wait_for(lambda: not pid_alive(child.pid), 10, "the child to become a zombie")
    finally:
        child.kill()
        child.wait()


# ---- the database's clock, and fenced writes ---------------------------------------------------------------


def test_a_starter_whose_clock_runs_ten_minutes_ahead_cannot_take_a_live_lease(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from agent.daemon.clock import SystemClock

    live = Lease(factory, Holder("h1:101:x", "h1", 101), 30)
    live.acquire("run-a", "live")
    live.heartbeat()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 600)  # this host's clock is 10 minutes ahead
    monkeypatch.setattr(SystemClock, "now_ms", lambda _self: int(time.time() * 1000))
    starter = Lease(factory, Holder("h2:202:y", "h2", 202), 30)
    with pytest.raises(LeaseHeld):
        starter.acquire("run-b", "live")
    info = read_lease(factory)
    assert info is not None and info.holder == "h1:101:x" and info.epoch == 1
    live.heartbeat()  # the live daemon keeps its lease


@contextmanager
def _daemon_rig(
    tmp_path: Path, db_url: str
) -> Iterator[tuple[TickJob, ManualClock, Lease, sessionmaker[Session]]]:
    """The daemon's wake-up job (real graph, rule strategy, replayed data) writing through a held lease."""
    from agent.daemon.feed import CachedStore, CandleFeed
    from agent.daemon.plan import Window
    from agent.daemon.signals import StopSignal
    from agent.graph.factory import open_agent
    from agent.market.replay import ReplayExchange
    from agent.market.retry import RetryPolicy
    from agent.market.service import MarketDataService
    from tests.daemon.helpers import DATA_END, HOUR, SMA, data_dir, settings

    start = DATA_END - 60 * HOUR
    folder = data_dir(tmp_path)
    cfg = settings(folder, db_url)
    engine, factory = open_db(db_url)
    service = MarketDataService(
        ReplayExchange(folder), CachedStore(folder), RetryPolicy(max_retries=0, sleep=lambda _s: None)
    )
    feed = CandleFeed(service, cfg.symbols, "1h", start - 100 * HOUR, set_exchange_clock=True)
    clock = ManualClock(start)
    lease = Lease(factory, Holder("h1:101:x", "h1", 101), 30)
    lease.acquire("fenced", "replay")
    try:
        with open_agent(
            cfg,
            run_id="fenced",
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
                Window(start),
                factory=factory,
                stale_after_bars=2,
                max_bars=10,
                stop=StopSignal(),
                lease=lease,
            )
            yield job, clock, lease, factory
    finally:
        engine.dispose()


def test_a_writer_whose_lease_was_taken_writes_nothing_and_stops(tmp_path: Path, db_url: str) -> None:
    from tests.daemon.helpers import HOUR, journal_rows, ledger

    with _daemon_rig(tmp_path, db_url) as (job, clock, lease, factory):
        clock.set(clock.now_ms() + 3 * HOUR)
        assert job().ticked == 3
        before, journal_before = ledger(db_url, "fenced"), journal_rows(db_url, "fenced")
        assert len(before["balances"]) == 3
        _backdate(factory, 60)  # the daemon stalled past its TTL (a long GC pause, a suspended VM) ...
        other_engine, other_factory = open_db(db_url)  # ... and another process took the run over
        try:
            Lease(other_factory, Holder("h2:202:y", "h2", 202), 30).acquire("fenced", "replay")
        finally:
            other_engine.dispose()
        clock.set(clock.now_ms() + 3 * HOUR)
        job()  # the stalled daemon wakes up with three bars due
        assert job.stop.requested and job.stop.reason == "lease lost"
        assert ledger(db_url, "fenced") == before, "a writer that lost the lease wrote to the ledger"
        assert journal_rows(db_url, "fenced") == journal_before
        assert read_lease(factory).holder == "h2:202:y"  # type: ignore[union-attr]


def test_tick_takes_the_lease_so_a_second_concurrent_writer_is_refused(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agent.cli.main import app
    from tests.daemon.helpers import ledger

    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", db_url)
    engine, factory = open_db(db_url)
    try:
        daemon = Lease(factory, Holder("h2:202:y", "h2", 202), 30)
        daemon.acquire("paper-sma_cross-1h", "live")  # a daemon advances the run right now
        args = ["tick", "--strategy", "sma_cross", "--at", "2025-09-19 20:00"]
        refused = CliRunner().invoke(app, args)
        assert refused.exit_code == 1 and isinstance(refused.exception, LeaseHeld), refused.output
        assert "pid 202 on h2" in str(refused.exception) and "\n" not in str(refused.exception)
        assert ledger(db_url, "paper-sma_cross-1h")["balances"] == []
        daemon.release("stopped")
        done = CliRunner().invoke(app, args)
        assert done.exit_code == 0 and "bar 2025-09-19 20:00: done" in done.output, done.output
        assert len(ledger(db_url, "paper-sma_cross-1h")["balances"]) == 1
        info = read_lease(factory)  # the tick held the lease, and gave it back
        assert info is not None and info.holder is None and info.mode == "tick" and info.epoch == 2
    finally:
        engine.dispose()
