"""The words of a notification: times as UTC, free text inert (control characters and bidi overrides shown
as escapes), a digest naming every event."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.notify import BreakerTrip, DailySummary, HealthChange, KillSwitchChange, digest, message

BAR = 1_758_319_200_000


def test_free_text_is_inert_and_times_are_utc() -> None:
    trip = BreakerTrip("run\x1b[2J", BAR, "daily_loss_limit", "equity fell \x1b[31mred\u202e txet")
    shown = message(trip)
    assert shown.title == "tradegraph: breaker daily_loss_limit tripped"
    assert "\x1b" not in shown.body and "\u202e" not in shown.body
    assert "\\x1b[31mred\\u202e" in shown.body and "2025-09-19 22:00 UTC" in shown.body
    health = message(HealthChange("r", "stalled", "no tick\x07 for 3 bars", BAR))
    assert "\x07" not in health.body and health.title == "tradegraph: daemon stalled"


def test_summary_and_kill_switch_lines() -> None:
    summary = message(DailySummary("r", "2025-09-19", BAR, 10_234.5, -0.0123, 4, 1))
    assert summary.body.startswith("summary 2025-09-19: equity 10,234.50 (-1.23%), 4 fills, 1 breaker trips")
    assert message(KillSwitchChange("r", BAR, True)).title == "tradegraph: kill switch on"


@given(st.lists(st.text(max_size=40), min_size=2, max_size=20))
def test_a_digest_names_every_event_on_its_own_line(details: list[str]) -> None:
    events = [BreakerTrip("r", BAR + i, "max_drawdown", d) for i, d in enumerate(details)]
    shown = digest(events)
    assert shown.events == tuple(events)
    assert len(shown.body.split("\n")) == len(events)  # text inside an event never breaks a line
    assert shown.title == f"tradegraph: {len(events)} events (breaker)"
