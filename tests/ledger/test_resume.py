"""Resuming a run from the ledger: the state read back is bit-identical to the one in memory, and an
interrupted run (stopped between ticks, crashed before a write, or SIGKILLed inside a tick's transaction)
ends with exactly the ledger of an uninterrupted run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from agent.config import PROJECT_ROOT
from agent.db.models import BalanceSnapshot, Order
from agent.db.session import open_db
from agent.ledger import LedgerReader, last_processed_bar, load_state, write_tick
from tests.ledger.pipeline import Carry, Pipeline, ledger_rows

BARS = 120


@pytest.fixture
def db(db_url: str) -> Iterator[tuple[Engine, sessionmaker[Session], str]]:
    engine, factory = open_db(db_url)
    yield engine, factory, db_url
    engine.dispose()


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline(BARS)


def test_a_new_run_resumes_from_the_initial_state(db: tuple, pipe: Pipeline) -> None:  # type: ignore[type-arg]
    _, factory, _ = db
    pipe.begin(factory, "fresh")
    reader = LedgerReader(factory, pipe.settings)
    assert reader.last_processed_bar("fresh") is None
    point = reader.load_state("fresh")
    assert point.bar_ts is None and point.pending == {}
    assert point.state == Carry.start(pipe.settings).state


def test_resuming_from_the_ledger_at_every_bar_gives_the_uninterrupted_run(
    db: tuple,
    pipe: Pipeline,  # type: ignore[type-arg]
) -> None:
    """Run B restarts from the database before every bar (state read back must equal the state in
    memory), loses one computed tick before writing it and retries an old one; its ledger equals run A's."""
    _, factory, _ = db
    pipe.begin(factory, "whole")
    whole = pipe.play(factory, "whole", 0, BARS, Carry.start(pipe.settings))
    pipe.begin(factory, "every")
    memory = Carry.start(pipe.settings)
    seen = {"positions": 0, "cooldown": 0, "pending": 0}
    with factory() as session:
        for i in range(BARS):
            session.expire_all()
            point = load_state(session, "every", pipe.settings)
            assert pipe.index_of(point.bar_ts) == i
            assert (point.state, point.pending) == (memory.state, memory.pending), f"bar {i}"
            if i == 77:
                pipe.tick(i, Carry.resume(point), "every")  # computed, then lost before the write
                continue_from = load_state(session, "every", pipe.settings)
                assert continue_from.bar_ts == point.bar_ts
            memory = pipe.play(factory, "every", i, i + 1, Carry.resume(point))
            seen["positions"] += bool(memory.state.positions)
            seen["cooldown"] += bool(memory.state.cooldown_until)
            seen["pending"] += bool(memory.pending)
    assert all(count > 0 for count in seen.values()), seen
    retried, _ = pipe.tick(50, Carry.start(pipe.settings), "every")
    assert not write_tick(factory, retried).written  # an old tick retried writes nothing
    assert memory.state == whole.state
    with factory() as session:
        a, b = ledger_rows(session, "whole"), ledger_rows(session, "every")
    assert a == b
    reasons = {row[-1] for row in a["orders"]}
    assert {"entry", "exit", "stop_loss", "take_profit"} <= reasons
    assert len(a["fills"]) >= 10 and len(a["balances"]) == BARS  # orders only on target changes, no drift


def test_sigkill_inside_a_tick_leaves_no_partial_tick_and_resume_completes_the_run(
    db: tuple,
    pipe: Pipeline,  # type: ignore[type-arg]
) -> None:
    _, factory, url = db
    bars, kill_at = 90, 50
    pipe.begin(factory, "ref")
    Pipeline(bars).play(factory, "ref", 0, bars, Carry.start(pipe.settings))
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    cmd = [sys.executable, "-m", "tests.ledger.pipeline", url, "killed", str(bars), str(kill_at)]
    died = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert died.returncode == -9, died.stderr[-2000:]
    short = Pipeline(bars)
    with factory() as session:
        assert last_processed_bar(session, "killed") == short.times[kill_at - 1]
        assert (
            session.scalar(
                select(func.count())
                .select_from(Order)
                .where(Order.run_id == "killed", Order.bar_ts >= short.times[kill_at])
            )
            == 0
        )
        point = load_state(session, "killed", pipe.settings)
    short.play(factory, "killed", short.index_of(point.bar_ts), bars, Carry.resume(point))
    with factory() as session:
        assert ledger_rows(session, "ref") == ledger_rows(session, "killed")
        query = select(func.count()).select_from(BalanceSnapshot).where(BalanceSnapshot.run_id == "killed")
        n = session.scalar(query)
    assert n == bars
