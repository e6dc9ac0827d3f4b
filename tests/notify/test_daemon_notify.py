"""Issue 15's acceptance point: a daemon replaying the bundled data with a strategy that trades sends, through
Apprise's JSON target to a local HTTP receiver, exactly one message per fill and per breaker trip (counted
against the ledger), none lost; and a receiver that hangs neither slows nor breaks the ticks."""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from agent.config import NotifySettings
from agent.daemon import Daemon, DaemonOptions
from agent.db.models import Fill, RiskEvent
from agent.notify import BREAKERS, FillEvent, QueuedNotifier, make_notifier
from agent.notify.text import line
from tests.daemon.helpers import DATA_END, HOUR, SMA, bars, data_dir, iso, settings
from tests.notify.receiver import JsonReceiver

BARS = 200
START = DATA_END - BARS * HOUR
RISK = {"cooldown_bars": 1, "daily_loss_limit": 0.003, "max_drawdown": 0.01}
"""Tight breakers, so the bundled data trips them several times."""


def _replay(
    tmp_path: Path, url: str, notifier: QueuedNotifier, run_id: str, start: int = START, **risk: object
) -> None:
    folder = data_dir(tmp_path)
    cfg = settings(folder, f"sqlite:///{tmp_path / 'n.db'}", risk=RISK | risk, notify={"urls": [url]})
    options = DaemonOptions(replay=True, speed=3600 * 200, start=iso(start), params=SMA, run_id=run_id)
    result = Daemon(cfg, options, notifier=notifier).run()
    assert result.finished


def _expected(db: str, run_id: str) -> tuple[list[str], list[str]]:
    """The fill lines and breaker trips the ledger holds (a breaker at a bar and not at the one before)."""
    engine = create_engine(db)
    try:
        with Session(engine) as session:
            fills = session.scalars(
                select(Fill).where(Fill.run_id == run_id).order_by(Fill.bar_ts, Fill.id)
            ).all()
            lines = [
                line(FillEvent(run_id, f.symbol, f.bar_ts, f.side, f.amount, f.price, f.fee, f.fee_currency))  # type: ignore[arg-type]
                for f in fills
            ]
            rows = session.execute(
                select(RiskEvent.bar_ts, RiskEvent.kind).where(
                    RiskEvent.run_id == run_id, RiskEvent.kind.in_(BREAKERS)
                )
            ).all()
    finally:
        engine.dispose()
    active: dict[int, set[str]] = defaultdict(set)
    for bar_ts, kind in rows:
        active[int(bar_ts)].add(kind)
    trips, before = [], set[str]()
    for bar_ts in bars(db, run_id):
        now = active.get(bar_ts, set())
        trips += [f"breaker {k} tripped at bar" for k in sorted(now - before)]
        before = now
    return lines, trips


@pytest.mark.timeout(300)
def test_a_replay_sends_one_message_per_fill_and_per_breaker_trip_none_lost(tmp_path: Path) -> None:
    with JsonReceiver() as receiver:
        cfg = settings(tmp_path, notify={"urls": [receiver.url()], "rate_per_minute": 600})
        notifier = make_notifier(cfg.notify)
        assert notifier is not None
        _replay(tmp_path, receiver.url(), notifier, "notify")
        assert notifier.flush(60)
        assert notifier.close(5)
    fills, trips = _expected(f"sqlite:///{tmp_path / 'n.db'}", "notify")
    assert len(fills) >= 4 and len(trips) >= 2, "the replay must trade and trip breakers to test anything"
    messages = [p["message"] for p in receiver.payloads]
    assert [m for m in messages if m.startswith("fill: ")] == fills  # one per fill, in the ledger's order
    sent_trips = [m for m in messages if m.startswith("breaker ")]
    assert len(sent_trips) == len(trips)
    assert all(m.startswith(t) for m, t in zip(sent_trips, trips, strict=True))
    summaries = [m for m in messages if m.startswith("summary ")]
    assert len(summaries) == 8  # midnights crossed by 200 bars ending at 2025-09-19 23:00
    assert len(messages) == len(fills) + len(trips) + len(summaries)  # nothing else (a healthy daemon)
    stats = notifier.stats()
    assert stats.digests == 0 and stats.failed_messages == 0 and stats.overflowed == 0
    assert stats.delivered_events == stats.accepted == len(messages)


@pytest.mark.timeout(300)
def test_a_hung_receiver_neither_slows_nor_breaks_the_ticks(tmp_path: Path) -> None:
    hold = threading.Event()
    with JsonReceiver(hold=hold) as receiver:
        cfg = settings(tmp_path, notify={"urls": [receiver.url()], "timeout_s": 120})
        notifier = make_notifier(cfg.notify)
        assert notifier is not None
        try:
            _replay(tmp_path, receiver.url(), notifier, "hung")
            # every bar was ticked while the receiver still held its first request unanswered
            assert receiver.wait_requests(1) and receiver.payloads == []
            assert len(bars(f"sqlite:///{tmp_path / 'n.db'}", "hung")) == BARS
        finally:
            hold.set()
        assert notifier.flush(60)
        notifier.close(5)
    fills, _ = _expected(f"sqlite:///{tmp_path / 'n.db'}", "hung")
    stats = notifier.stats()
    assert stats.accepted == stats.delivered_events and stats.failed_messages == 0
    assert len(receiver.payloads) == stats.messages  # what queued behind the hung request went out after it
    sent = [ln for p in receiver.payloads for ln in p["message"].splitlines()]
    assert sum(1 for s in sent if s.lstrip("- ").startswith("fill: ")) == len(fills)


@pytest.mark.timeout(300)
def test_a_kill_switch_on_from_the_start_is_one_message(tmp_path: Path) -> None:
    switch = tmp_path / "KILL"
    switch.touch()
    with JsonReceiver() as receiver:
        notifier = make_notifier(NotifySettings(urls=[receiver.url()], events=["kill_switch", "fill"]))
        assert notifier is not None
        _replay(
            tmp_path, receiver.url(), notifier, "killed", DATA_END - 48 * HOUR, kill_switch_file=str(switch)
        )
        assert notifier.flush(60)
        notifier.close(5)
    messages = [p["message"] for p in receiver.payloads]
    assert len(messages) == 1 and messages[0].startswith("kill switch on: no new entries")
    assert _expected(f"sqlite:///{tmp_path / 'n.db'}", "killed")[0] == []  # and nothing was bought
