"""The words of a notification: one message per event, or one digest naming several.

Contracts:
- `message(event)` and `digest(events)` are pure and return a `Message` (title, body, the events it
  carries). A digest names every event it carries, one line each, oldest first.
- Free text that may quote the model or an error (a breaker's detail, a health reason, a run id) goes
  through `agent.textsafe.for_plain_terminal`: control characters and bidirectional overrides arrive as
  visible escapes, never as effects on the reader's screen; line breaks in it become spaces, so each
  event stays one line of a digest.
- Times show as UTC minutes (`2025-09-19 22:00 UTC`), never epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.notify.events import (
    BreakerTrip,
    DailySummary,
    Event,
    FillEvent,
    HealthChange,
    KillSwitchChange,
)
from agent.textsafe import for_plain_terminal

APP = "tradegraph"


@dataclass(frozen=True)
class Message:
    """What a transport sends: a title, a body, and the events it tells of."""

    title: str
    body: str
    events: tuple[Event, ...]


def message(event: Event) -> Message:
    """The message of one event."""
    return Message(f"{APP}: {headline(event)}", line(event), (event,))


def digest(events: Sequence[Event]) -> Message:
    """One message naming every event in `events` (sent when the rate limit is reached)."""
    kinds = sorted({e.kind for e in events})
    title = f"{APP}: {len(events)} events ({', '.join(kinds)})"
    return Message(title, "\n".join(f"- {line(e)}" for e in events), tuple(events))


def headline(event: Event) -> str:
    """A few words: what happened."""
    match event:
        case FillEvent():
            return f"{event.side} {_safe(event.symbol)}"
        case BreakerTrip():
            return f"breaker {event.breaker} tripped"
        case KillSwitchChange():
            return f"kill switch {'on' if event.on else 'off'}"
        case HealthChange():
            return f"daemon {event.state}"
        case DailySummary():
            return f"daily summary {event.day}"


def line(event: Event) -> str:
    """One line with everything the event says."""
    run = _safe(event.run_id)
    match event:
        case FillEvent():
            return (
                f"fill: {event.side} {event.amount:g} {_safe(event.symbol)} at {event.price:g} "
                f"(fee {event.fee:g} {_safe(event.fee_currency)}), bar {utc(event.bar_ts)}, run {run}"
            )
        case BreakerTrip():
            detail = _safe(event.detail)
            return f"breaker {event.breaker} tripped at bar {utc(event.bar_ts)}: {detail}, run {run}"
        case KillSwitchChange():
            what = "on: no new entries" if event.on else "off: entries allowed again"
            return f"kill switch {what} (bar {utc(event.bar_ts)}), run {run}"
        case HealthChange():
            why = f": {_safe(event.reason)}" if event.reason else ""
            return f"daemon {event.state} at {utc(event.at_ms)}{why}, run {run}"
        case DailySummary():
            change = "n/a" if event.change is None else f"{event.change:+.2%}"
            return (
                f"summary {event.day}: equity {event.equity:,.2f} ({change}), {event.fills} fills, "
                f"{event.trips} breaker trips, bar {utc(event.bar_ts)}, run {run}"
            )


def utc(ms: int) -> str:
    """Epoch milliseconds as `2025-09-19 22:00 UTC`."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _safe(text: str) -> str:
    """Inert and on one line: control characters escaped, any line break or run of spaces one space."""
    return " ".join(for_plain_terminal(text).split())
