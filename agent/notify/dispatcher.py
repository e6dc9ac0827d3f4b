"""The notifier the daemon uses: a bounded queue drained by one sending thread, rate-limited by digests.

    notify(event) ── queue (≤ queue_size) ── sender thread ── one message per event, within the limit
                                                          └── over the limit: wait for a slot, then one
                                                              digest naming every event waiting

Contracts:
- `notify` only appends to the queue under a lock: it never waits for the network and never raises.
  Events of kinds not in `kinds` are counted as filtered. An event that finds the queue full is counted
  (`overflowed`) and logged, never silently lost.
- At most `rate_per_minute` messages go out in any 60 s of the clock. While a slot is free each event is
  its own message; when none is, the sender waits for the next slot and sends the events waiting by then
  (those of the batch and any queued meanwhile) as one digest (`agent.notify.text.digest`). So no event is
  dropped for the rate limit, and a burst costs one message beyond the limit's slots.
- A message that the transport refuses (False) or that raises is counted (`failed_messages`,
  `failed_events`) and logged with every configured secret masked; the sender goes on with the next.
- `flush(timeout_s)` waits until everything queued was handed to the transport (tests use it instead of
  sleeping); `close(timeout_s)` stops accepting, sends what waits (still within the limit) and joins the
  thread; if that takes longer, the sender is told to give up and the unsent events are counted and
  logged (`unsent`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.config import NotifyKind
from agent.notify.events import Event
from agent.notify.protocol import Transport
from agent.notify.ratelimit import Clock, MonotonicClock, SlidingWindow
from agent.notify.secrets import masked
from agent.notify.text import Message, digest, message

log = logging.getLogger("tradegraph.notify")


@dataclass(frozen=True)
class NotifyStats:
    """What the notifier did so far."""

    accepted: int = 0
    filtered: int = 0
    overflowed: int = 0
    late: int = 0
    """Events notified after `close` (not sent)."""
    messages: int = 0
    """Messages handed to the transport (digests included)."""
    digests: int = 0
    delivered_events: int = 0
    failed_messages: int = 0
    failed_events: int = 0
    unsent: int = 0
    """Events still waiting when `close` gave up."""


class QueuedNotifier:
    """A `Notifier` over a `Transport` (see the module contract)."""

    def __init__(
        self,
        transport: Transport,
        *,
        rate_per_minute: int,
        kinds: Iterable[NotifyKind],
        queue_size: int = 1000,
        clock: Clock | None = None,
        secrets: Sequence[str] = (),
        start: bool = True,
    ) -> None:
        self.transport = transport
        self.kinds = frozenset(kinds)
        self.queue_size = max(1, int(queue_size))
        self.clock = clock or MonotonicClock()
        self.limit = SlidingWindow(rate_per_minute, self.clock)
        self._secrets = tuple(secrets)
        self._cond = threading.Condition()
        self._pending: deque[Event] = deque()
        self._busy = False
        self._closing = False
        self._give_up = threading.Event()
        self._counts: dict[str, int] = dict.fromkeys(NotifyStats.__dataclass_fields__, 0)
        self._thread = threading.Thread(target=self._run, name="tradegraph-notify", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Start the sending thread (done by the constructor unless `start=False`)."""
        self._thread.start()

    def notify(self, event: Event) -> None:
        """Queue `event` (see the module contract): never blocks on sending, never raises."""
        try:
            with self._cond:
                if event.kind not in self.kinds:
                    self._count("filtered")
                elif self._closing:
                    self._count("late")
                elif len(self._pending) >= self.queue_size:
                    self._count("overflowed")
                    log.warning(
                        "notification queue full (%d): a %s event was not queued",
                        self.queue_size,
                        event.kind,
                        extra={"event": "notify_overflow"},
                    )
                else:
                    self._pending.append(event)
                    self._count("accepted")
                    self._cond.notify_all()
        except Exception as e:  # noqa: BLE001 - a notification never breaks the caller
            log.warning("cannot queue a notification: %s", e, extra={"event": "notify_error"})

    def stats(self) -> NotifyStats:
        """The counters so far."""
        with self._cond:
            return NotifyStats(**self._counts)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every queued event was handed to the transport; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout_s)

    def close(self, timeout_s: float) -> bool:
        """Stop accepting, send what waits, join the thread (see the module contract)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if not self._thread.is_alive():
            return True
        self._give_up.set()
        with self._cond:
            waiting = len(self._pending)
        log.warning(
            "notifications still being sent after %.1f s (%d events queued); giving up on them",
            timeout_s,
            waiting,
            extra={"event": "notify_unsent", "unsent": waiting},
        )
        return False

    # ---- the sending thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending) or self._closing)
                if not self._pending:
                    return
                batch = list(self._pending)
                self._pending.clear()
                self._busy = True
            try:
                self._send(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _send(self, batch: list[Event]) -> None:
        """Each event alone while slots are free; then the rest, and what queued meanwhile, as a digest."""
        sent = 0
        while sent < len(batch) and self.limit.try_acquire():
            self._deliver(message(batch[sent]))
            sent += 1
        rest = batch[sent:]
        if not rest:
            return
        while not self._give_up.is_set() and not self.limit.try_acquire():
            self.clock.wait(self.limit.wait_s(), self._give_up)
        with self._cond:
            rest += self._pending
            self._pending.clear()
            if self._give_up.is_set():
                self._count("unsent", len(rest))
                return
        self._deliver(digest(rest) if len(rest) > 1 else message(rest[0]))

    def _deliver(self, msg: Message) -> None:
        try:
            ok = bool(self.transport.deliver(msg))
            error = None if ok else "the transport refused it"
        except Exception as e:  # noqa: BLE001 - logged and counted, the sender goes on
            ok, error = False, f"{type(e).__name__}: {e}"
        with self._cond:
            self._count("messages")
            self._count("digests", int(len(msg.events) > 1))
            self._count("delivered_events" if ok else "failed_events", len(msg.events))
            self._count("failed_messages", int(not ok))
        if not ok:
            n = len(msg.events)
            log.warning(
                "notification not sent (%s, %d event%s): %s",
                masked(msg.title, self._secrets),
                n,
                "" if n == 1 else "s",
                masked(str(error), self._secrets),
                extra={"event": "notify_failed"},
            )

    def _count(self, name: str, n: int = 1) -> None:
        self._counts[name] += n
