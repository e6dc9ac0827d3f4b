"""A tick of which nothing is in the ledger yet is written without reading its rows back first (one probe
query), and a tick of which something is there still skips exactly what exists."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import BalanceSnapshot, Decision, PositionSnapshot, RiskEvent
from agent.db.session import open_db, transaction
from agent.ledger import write_tick
from tests.ledger.pipeline import Carry, Pipeline


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_db(db_url)
    yield factory
    engine.dispose()


@contextmanager
def _selects(factory: sessionmaker[Session]) -> Iterator[list[str]]:
    """The SELECT statements sent through `factory`'s engine inside the block."""
    seen: list[str] = []
    engine = factory.kw["bind"]

    def log(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", log)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", log)


def _rows(factory: sessionmaker[Session], run_id: str) -> dict[str, int]:
    with factory() as session:
        return {
            t.__tablename__: session.scalar(select(func.count()).select_from(t).where(t.run_id == run_id))
            or 0
            for t in (Decision, PositionSnapshot, RiskEvent, BalanceSnapshot)
        }


def test_a_fresh_tick_without_orders_costs_one_read(factory: sessionmaker[Session]) -> None:
    pipe = Pipeline(40)
    pipe.begin(factory, "fresh")
    carry = pipe.play(factory, "fresh", 0, 30, Carry.start(pipe.settings))
    for i in range(30, 40):
        record, carry = pipe.tick(i, carry, "fresh")
        with _selects(factory) as selects:
            assert write_tick(factory, record).written
        if not record.outcome.orders:
            assert len(selects) == 1, selects


def test_a_tick_whose_bar_has_another_writers_event_still_writes_every_row(
    factory: sessionmaker[Session],
) -> None:
    pipe = Pipeline(40)
    pipe.begin(factory, "a")
    pipe.begin(factory, "b")
    carry = pipe.play(factory, "a", 0, 39, Carry.start(pipe.settings))
    pipe.play(factory, "b", 0, 39, Carry.start(pipe.settings))
    record, _ = pipe.tick(39, carry, "a")
    other, _ = pipe.tick(39, carry, "b")
    with transaction(factory) as session:  # e.g. the analyse node's `tokenizer_fallback` event
        fallback = RiskEvent(
            run_id="b", bar_ts=other.bar_ts, symbol=None, kind="tokenizer_fallback", detail="x"
        )
        session.add(fallback)
    before_a, before_b = _rows(factory, "a"), _rows(factory, "b")
    assert write_tick(factory, record).written and write_tick(factory, other).written
    added_a = {k: v - before_a[k] for k, v in _rows(factory, "a").items()}
    added_b = {k: v - before_b[k] for k, v in _rows(factory, "b").items()}
    assert added_a == added_b  # the same tick, with and without the probe finding something
