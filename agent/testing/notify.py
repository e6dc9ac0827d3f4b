"""Test fakes for notifications: a `Notifier` that records events, a `Transport` that records messages
(or refuses them, or holds them until released), and a clock that makes the rate limit testable.

Contracts:
- `RecordingNotifier` implements `agent.notify.Notifier`: `notify` appends the event (thread-safe) and
  never blocks; `close` returns True.
- `RecordingTransport` implements `agent.notify.Transport`: `deliver` records the message and returns
  `not refuse`; with `hold` given, it first waits until that event is set (a receiver that hangs).
  `delivered` is set after each delivery attempt, for waiting without sleeps.
- `StepClock` implements `agent.notify.ratelimit.Clock`: `now()` is a counter of seconds that only
  `wait(seconds, wake)` (or `advance`) moves forward, at once. Every `wait` is recorded in `waits`.
"""

from __future__ import annotations

import threading

from agent.notify.events import Event
from agent.notify.text import Message


class RecordingNotifier:
    """Keeps every event it is given, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Event] = []
        self.closed = False

    def notify(self, event: Event) -> None:
        """Record `event`."""
        with self._lock:
            self.events.append(event)

    def close(self, timeout_s: float) -> bool:
        """Mark closed."""
        self.closed = True
        return True


class RecordingTransport:
    """Keeps every message it is asked to deliver (see the module contract)."""

    def __init__(self, refuse: bool = False, hold: threading.Event | None = None) -> None:
        self.refuse = refuse
        self.hold = hold
        self.messages: list[Message] = []
        self.delivered = threading.Event()
        self._lock = threading.Lock()

    def deliver(self, message: Message) -> bool:
        """Record `message` (after `hold` is set, if given); True unless refusing."""
        if self.hold is not None:
            self.hold.wait()
        with self._lock:
            self.messages.append(message)
        self.delivered.set()
        return not self.refuse


class StepClock:
    """Seconds that move only when waited for (see the module contract)."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        """The current fake time."""
        with self._lock:
            return self.t

    def wait(self, seconds: float, wake: threading.Event) -> None:
        """Advance by `seconds` at once (unless `wake` is set)."""
        if wake.is_set():
            return
        self.advance(seconds)
        self.waits.append(seconds)

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        with self._lock:
            self.t += max(0.0, seconds)
