"""One daemon per database: the lease row is claimed by compare-and-swap, refused while its holder lives,
taken over when stale or when its local holder died, and a daemon that lost it learns so at its heartbeat.
Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from agent.daemon.clock import ManualClock
from agent.daemon.lease import Holder, Lease, LeaseHeld, LeaseLost, read_lease
from agent.db.session import open_db

T0 = 1_800_000_000_000


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_db(db_url)
    yield factory
    engine.dispose()


def _lease(factory: sessionmaker[Session], n: int, clock: ManualClock, *, host: str = "h1",
           alive: bool = True, ttl: float = 30.0) -> Lease:
    return Lease(factory, Holder(f"{host}:{100 + n}:x", host, 100 + n), ttl, clock=clock,
                 is_alive=lambda _pid: alive)


def test_a_second_holder_is_refused_with_one_line_naming_the_first(factory: sessionmaker[Session]) -> None:
    clock = ManualClock(T0)
    first = _lease(factory, 1, clock)
    first.acquire("run-a", "replay")
    clock.set(T0 + 2_500)
    with pytest.raises(LeaseHeld) as refused:
        _lease(factory, 2, clock).acquire("run-b", "replay")
    message = str(refused.value)
    assert "\n" not in message and "run run-a" in message and "pid 101 on h1" in message
    assert "heartbeat 2.5 s ago" in message
    info = read_lease(factory)
    assert info is not None and info.holder == "h1:101:x" and info.run_id == "run-a" and info.epoch == 1


def test_heartbeat_keeps_the_lease_and_release_frees_it(factory: sessionmaker[Session]) -> None:
    clock = ManualClock(T0)
    first = _lease(factory, 1, clock, ttl=10)
    first.acquire("run-a", "live")
    for step in range(1, 6):  # 25 s of regular heartbeats: older than the TTL in total, never stale
        clock.set(T0 + step * 5_000)
        first.heartbeat(last_bar_ts=step, next_tick_ms=T0 + 60_000)
        with pytest.raises(LeaseHeld):
            _lease(factory, 2, clock, ttl=10).acquire("run-b", "live")
    assert read_lease(factory).last_bar_ts == 5  # type: ignore[union-attr]
    assert first.release("SIGTERM") and not first.release("again")
    info = read_lease(factory)
    assert info is not None and info.holder is None and info.note == "SIGTERM"
    second = _lease(factory, 2, clock)
    second.acquire("run-b", "live")
    assert second.took_over is None and read_lease(factory).epoch == 2  # type: ignore[union-attr]


def test_a_stale_lease_is_taken_over_and_the_old_holder_learns_it(factory: sessionmaker[Session]) -> None:
    clock = ManualClock(T0)
    old = _lease(factory, 1, clock, ttl=30)
    old.acquire("run-a", "live")
    clock.set(T0 + 29_000)
    with pytest.raises(LeaseHeld):
        _lease(factory, 2, clock).acquire("run-a", "live")
    clock.set(T0 + 31_000)  # the holder went silent longer than its TTL
    new = _lease(factory, 2, clock)
    new.acquire("run-a", "live")
    assert new.took_over and new.took_over.startswith("stale: h1:101:x last beat 31.0 s ago")
    with pytest.raises(LeaseLost):
        old.heartbeat()
    assert not old.release("late")  # cannot free a lease it no longer holds
    assert read_lease(factory).holder == "h1:102:x"  # type: ignore[union-attr]
    new.heartbeat()


def test_a_dead_local_holder_is_taken_over_at_once_not_a_remote_one(factory: sessionmaker[Session]) -> None:
    clock = ManualClock(T0)
    _lease(factory, 1, clock).acquire("run-a", "replay")  # e.g. SIGKILLed: no release
    with pytest.raises(LeaseHeld):  # same pid check cannot be made for another host: wait for the TTL
        _lease(factory, 2, clock, host="h2", alive=False).acquire("run-a", "replay")
    with pytest.raises(LeaseHeld):  # the local holder is alive
        _lease(factory, 3, clock, alive=True).acquire("run-a", "replay")
    taker = _lease(factory, 4, clock, alive=False)
    taker.acquire("run-a", "replay")
    assert taker.took_over == "dead: h1:101:x (pid 101) no longer runs on this host"


def test_two_starters_racing_for_a_stale_lease_cannot_both_win(factory: sessionmaker[Session]) -> None:
    clock = ManualClock(T0)
    _lease(factory, 1, clock).acquire("run-a", "live")
    clock.set(T0 + 60_000)
    a, b = _lease(factory, 2, clock), _lease(factory, 3, clock)
    seen_a, seen_b = a.read(), b.read()  # both see the same stale row ...
    assert seen_a == seen_b and a.claimable(seen_a) and b.claimable(seen_b)  # type: ignore[arg-type]
    wins = [a.try_claim(seen_a.epoch, "run-a", "live"), b.try_claim(seen_b.epoch, "run-a", "live")]  # type: ignore[union-attr]
    assert wins == [True, False]  # ... but only the first compare-and-swap matches the epoch
    with pytest.raises(LeaseLost):
        b.heartbeat()
    a.heartbeat()


def test_concurrent_first_starts_elect_exactly_one(factory: sessionmaker[Session]) -> None:
    clock = ManualClock(T0)
    barrier = threading.Barrier(4)
    outcome: dict[int, str] = {}

    def start(n: int) -> None:
        lease = _lease(factory, n, clock)
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
