"""Clocks and triggers: simulated time runs `speed` times faster and stops at its end; closed bars follow
from now; the live cron trigger fires at each candle close plus the tick delay; replay fires every
bar/speed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.daemon.clock import ManualClock, SimulatedClock, SystemClock, last_closed_bar
from agent.daemon.scheduler import MIN_INTERVAL_S, cron_trigger, replay_trigger
from agent.errors import ConfigError

HOUR = 3_600_000


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_simulated_clock_runs_speed_times_faster_and_stops_at_the_end() -> None:
    real = FakeMonotonic()
    clock = SimulatedClock(10 * HOUR, speed=3600, end_ms=13 * HOUR, monotonic=real)
    assert clock.now_ms() == 10 * HOUR and not clock.finished
    real.t += 1.5  # one and a half real seconds = 90 market minutes
    assert clock.now_ms() == 10 * HOUR + 90 * 60_000
    assert last_closed_bar(clock.now_ms(), HOUR) == 10 * HOUR  # bar 10:00 closed at 11:00
    real.t += 100
    assert clock.now_ms() == 13 * HOUR and clock.finished
    with pytest.raises(ValueError):
        SimulatedClock(0, speed=0)


def test_closed_bars_and_other_clocks() -> None:
    assert last_closed_bar(11 * HOUR, HOUR) == 10 * HOUR  # exactly at the close
    assert last_closed_bar(11 * HOUR - 1, HOUR) == 9 * HOUR
    manual = ManualClock(5)
    manual.set(3)
    assert manual.now_ms() == 5  # never backwards
    assert SystemClock(lambda: 12.5).now_ms() == 12_500


@pytest.mark.parametrize(
    ("timeframe", "delay", "now", "expected"),
    [
        ("1h", 10, "2025-01-01 12:00:05", "2025-01-01 12:00:10"),
        ("1h", 10, "2025-01-01 12:00:11", "2025-01-01 13:00:10"),
        ("1h", 75.2, "2025-01-01 12:00:00", "2025-01-01 12:01:16"),
        ("1m", 3, "2025-01-01 12:00:04", "2025-01-01 12:01:03"),
        ("15m", 10, "2025-01-01 12:07:00", "2025-01-01 12:15:10"),
        ("4h", 10, "2025-01-01 05:00:00", "2025-01-01 08:00:10"),
        ("1d", 30, "2025-01-01 00:01:00", "2025-01-02 00:00:30"),
    ],
)
def test_cron_trigger_fires_at_candle_close_plus_delay(
    timeframe: str, delay: float, now: str, expected: str
) -> None:
    at = datetime.fromisoformat(now).replace(tzinfo=UTC)
    fire = cron_trigger(timeframe, delay).get_next_fire_time(None, at)
    assert fire == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_cron_trigger_refuses_a_delay_of_a_whole_bar() -> None:
    with pytest.raises(ConfigError, match="shorter than one 1m bar"):
        cron_trigger("1m", 60)


def test_replay_trigger_interval_is_bar_over_speed_with_a_floor() -> None:
    assert replay_trigger("1h", 3600).interval.total_seconds() == 1.0
    assert replay_trigger("1h", 3600 * 1e6).interval.total_seconds() == MIN_INTERVAL_S
