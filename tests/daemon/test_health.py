"""The health function, on hand-made leases and journals: a heartbeat alone is not health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from agent.daemon.health import RECENT_BARS, RunBars, assess, heartbeat_interval_s
from agent.daemon.journal import FAILED, JournalEntry, TickStatus
from agent.daemon.lease import LeaseInfo
from tests.daemon.helpers import HOUR

NOW = 1_758_000_000_000  # the reader's wall clock (and the database's clock at the read)
BAR = NOW - NOW % HOUR - HOUR  # the last bar closed at NOW
RUN = RunBars(HOUR)


def lease(**changes: Any) -> LeaseInfo:
    values: dict[str, Any] = {
        "epoch": 1,
        "holder": "h",
        "host": "host",
        "pid": 1,
        "run_id": "r",
        "mode": "live",
        "ttl_s": 30.0,
        "heartbeat_ms": NOW - 1_000,
        "clock_ms": NOW,
        "last_bar_ts": None,
        "next_tick_ms": None,
        "note": None,
        "read_ms": NOW,
    }
    values.update(changes)
    return LeaseInfo(**values)


def row(bar: int, status: TickStatus, reason: str | None = None, at: int | None = None) -> JournalEntry:
    when = datetime.fromtimestamp((bar + HOUR if at is None else at) / 1000, UTC)
    return JournalEntry("r", bar, status, reason, finished_at=when)


def ticks(last: int, n: int) -> list[JournalEntry]:
    """`n` done rows up to bar `last`, newest first, each finished at its bar's close."""
    return [row(last - i * HOUR, "done") for i in range(n)]


def test_no_lease_or_a_released_one_is_stopped() -> None:
    assert assess(None, [], NOW, RUN).state == "stopped"
    released = assess(lease(holder=None, note="SIGTERM"), ticks(BAR, 3), NOW, RUN)
    assert (released.state, released.reason) == ("stopped", "SIGTERM")


def test_fresh_heartbeat_and_ticks_on_time_is_alive() -> None:
    health = assess(lease(), ticks(BAR, 5), NOW, RUN)
    assert (health.state, health.reason, health.failures) == ("alive", None, 0)
    assert health.last_tick is not None and health.last_tick.bar_ts == BAR


def test_a_heartbeat_older_than_the_ttl_is_stalled() -> None:
    health = assess(lease(heartbeat_ms=NOW - 31_000), ticks(BAR, 3), NOW, RUN)
    assert health.state == "stalled" and "no heartbeat for 31.0 s" in (health.reason or "")


def test_a_late_heartbeat_within_the_ttl_is_degraded() -> None:
    late = NOW - int(2 * heartbeat_interval_s(30) * 1000) - 500
    health = assess(lease(heartbeat_ms=late), ticks(BAR, 3), NOW, RUN)
    assert health.state == "degraded" and "heartbeat 20.5 s old (renewed every 10 s)" in (health.reason or "")


def test_failing_ticks_are_degraded_with_the_last_error() -> None:
    rows = [
        row(BAR, "error", "OperationalError: gone"),
        row(BAR, "error", "OperationalError: first"),
        *ticks(BAR - HOUR, 3),
    ]
    health = assess(lease(), rows, NOW, RUN)
    assert (health.state, health.failures) == ("degraded", 2)
    assert health.last_error is not None and health.last_error.reason == "OperationalError: gone"
    assert (health.reason or "").startswith("2 failed attempts since the last tick: error at bar")


def test_a_failure_degrades_for_two_bars_after_trading_resumed() -> None:
    failed = row(BAR - 3 * HOUR, "error", "boom")
    recovered = [row(BAR - 3 * HOUR, "done"), failed, *ticks(BAR - 4 * HOUR, 3)]
    for newest in range(RECENT_BARS + 1):  # the failure is 0, 1, 2 bars behind the newest tick: degraded
        rows = ticks(BAR - (3 - newest) * HOUR, newest) + recovered
        health = assess(lease(clock_ms=BAR - (2 - newest) * HOUR), rows, BAR - (2 - newest) * HOUR, RUN)
        assert health.state == "degraded" and "trading resumed" in (health.reason or ""), newest
    rows = ticks(BAR, 3) + recovered  # three bars later: alive again, the last error still known
    health = assess(lease(), rows, NOW, RUN)
    assert health.state == "alive" and health.last_error == failed


