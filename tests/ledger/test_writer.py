"""Writing ticks: every record lands in its table in one transaction, LLM fields and clamps included, and a
tick written twice (in turn or at the same time) is stored once."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from agent.broker import Bar, BarOutcome, FillTerms, PendingTarget, process_bar
from agent.db.models import (
    BalanceSnapshot,
    Decision,
    Fill,
    LLMCall,
    Order,
    PositionSnapshot,
    RiskEvent,
)
from agent.db.session import open_db
from agent.ledger import DecisionEntry, LedgerWriter, TickRecord, start_run, write_tick
from agent.ledger.writer import clamp_json
from agent.llm.schema import Analysis, DecisionRequest, DecisionResult
from tests.ledger.pipeline import RULES, SYMBOLS, Carry, Pipeline
from tests.risk.test_adversarial import HOSTILE
from tests.risk.world import BTC, T0, World, decision

TABLES = (Decision, Order, Fill, BalanceSnapshot, PositionSnapshot, RiskEvent)


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_db(db_url)
    yield factory
    engine.dispose()


def _counts(factory: sessionmaker[Session]) -> dict[str, int]:
    with factory() as session:
        return {t.__tablename__: session.scalar(select(func.count()).select_from(t)) or 0 for t in TABLES}


def test_ticks_round_trip_into_every_table(factory: sessionmaker[Session]) -> None:
    pipe = Pipeline(120)
    pipe.begin(factory, "rt")
    carry = Carry.start(pipe.settings)
    expected = {"orders": 0, "fills": 0, "positions": 0, "risk_events": 0}
    records = []
    for i in range(120):
        record, carry = pipe.tick(i, carry, "rt")
        summary = write_tick(factory, record)
        assert summary.written and summary.counts["decisions"] == len(SYMBOLS)
        for key in expected:
            expected[key] += summary.counts[key]
        records.append(record)
    assert _counts(factory) == {
        "decisions": 240,
        "orders": expected["orders"],
        "fills": expected["fills"],
        "balance_snapshots": 120,
        "position_snapshots": expected["positions"],
        "risk_events": expected["risk_events"],
    }
    assert expected["fills"] > 0 and expected["risk_events"] > 0
    with factory() as session:
        for record in records:
            out = record.outcome
            query = select(BalanceSnapshot).where(BalanceSnapshot.bar_ts == record.bar_ts)
            balance = session.scalars(query).one()
            assert (balance.cash, balance.equity, balance.fees_paid) == (
                out.state.cash,
                out.equity,
                out.state.fees_paid,
            )
            for fill in out.fills:
                row = session.scalars(
                    select(Fill).join(Order).where(Order.client_order_id == fill.client_order_id)
                ).one()
                assert (row.amount, row.price, row.fee) == (fill.amount, fill.price, fill.fee)
            for order in out.orders:
                query = select(Order).where(Order.client_order_id == order.client_order_id)
                row = session.scalars(query).one()
                assert (row.status, row.reason, row.amount) == (order.status, order.reason, order.amount)
                if order.decided_ts is not None:  # linked to the decision it executes
                    linked = session.get(Decision, row.decision_id)
                    assert linked is not None
                    assert (linked.symbol, linked.bar_ts) == (order.symbol, order.decided_ts)
            for entry in record.decisions:
                row = session.scalars(
                    select(Decision).where(
                        Decision.bar_ts == record.bar_ts, Decision.symbol == entry.result.symbol
                    )
                ).one()
                assert row.clamps == [clamp_json(e) for e in entry.events]
                assert row.final_exposure == (entry.result.target_exposure if entry.result.changes else None)
                assert row.source == "rule" and row.action == entry.result.proposed.action.value


def test_writing_a_tick_twice_stores_it_once(factory: sessionmaker[Session]) -> None:
    pipe = Pipeline(60)
    pipe.begin(factory, "twice")
    carry = pipe.play(factory, "twice", 0, 59, Carry.start(pipe.settings))
    record, _ = pipe.tick(59, carry, "twice")
    assert write_tick(factory, record).written
    before = _counts(factory)
    again = write_tick(factory, record)
    assert not again.written and _counts(factory) == before


def test_an_order_already_stored_is_not_stored_again(factory: sessionmaker[Session]) -> None:
    """A tick re-run under another bar's snapshot key still cannot duplicate an order or its fill."""
    start_run(factory, "dup", kind="paper", strategy="x", symbols=[BTC], timeframe="1h")
    settings = Pipeline(30).settings
    bar = {BTC: Bar(60_000.0, 60_100.0, 59_900.0, 60_000.0, 100.0)}
    pending = {BTC: PendingTarget(BTC, 0.2, T0 - 3_600_000)}
    out = process_bar(Carry.start(settings).state, bar, pending, T0, RULES, FillTerms.of(settings), "dup")
    write_tick(factory, TickRecord("dup", T0, out))
    with factory() as session:  # as if the balance snapshot had been lost
        session.query(BalanceSnapshot).delete()
        session.commit()
    summary = write_tick(factory, TickRecord("dup", T0, out))
    assert summary.written and summary.counts["orders"] == 0 and summary.counts["fills"] == 0
    assert _counts(factory)["orders"] == 1 and _counts(factory)["fills"] == 1


