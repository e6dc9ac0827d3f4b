"""The figures of a run in progress (agent.runs.live.LiveMetrics): stored as it goes, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import Run
from agent.db.session import open_db
from agent.runs import lifecycle as lc
from agent.runs.lifecycle import RunKind, RunSpec
from agent.runs.live import LiveMetrics
from agent.runs.metrics import Activity, Curve, RunMetrics, compute


class Ledger:
    """A fake ledger: the equity after each bar ticked so far; `broken` makes measuring fail."""

    def __init__(self) -> None:
        self.equity: list[float] = []
        self.broken = False

    def measure(self) -> RunMetrics | None:
        if self.broken:
            raise RuntimeError("database gone")
        if not self.equity:
            return None
        return RunMetrics(compute(Curve(np.array(self.equity), 100.0, 3_600_000), Activity(decisions=1)))


def row(factory: sessionmaker[Session], run_id: str) -> Run:
    with factory() as session:
        return session.get_one(Run, run_id)


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine, made = open_db(db_url)
    yield made
    engine.dispose()


def test_refresh_stores_the_figures_and_leaves_the_run_running(factory: sessionmaker[Session]) -> None:
    lc.create_run(factory, RunSpec("daemon-live", RunKind.DAEMON, "sma_cross", ["BTC/USDT"], "1h"))
    ledger = Ledger()
    live = LiveMetrics(factory, "daemon-live", ledger.measure, every_s=0)
    assert not live.refresh() and row(factory, "daemon-live").metrics == {}, "no bar yet: nothing stored"
    ledger.equity += [101.0, 103.0]
    assert live.refresh()
    run = row(factory, "daemon-live")
    assert run.status == "running" and run.finished_at is None
    assert (
        run.metrics["strategy"]["total_return"] == pytest.approx(0.03)
        and run.metrics["strategy"]["bars"] == 2
    )
    ledger.equity.append(99.0)
    live.refresh()
    assert row(factory, "daemon-live").metrics["strategy"]["bars"] == 3


def test_a_failed_refresh_is_logged_and_keeps_the_last_figures(
    factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    lc.create_run(factory, RunSpec("daemon-flaky", RunKind.DAEMON, "sma_cross", ["BTC/USDT"], "1h"))
    ledger = Ledger()
    live = LiveMetrics(factory, "daemon-flaky", ledger.measure, every_s=0)
    ledger.equity.append(102.0)
    live.refresh()
    ledger.broken = True
    with caplog.at_level(logging.WARNING, logger="tradegraph.runs"):
        assert not live.refresh()
    assert "cannot update the metrics of run daemon-flaky: database gone" in caplog.text
    assert row(factory, "daemon-flaky").metrics["strategy"]["total_return"] == pytest.approx(0.02)


@pytest.mark.parametrize("finished", [True, False])
def test_close_writes_the_last_figures_and_stops_refreshing(
    factory: sessionmaker[Session], finished: bool
) -> None:
    lc.create_run(factory, RunSpec("daemon-end", RunKind.DAEMON, "sma_cross", ["BTC/USDT"], "1h"))
    ledger = Ledger()
    live = LiveMetrics(factory, "daemon-end", ledger.measure, every_s=0)
    ledger.equity += [101.0, 104.0]
    closed = live.close(finished)
    assert closed is not None and closed.strategy.bars == 2
    run = row(factory, "daemon-end")
    assert run.status == ("done" if finished else "running") and run.metrics["strategy"]["bars"] == 2
    ledger.equity.append(90.0)
    assert not live.refresh(), "nothing is stored after close"
    assert row(factory, "daemon-end").metrics["strategy"]["bars"] == 2


def test_a_finished_run_is_marked_done_even_when_its_last_measure_fails(
    factory: sessionmaker[Session],
) -> None:
    lc.create_run(factory, RunSpec("daemon-done", RunKind.DAEMON, "sma_cross", ["BTC/USDT"], "1h"))
    ledger = Ledger()
    ledger.broken = True
    assert LiveMetrics(factory, "daemon-done", ledger.measure).close(finished=True) is None
    assert row(factory, "daemon-done").status == "done"


def test_refreshes_are_at_most_one_per_interval(factory: sessionmaker[Session]) -> None:
    lc.create_run(factory, RunSpec("daemon-fast", RunKind.DAEMON, "sma_cross", ["BTC/USDT"], "1h"))
    now = [100.0]
    ledger = Ledger()
    ledger.equity.append(101.0)
    live = LiveMetrics(factory, "daemon-fast", ledger.measure, every_s=10.0, clock=lambda: now[0])
    assert not live.refresh(), "the first interval counts from the start"
    now[0] = 110.0
    assert live.refresh() and row(factory, "daemon-fast").metrics["strategy"]["bars"] == 1
    ledger.equity.append(102.0)
    now[0] = 119.9
    assert not live.refresh() and row(factory, "daemon-fast").metrics["strategy"]["bars"] == 1
    now[0] = 120.0
    assert live.refresh() and row(factory, "daemon-fast").metrics["strategy"]["bars"] == 2
    ledger.equity.append(103.0)
    assert live.close(finished=False) is not None, "close does not wait for the interval"
    assert row(factory, "daemon-fast").metrics["strategy"]["bars"] == 3