def test_a_discarded_checkpoint_is_no_failure_of_its_own() -> None:
    rows = [row(BAR, "done"), row(BAR, "discarded", "checkpoint discarded"), *ticks(BAR - HOUR, 5)]
    assert assess(lease(), rows, NOW, RUN).state == "alive"


def test_live_no_tick_for_two_bar_intervals_is_stalled_but_catching_up_is_not() -> None:
    old = ticks(BAR - 3 * HOUR, 3)  # the last tick: bar BAR-3h, closed 3 bars before NOW's last close
    health = assess(lease(clock_ms=None), old, NOW, RUN)
    assert health.state == "stalled" and "no tick has run for" in (health.reason or "")
    catching_up = [row(BAR - 3 * HOUR, "done", at=NOW - 5_000), *old[1:]]  # written 5 s ago
    assert assess(lease(), catching_up, NOW, RUN).state == "alive"


def test_replay_stall_is_judged_on_the_daemons_clock() -> None:
    written = NOW - 60_000  # a minute of wall time ago
    rows = [row(BAR - 10 * HOUR, "done", at=written), *ticks(BAR - 11 * HOUR, 3)]
    on_time = lease(mode="replay", clock_ms=BAR - 9 * HOUR + 1)  # the replay clock: just past its close
    assert assess(on_time, rows, NOW, RUN).state == "alive"
    behind = lease(mode="replay", clock_ms=BAR - 6 * HOUR)  # three bars of replay time later
    health = assess(behind, rows, NOW, RUN)
    assert health.state == "stalled" and "no tick has run for 3.0 bars" in (health.reason or "")
    fresh = [row(BAR - 10 * HOUR, "done", at=NOW - 1_000), *rows[1:]]  # but ticks are still being written
    assert assess(behind, fresh, NOW, RUN).state == "alive"


def test_before_the_first_tick_the_runs_first_bar_counts() -> None:
    assert assess(lease(), [], NOW, RunBars(HOUR, first_bar_ms=BAR)).state == "alive"
    assert assess(lease(), [], NOW, RunBars(HOUR, first_bar_ms=BAR - 3 * HOUR)).state == "stalled"


def test_the_ledgers_last_bar_counts_when_the_journal_has_no_tick() -> None:
    started_elsewhere = RunBars(
        HOUR, first_bar_ms=BAR - 30 * HOUR, processed_ms=BAR
    )  # ticked without a journal
    assert assess(lease(), [], NOW, started_elsewhere).state == "alive"


def test_failing_for_many_bars_is_degraded_not_stalled_while_attempts_are_journalled() -> None:
    failing = [row(BAR, "error", "OperationalError: down", at=NOW - 1_000) for _ in range(5)]
    rows = failing + ticks(BAR - 5 * HOUR, 3)
    health = assess(lease(), rows, NOW, RUN)
    assert health.state == "degraded" and health.failures == 5
    quiet = [row(BAR, "error", "OperationalError: down", at=NOW - 3 * HOUR)] + ticks(BAR - 5 * HOUR, 3)
    assert assess(lease(), quiet, NOW, RUN).state == "stalled"  # nothing journalled for three hours


statuses = st.sampled_from(["done", "resumed", "already_done", "skipped", "error", "discarded"])


@given(
    st.lists(st.tuples(st.integers(0, 20), statuses), max_size=30),
    st.integers(0, 40_000),
    st.sampled_from(["live", "replay"]),
)
def test_alive_never_hides_a_recent_failure_or_a_late_heartbeat(
    raw: list[tuple[int, TickStatus]], age_ms: int, mode: str
) -> None:
    rows = [row(BAR - back * HOUR, status) for back, status in raw]
    health = assess(lease(heartbeat_ms=NOW - age_ms, mode=mode), rows, NOW, RUN)
    if health.state == "alive":
        assert age_ms <= 2 * heartbeat_interval_s(30) * 1000
        newest = max((r.bar_ts for r in rows), default=BAR)
        assert not [r for r in rows if r.status in FAILED and r.bar_ts >= newest - RECENT_BARS * HOUR]
    if age_ms > 30_000:
        assert health.state == "stalled"
