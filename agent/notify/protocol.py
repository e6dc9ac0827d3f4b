"""The seams of notifications: who accepts events (`Notifier`) and who sends a message (`Transport`).

Contracts:
- `Notifier.notify(event)` never blocks on the network and never raises: the daemon calls it from a tick.
  `close(timeout_s)` stops taking events, sends what is waiting (within the rate limit) and returns True
  when everything was handed to the transport in time.
- `Transport.deliver(message)` sends one message and may block (it runs on the notifier's own thread);
  it returns False or raises when the message did not get through.
- Shipped implementations: `agent.notify.dispatcher.QueuedNotifier` (a bounded queue and one sending
  thread, rate-limited, coalescing into digests) over `agent.notify.apprise_transport.AppriseTransport`;
  fakes for tests in `agent.testing.notify`.
"""

from __future__ import annotations

from typing import Protocol

from agent.notify.events import Event
from agent.notify.text import Message


class Notifier(Protocol):
    """Takes events from the daemon (see the module contract)."""

    def notify(self, event: Event) -> None: ...

    def close(self, timeout_s: float) -> bool: ...


class Transport(Protocol):
    """Sends one message somewhere (see the module contract)."""

    def deliver(self, message: Message) -> bool: ...
