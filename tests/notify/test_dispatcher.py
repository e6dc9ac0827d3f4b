"""The notifier: one message per event through Apprise's JSON target, a burst beyond the rate limit as one
digest naming every event, failures counted and logged without secrets, and never a blocked caller."""

from __future__ import annotations

import io
import logging
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import NOTIFY_KINDS, NotifySettings, Settings
from agent.daemon.logging import configured_secrets, setup_logging
from agent.notify import FillEvent, Message, QueuedNotifier, make_notifier
from agent.notify.apprise_transport import AppriseTransport
from agent.notify.text import line
from agent.testing.notify import RecordingTransport, StepClock
from tests.notify.receiver import JsonReceiver

BAR = 1_758_319_200_000  # 2025-09-19 22:00 UTC
TOKEN = "s3cr3t-T0ken-4242"


def fill(i: int) -> FillEvent:
    return FillEvent(
        "run-1", "BTC/USDT", BAR + i * 3_600_000, "buy", 0.001 * (i + 1), 100.0 + i, 0.01, "USDT"
    )


class Timed:
    """A transport that notes the clock's time of every message."""

    def __init__(self, inner: AppriseTransport | RecordingTransport, clock: StepClock) -> None:
        self.inner, self.clock = inner, clock
        self.times: list[float] = []

    def deliver(self, message: Message) -> bool:
        self.times.append(self.clock.now())
        return self.inner.deliver(message)


def test_each_event_is_one_json_message_through_apprise() -> None:
    with JsonReceiver() as receiver:
        notifier = make_notifier(NotifySettings(urls=[receiver.url()], rate_per_minute=100))
        assert notifier is not None
        for i in range(3):
            notifier.notify(fill(i))
        assert notifier.flush(30)
        assert notifier.close(5)
    assert [p["message"] for p in receiver.payloads] == [line(fill(i)) for i in range(3)]
    assert receiver.payloads[0]["title"] == "tradegraph: buy BTC/USDT"
    assert notifier.stats().delivered_events == 3 and notifier.stats().digests == 0


def test_no_url_means_no_notifier() -> None:
    assert make_notifier(NotifySettings()) is None


def test_a_burst_beyond_the_rate_limit_arrives_as_one_digest_naming_every_event() -> None:
    clock = StepClock()
    with JsonReceiver() as receiver:
        transport = Timed(AppriseTransport([receiver.url()]), clock)
        notifier = QueuedNotifier(transport, rate_per_minute=3, kinds=NOTIFY_KINDS, clock=clock, start=False)
        for i in range(10):
            notifier.notify(fill(i))
        notifier.start()
        assert notifier.flush(30)
        notifier.close(5)
    messages = [p["message"] for p in receiver.payloads]
    assert messages[:3] == [line(fill(i)) for i in range(3)]
    assert len(messages) == 4  # three within the limit, then one digest
    assert messages[3].splitlines() == [f"- {line(fill(i))}" for i in range(3, 10)]
    assert receiver.payloads[3]["title"] == "tradegraph: 7 events (fill)"
    assert transport.times == [0.0, 0.0, 0.0, 60.0]  # the digest waited for the first slot to free
    stats = notifier.stats()
    assert (stats.accepted, stats.delivered_events, stats.messages, stats.digests) == (10, 10, 4, 1)


@settings(max_examples=40, deadline=None)
@given(
    limit=st.integers(1, 6),
    batches=st.lists(st.tuples(st.integers(0, 12), st.floats(0, 90)), min_size=1, max_size=6),
)
def test_every_event_is_delivered_once_in_order_and_no_window_exceeds_the_limit(
    limit: int, batches: list[tuple[int, float]]
) -> None:
    clock = StepClock()
    transport = Timed(RecordingTransport(), clock)
    notifier = QueuedNotifier(transport, rate_per_minute=limit, kinds=NOTIFY_KINDS, clock=clock)
    sent: list[FillEvent] = []
    for size, gap in batches:
        for _ in range(size):
            event = fill(len(sent))
            sent.append(event)
            notifier.notify(event)
        assert notifier.flush(30)
        clock.advance(gap)
    assert notifier.close(5)
    inner = transport.inner
    assert isinstance(inner, RecordingTransport)
    delivered = [e for m in inner.messages for e in m.events]
    assert delivered == sent  # none lost, none twice, in order
    times = transport.times
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u - t < 60.0 - 1e-9) <= limit  # (float rounding at 60 s)


def test_a_failing_receiver_is_counted_and_logged_without_the_urls_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with JsonReceiver(status=500) as receiver:
        url = receiver.url(f"hooks/{TOKEN}")
        cfg = Settings(notify={"urls": [url]})
        stream = io.StringIO()
        root = logging.getLogger()
        level = root.level
        handlers = setup_logging("text", None, configured_secrets(cfg), stream=stream)
        try:
            notifier = make_notifier(cfg.notify)
            assert notifier is not None
            notifier.notify(fill(0))
            assert notifier.flush(30)
            notifier.close(5)
            logging.getLogger("tradegraph.test").warning("posting to %s failed", url)
        finally:
            for handler in handlers:
                handler.close()
                root.removeHandler(handler)
            root.setLevel(level)
    stats = notifier.stats()
    assert (stats.failed_messages, stats.failed_events, stats.delivered_events) == (1, 1, 0)
    text = stream.getvalue()
    assert "notification not sent" in text and "posting to *** failed" in text
    assert TOKEN not in text
    assert all(TOKEN not in r.getMessage() for r in caplog.records if r.name == "tradegraph.notify")


def test_notify_never_waits_for_a_hung_receiver_and_a_full_queue_is_counted() -> None:
    hold = threading.Event()
    transport = RecordingTransport(hold=hold)
    notifier = QueuedNotifier(transport, rate_per_minute=600, kinds=NOTIFY_KINDS, queue_size=50)
    try:
        notifier.notify(fill(0))  # taken by the sender, which then hangs in deliver
        for i in range(1, 200):
            notifier.notify(fill(i))  # returns at once although nothing can be sent
        stats = notifier.stats()
        assert stats.accepted + stats.overflowed == 200 and stats.overflowed >= 100  # <= 2 queues full
        assert not notifier.close(0.05)  # the sender is still stuck: close gives up, and says so
    finally:
        hold.set()


def test_kinds_not_configured_are_filtered() -> None:
    transport = RecordingTransport()
    notifier = QueuedNotifier(transport, rate_per_minute=10, kinds=["breaker"])
    notifier.notify(fill(0))
    assert notifier.flush(5) and notifier.close(5)
    assert transport.messages == [] and notifier.stats().filtered == 1
