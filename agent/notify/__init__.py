"""Notifications: fills, breaker trips, the kill switch, the daemon's health and a daily summary, sent
through Apprise URLs, rate-limited, never blocking a tick, secrets masked.

The daemon (`agent.daemon.alerts`) finds the events in the ledger and hands them to a `Notifier`; this
package only formats and sends them and imports nothing but the settings and text safety.

    events (typed records) → text (message / digest) → dispatcher (queue, rate limit) → transport (Apprise)
"""

from __future__ import annotations

from agent.config import NotifySettings
from agent.notify.dispatcher import NotifyStats, QueuedNotifier
from agent.notify.events import (
    BREAKERS,
    Breaker,
    BreakerTrip,
    DailySummary,
    Event,
    FillEvent,
    HealthChange,
    HealthTurn,
    KillSwitchChange,
)
from agent.notify.protocol import Notifier, Transport
from agent.notify.secrets import url_secrets
from agent.notify.text import Message, digest, message

__all__ = [
    "BREAKERS",
    "Breaker",
    "BreakerTrip",
    "DailySummary",
    "Event",
    "FillEvent",
    "HealthChange",
    "HealthTurn",
    "KillSwitchChange",
    "Message",
    "Notifier",
    "NotifyStats",
    "QueuedNotifier",
    "Transport",
    "digest",
    "make_notifier",
    "message",
    "url_secrets",
]


def make_notifier(settings: NotifySettings) -> QueuedNotifier | None:
    """The Apprise notifier the settings ask for; None when no URL is configured (notifications off)."""
    if not settings.urls:
        return None
    from agent.notify.apprise_transport import AppriseTransport

    urls = [u.get_secret_value() for u in settings.urls]
    return QueuedNotifier(
        AppriseTransport(urls, settings.timeout_s),
        rate_per_minute=settings.rate_per_minute,
        kinds=settings.events,
        queue_size=settings.queue_size,
        secrets=[s for u in urls for s in url_secrets(u)],
    )
