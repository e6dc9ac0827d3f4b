"""Clocks for the daemon: what "now" is, and so which bars are closed and due.

The daemon never reads the time itself: it asks a `Clock`. Live mode uses `SystemClock` (wall time); replay
mode uses `SimulatedClock`, whose now runs `speed` times faster than real time from a start instant and
stops at an end instant. Everything else (which bars are closed, staleness, catch-up) is the same code.

Contracts:
- `now_ms()` is milliseconds since the epoch, UTC, never decreasing for a given clock.
- A bar with open time t is closed at now when t + timeframe <= now (`last_closed_bar`). Bars open on the
  timeframe's grid (`agent.market.candles.grid_origin_ms`: epoch multiples, Mondays for weekly bars).
- `SimulatedClock` takes its real-time source (`monotonic`) as an argument, so tests drive it by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from agent.market.candles import TIMEFRAME_MS, grid_origin_ms

_TIMEFRAME_OF_MS = {ms: name for name, ms in TIMEFRAME_MS.items()}


class Clock(Protocol):
    """The daemon's notion of now."""

    def now_ms(self) -> int:
        """Milliseconds since the epoch (UTC)."""
        ...


class SystemClock:
    """Wall-clock time (live mode)."""

    def __init__(self, time_fn: Callable[[], float] = time.time) -> None:
        self._time = time_fn

    def now_ms(self) -> int:
        """The wall clock in ms."""
        return int(self._time() * 1000)


class SimulatedClock:
    """Market time that runs `speed` times faster than real time, from `start_ms`, capped at `end_ms`.

    With `speed = 3600` one hour of market time passes per real second.
    """

    def __init__(
        self,
        start_ms: int,
        speed: float,
        end_ms: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start_ms = int(start_ms)
        self.end_ms = end_ms
        self.speed = float(speed)
        self._monotonic = monotonic
        self._t0 = monotonic()

    def now_ms(self) -> int:
        """The simulated time (never past `end_ms`)."""
        now = self.start_ms + int((self._monotonic() - self._t0) * 1000.0 * self.speed)
        return now if self.end_ms is None else min(now, self.end_ms)

    @property
    def finished(self) -> bool:
        """True once the simulated time reached `end_ms`."""
        return self.end_ms is not None and self.now_ms() >= self.end_ms


class ManualClock:
    """A clock that only moves when told to (tests, benchmarks)."""

    def __init__(self, now_ms: int) -> None:
        self._now = int(now_ms)

    def now_ms(self) -> int:
        """The time last set."""
        return self._now

    def set(self, now_ms: int) -> None:
        """Move the clock (never backwards)."""
        self._now = max(self._now, int(now_ms))


def floor_bar(ms: int, tf_ms: int) -> int:
    """Open time of the bar containing `ms`."""
    origin = grid_origin_ms(_TIMEFRAME_OF_MS.get(tf_ms, ""))
    return origin + (ms - origin) // tf_ms * tf_ms


def last_closed_bar(now_ms: int, tf_ms: int) -> int:
    """Open time of the latest bar that is closed at `now_ms` (its close, open + tf, is <= now)."""
    return floor_bar(now_ms, tf_ms) - tf_ms