def test_concurrent_writers_of_one_tick_store_it_once(factory: sessionmaker[Session]) -> None:
    pipe = Pipeline(40)
    pipe.begin(factory, "race")
    carry = pipe.play(factory, "race", 0, 39, Carry.start(pipe.settings))
    record, _ = pipe.tick(39, carry, "race")
    before = _counts(factory)
    start = threading.Barrier(2)
    results: list[bool] = []
    errors: list[BaseException] = []

    def writer() -> None:
        start.wait(timeout=30)
        try:
            results.append(write_tick(factory, record).written)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and sorted(results) == [False, True]
    after = _counts(factory)
    assert after["balance_snapshots"] == before["balance_snapshots"] + 1
    assert after["decisions"] == before["decisions"] + len(SYMBOLS)


def test_llm_fields_and_abstentions_are_recorded(factory: sessionmaker[Session]) -> None:
    ledger = LedgerWriter(factory)
    assert ledger.start_run("llm", kind="paper", strategy="llm", symbols=[BTC], timeframe="1h")
    assert not ledger.start_run("llm", kind="paper", strategy="llm", symbols=[BTC], timeframe="1h")
    with factory() as session, session.begin():
        call = LLMCall(
            run_id="llm",
            request_hash="r" * 64,
            prompt_hash="p" * 64,
            endpoint="http://x/v1",
            profile="vllm",
            model="nemotron",
        )
        session.add(call)
        session.flush()
        call_id = call.id
    world = World()
    proposal = decision("buy", 0.3, invalidation="closes below 57k")
    result = world.limit(proposal)
    request = DecisionRequest(symbol=BTC, messages=(), prompt_hash="p" * 64)
    llm = DecisionResult(
        request=request,
        decision=proposal,
        abstained=False,
        llm_call_id=call_id,
        model="nemotron",
        reasoning="thinking...",
        prompt_tokens=1200,
        completion_tokens=80,
        latency_ms=512.5,
    )
    abstained_result = world.limit(decision("hold", 0.0, symbol="ETH/USDT"), symbol="ETH/USDT")
    abstained = DecisionResult(
        request=request,
        decision=abstained_result.proposed,
        abstained=True,
        reason="schema: target_exposure > 1",
    )
    out = _settled(world)
    entries = (
        DecisionEntry(result, Analysis.of(llm), world.allowance()),
        DecisionEntry(abstained_result, Analysis.of(abstained)),
    )
    assert ledger.write_tick(TickRecord("llm", T0, out, entries)).written
    with factory() as session:
        row = session.scalars(select(Decision).where(Decision.symbol == BTC)).one()
        assert (row.llm_call_id, row.prompt_hash, row.model, row.reasoning) == (
            call_id,
            "p" * 64,
            "nemotron",
            "thinking...",
        )
        assert (row.prompt_tokens, row.completion_tokens, row.latency_ms) == (1200, 80, 512.5)
        assert (row.action, row.final_exposure, row.invalidation, row.abstained) == (
            "buy",
            0.3,
            "closes below 57k",
            False,
        )
        other = session.scalars(select(Decision).where(Decision.symbol == "ETH/USDT")).one()
        assert other.abstained and other.abstain_reason == "schema: target_exposure > 1"
        assert other.final_exposure is None


def test_every_hostile_proposal_is_recorded_with_its_reason(factory: sessionmaker[Session]) -> None:
    start_run(factory, "hostile", kind="paper", strategy="llm", symbols=[BTC], timeframe="1h")
    world = World()
    for i, (case, proposal) in enumerate(HOSTILE.items()):
        bar_ts = T0 + i * 3_600_000
        result = world.limit(proposal)
        write_tick(
            factory,
            TickRecord(
                "hostile", bar_ts, _settled(world, bar_ts), (DecisionEntry(result, None, world.allowance()),)
            ),
        )
        with factory() as session:
            row = session.scalars(select(Decision).where(Decision.bar_ts == bar_ts)).one()
            events = session.scalars(select(RiskEvent).where(RiskEvent.decision_id == row.id)).all()
            assert row.symbol == BTC, case
            if result.rejected or result.events:
                assert events and [e.kind for e in events] == [e.kind for e in result.events], case
                assert all(e.detail for e in events)
                assert row.clamps == [clamp_json(e) for e in result.events]
            if result.rejected:
                assert row.final_exposure is None, case
            if isinstance(proposal.target_exposure, float) and not math.isfinite(proposal.target_exposure):
                assert row.target_exposure is None and row.clamps[0]["before"] in ("nan", "inf"), case


def _settled(world: World, bar_ts: int = T0) -> BarOutcome:
    bars = {s: Bar(m, m, m, m, 1.0) for s, m in world.marks.items()}
    return process_bar(
        world.portfolio, bars, {}, bar_ts, {s: RULES[BTC] for s in bars}, FillTerms.of(world.settings), "w"
    )


def test_public_api_is_exported() -> None:
    import agent.broker

    for module in (agent.ledger, agent.broker):
        assert module.__all__ == sorted(module.__all__)
        assert all(getattr(module, name) is not None for name in module.__all__)
