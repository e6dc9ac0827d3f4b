"""The ledger enforces its own invariants: a row that breaks one is refused by the database itself (CHECK
constraints), on SQLite and on PostgreSQL, whatever code wrote it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import BalanceSnapshot, Base, Fill, Order, PositionSnapshot, Run
from agent.db.session import open_db, transaction

RUN = "ck"


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_db(db_url)
    with transaction(factory) as session:
        session.add(Run(id=RUN, kind="paper", strategy="sma_cross", timeframe="1h"))
    yield factory
    engine.dispose()


def _order(**kw: Any) -> Order:
    values: dict[str, Any] = {
        "run_id": RUN,
        "client_order_id": f"o-{uuid.uuid4().hex}",
        "symbol": "BTC/USDT",
        "bar_ts": 0,
        "side": "buy",
        "amount": 0.5,
        "price": 100.0,
        "status": "filled",
    }
    return Order(**(values | kw))


def _fill(order_id: int, **kw: Any) -> Fill:
    values: dict[str, Any] = {
        "order_id": order_id,
        "run_id": RUN,
        "symbol": "BTC/USDT",
        "bar_ts": 0,
        "side": "buy",
        "amount": 0.5,
        "price": 100.0,
        "fee": 0.05,
        "fee_currency": "USDT",
    }
    return Fill(**(values | kw))


def _balance(**kw: Any) -> BalanceSnapshot:
    return BalanceSnapshot(**({"run_id": RUN, "bar_ts": 0, "cash": 10.0, "equity": 10.0} | kw))


def _stored(factory: sessionmaker[Session], make: Callable[[int], Any]) -> None:
    """Store the row `make(order_id)` next to a valid order."""
    with transaction(factory) as session:
        order = _order()
        session.add(order)
        session.flush()
        session.add(make(order.id))


BROKEN: dict[str, tuple[str, Callable[[int], Any]]] = {
    "negative cash": ("ck_balance_snapshots_cash", lambda _o: _balance(cash=-0.01)),
    "zero order amount": ("ck_orders_amount", lambda _o: _order(amount=0.0)),
    "negative order amount": ("ck_orders_amount", lambda _o: _order(amount=-1.0)),
    "unknown order side": ("ck_orders_side", lambda _o: _order(side="hold")),
    "unknown order status": ("ck_orders_status", lambda _o: _order(status="pending")),
    "zero fill amount": ("ck_fills_amount", lambda o: _fill(o, amount=0.0)),
    "zero fill price": ("ck_fills_price", lambda o: _fill(o, price=0.0)),
    "unknown fill side": ("ck_fills_side", lambda o: _fill(o, side="BUY")),
    "zero position": (
        "ck_position_snapshots_amount",
        lambda _o: PositionSnapshot(
            run_id=RUN, bar_ts=0, symbol="BTC/USDT", amount=0.0, avg_price=100.0, mark_price=100.0
        ),
    ),
    "unknown run status": (
        "ck_runs_status",
        lambda _o: Run(id="ck-2", kind="paper", strategy="x", timeframe="1h", status="ok"),
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_row_breaking_an_invariant_is_refused(factory: sessionmaker[Session], case: str) -> None:
    constraint, make = BROKEN[case]
    with pytest.raises(IntegrityError, match=constraint):
        _stored(factory, make)
    with factory() as session:  # and nothing of that transaction is left
        assert session.query(Order).count() == 0


def test_rows_within_the_invariants_are_stored(factory: sessionmaker[Session]) -> None:
    from agent.db.models import CASH_TOLERANCE

    _stored(factory, lambda o: _fill(o, fee=0.0))
    _stored(factory, lambda _o: _balance(cash=-CASH_TOLERANCE / 2))  # float dust after a buy of all the cash
    _stored(factory, lambda _o: _order(side="sell", status="rejected", client_order_id="r"))
    with factory() as session:
        assert session.query(Fill).count() == 1 and session.query(BalanceSnapshot).count() == 1


def test_the_models_declare_the_constraints_the_migrations_create(db_url: str) -> None:
    from sqlalchemy import CheckConstraint, inspect

    engine, _factory = open_db(db_url)
    try:
        inspector = inspect(engine)
        for table in Base.metadata.sorted_tables:
            declared = {c.name for c in table.constraints if isinstance(c, CheckConstraint) and c.name}
            found = {c["name"] for c in inspector.get_check_constraints(table.name)}
            assert found == declared, table.name
        assert {c["name"] for c in inspector.get_check_constraints("orders")} >= {"ck_orders_side"}
    finally:
        engine.dispose()
