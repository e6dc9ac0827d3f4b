"""What the daemon notifies, read from the ledger: a breaker trip once per spell, the kill switch on and
off, one daily summary per day at the configured hour, nothing again after a restart, health changes."""

from __future__ import annotations

from pathlib import Path

from agent.daemon.alerts import DaemonAlerts, next_summary_ms
from agent.daemon.health import Health, HealthState
from agent.db.models import BalanceSnapshot, RiskEvent
from agent.db.session import open_db, transaction
from agent.ledger import start_run
from agent.notify import BreakerTrip, DailySummary, HealthChange, KillSwitchChange
from agent.testing.notify import RecordingNotifier

HOUR = 3_600_000
DAY0 = 1_758_240_000_000  # 2025-09-19 00:00 UTC


def _bar(factory: object, bar_ts: int, equity: float, kinds: tuple[str, ...] = ()) -> None:
    with transaction(factory) as session:  # type: ignore[arg-type]
        session.add(BalanceSnapshot(run_id="r", bar_ts=bar_ts, cash=equity, equity=equity, fees_paid=0.0))
        for kind in kinds:
            for symbol in ("BTC/USDT", "ETH/USDT"):
                session.add(
                    RiskEvent(run_id="r", bar_ts=bar_ts, symbol=symbol, kind=kind, detail=f"{kind} on")
                )


def test_trips_kill_switch_and_summaries_come_from_the_ledger_once(tmp_path: Path) -> None:
    engine, factory = open_db(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        start_run(factory, "r", kind="daemon", strategy="sma_cross", symbols=["BTC/USDT"], timeframe="1h")
        notifier = RecordingNotifier()
        alerts = DaemonAlerts(
            notifier, factory, "r", tf_ms=HOUR, first_bar_ms=DAY0 + 20 * HOUR, summary_hour_utc=0
        )
        spells = {21: ("max_drawdown",), 22: ("max_drawdown", "kill_switch"), 23: ("max_drawdown",)}
        for h in range(20, 26):  # 20:00 on day 0 to 01:00 on day 1
            _bar(factory, DAY0 + h * HOUR, 10_000 - h, spells.get(h, ()))
        alerts.after_wake()
        _bar(factory, DAY0 + 26 * HOUR, 9_000, ("max_drawdown",))
        alerts.after_wake()
        alerts.after_wake()  # nothing new: nothing sent
        got = notifier.events
        assert got == [
            BreakerTrip("r", DAY0 + 21 * HOUR, "max_drawdown", "max_drawdown on"),
            KillSwitchChange("r", DAY0 + 22 * HOUR, True),
            KillSwitchChange("r", DAY0 + 23 * HOUR, False),
            DailySummary("r", "2025-09-19", DAY0 + 23 * HOUR, 9_977.0, 9_977 / 9_980 - 1, 0, 1),
            BreakerTrip("r", DAY0 + 26 * HOUR, "max_drawdown", "max_drawdown on"),
        ]
        restarted = RecordingNotifier()
        again = DaemonAlerts(
            restarted, factory, "r", tf_ms=HOUR, first_bar_ms=DAY0 + 20 * HOUR, summary_hour_utc=0
        )
        _bar(factory, DAY0 + 27 * HOUR, 9_000, ("max_drawdown",))  # still on: no new trip after a restart
        again.after_wake()
        assert restarted.events == []
    finally:
        engine.dispose()


def test_next_summary_is_strictly_after() -> None:
    assert next_summary_ms(DAY0, 0) == DAY0 + 24 * HOUR
    assert next_summary_ms(DAY0 + 5 * HOUR, 6) == DAY0 + 6 * HOUR
    assert next_summary_ms(DAY0 + 6 * HOUR, 6) == DAY0 + 30 * HOUR


def test_health_changes_are_sent_on_transitions_only(tmp_path: Path) -> None:
    engine, factory = open_db(f"sqlite:///{tmp_path / 'h.db'}")
    states: list[HealthState] = ["alive", "degraded", "degraded", "stalled", "alive", "alive", "stopped"]
    seen = iter(states)
    try:
        notifier = RecordingNotifier()
        alerts = DaemonAlerts(
            notifier,
            factory,
            "r",
            tf_ms=HOUR,
            first_bar_ms=DAY0,
            summary_hour_utc=0,
            health=lambda: Health(next(seen), "why"),
            now_ms=lambda: DAY0,
        )
        for _ in states:
            alerts.beat()
    finally:
        engine.dispose()
    assert [e.state for e in notifier.events if isinstance(e, HealthChange)] == [
        "degraded",
        "stalled",
        "recovered",
    ]
