"""A sliding-window rate limit: at most `limit` messages in any `window_s` seconds.

Contracts:
- `try_acquire()` takes a slot when one is free (True) and records its time; `wait_s()` is how long until
  the next slot frees (0 when one is free). Not thread-safe: one sender thread owns it.
- The clock is injected (`Clock`): `MonotonicClock` in production; a test clock whose `wait` advances time
  instead of sleeping makes the limit testable without sleeps.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Protocol


class Clock(Protocol):
    """Time for the rate limit: `now()` in seconds; `wait(seconds, wake)` returns early when `wake` is set."""

    def now(self) -> float: ...

    def wait(self, seconds: float, wake: threading.Event) -> None: ...


class MonotonicClock:
    """The process's monotonic clock; `wait` blocks on `wake` for up to `seconds`."""

    def now(self) -> float:
        """Seconds of `time.monotonic`."""
        return time.monotonic()

    def wait(self, seconds: float, wake: threading.Event) -> None:
        """Block until `seconds` passed or `wake` is set."""
        wake.wait(max(0.0, seconds))


class SlidingWindow:
    """At most `limit` acquisitions in any `window_s` seconds of `clock`."""

    def __init__(self, limit: int, clock: Clock, window_s: float = 60.0) -> None:
        if limit < 1:
            raise ValueError(f"rate limit must be at least 1 (got {limit})")
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._sent: deque[float] = deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free."""
        self._expire()
        if len(self._sent) >= self.limit:
            return False
        self._sent.append(self.clock.now())
        return True

    def wait_s(self) -> float:
        """Seconds until a slot is free."""
        self._expire()
        if len(self._sent) < self.limit:
            return 0.0
        return max(0.0, self._sent[0] + self.window_s - self.clock.now())

    def _expire(self) -> None:
        now = self.clock.now()
        while self._sent and self._sent[0] + self.window_s <= now:  # the same sum as `wait_s`
            self._sent.popleft()
