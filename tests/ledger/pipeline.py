"""Test helper: the tick loop the agent graph runs (settle bar t → allowance → rule decision → limits →
pending for t+1 → ledger), on bundled BTC/ETH 1h candles with an SMA-cross rule, and a way to compare two
runs' ledgers row by row.

Run as a module to play a run in a subprocess that kills itself (SIGKILL) inside the transaction of one
tick: `python -m tests.ledger.pipeline URL RUN_ID BARS KILL_AT`.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker

from agent.broker import Bar, FillTerms, PendingTarget, initial_state, process_bar
from agent.config import Settings
from agent.db.models import BalanceSnapshot, Decision, Fill, Order, PositionSnapshot, RiskEvent
from agent.ledger import DecisionEntry, ResumePoint, TickRecord, load_state, start_run, write_tick
from agent.portfolio import PortfolioState
from agent.risk.allowance import allowance
from agent.risk.book import TradeCosts
from agent.risk.inputs import Market, Proposal
from agent.risk.limits import apply_limits, rule_decision
from tests.broker.sim import atr_of, bar_times, load_frames, rules_for, sma_targets

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
RULES = rules_for(SYMBOLS)


def pipeline_settings() -> Settings:
    """Settings of the test runs: small caps, a short cooldown, tight ATR stops so exits happen."""
    return Settings(
        symbols=SYMBOLS,
        risk={
            "max_position_exposure": 0.45,
            "cooldown_bars": 2,
            "default_stop_atr": 1.0,
            "default_take_profit_atr": 2.5,
            "risk_per_trade": 0.01,
        },
        broker={"slippage_bps": 5.0, "initial_cash": 10_000.0},
    )


@dataclass
class Carry:
    """What one tick hands to the next (the graph passes no `in_force`: the risk layer sends only changes)."""

    state: PortfolioState
    pending: dict[str, PendingTarget]

    @classmethod
    def start(cls, settings: Settings) -> Carry:
        return cls(initial_state(settings.broker.initial_cash), {})

    @classmethod
    def resume(cls, point: ResumePoint) -> Carry:
        return cls(point.state, point.pending)


class Pipeline:
    """The last `bars` bundled bars of BTC and ETH, their SMA(5/20) targets and ATR."""

    def __init__(self, bars: int = 240) -> None:
        self.settings = pipeline_settings()
        frames = load_frames(SYMBOLS, bars=bars)
        self.times = bar_times(frames[SYMBOLS[0]])
        self.ohlcv = {s: f[["open", "high", "low", "close", "volume"]].to_numpy() for s, f in frames.items()}
        self.targets = {s: sma_targets(f, 5, 20) for s, f in frames.items()}
        self.atr = {s: atr_of(f, self.settings.risk.atr_period) for s, f in frames.items()}

    def tick(self, i: int, carry: Carry, run_id: str) -> tuple[TickRecord, Carry]:
        """Settle bar i and decide at its close."""
        ts = self.times[i]
        bars = {s: Bar(*map(float, self.ohlcv[s][i])) for s in SYMBOLS}
        outcome = process_bar(
            carry.state, bars, carry.pending, ts, RULES, FillTerms.of(self.settings), run_id
        )
        entries, pending = [], {}
        risk = self.settings.risk
        for s in SYMBOLS:
            atr = float(self.atr[s][i])
            costs = TradeCosts.of_market(RULES[s], self.settings.broker)
            market = Market(s, ts, outcome.marks[s], atr, RULES[s], costs)
            allowed = allowance(market, outcome.state, outcome.marks, risk, False)
            previous = float(self.targets[s][i - 1]) if i > 0 else 0.0
            target_now = float(self.targets[s][i])
            close = outcome.marks[s]  # a rule's own exit plan, as `agent.backtest.plan.exit_plan` decides it
            proposal = rule_decision(
                s,
                target_now,
                previous,
                allowed.current_exposure,
                "sma_cross",
                close - 1.0 * atr,
                close + 2.5 * atr,
            )
            rule = Proposal(proposal, source="rule", trailing_stop=3.0 * atr)
            result = apply_limits(rule, allowed, market, outcome.state, risk, self.settings.symbols)
            entries.append(DecisionEntry(result, None, allowed))
            target = PendingTarget.from_result(result, ts)
            if target is not None:
                pending[s] = target
        return TickRecord(run_id, ts, outcome, entries), Carry(outcome.state, pending)

    def play(self, factory: sessionmaker[Session], run_id: str, start: int, stop: int, carry: Carry) -> Carry:
        """Process and write bars start..stop-1."""
        for i in range(start, stop):
            record, carry = self.tick(i, carry, run_id)
            write_tick(factory, record)
        return carry

    def begin(self, factory: sessionmaker[Session], run_id: str) -> None:
        start_run(factory, run_id, kind="paper", strategy="sma_cross", symbols=SYMBOLS, timeframe="1h")

    def index_of(self, bar_ts: int | None) -> int:
        """Index of the bar after `bar_ts` (0 when None)."""
        return 0 if bar_ts is None else self.times.index(bar_ts) + 1


def ledger_rows(session: Session, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """A run's ledger without ids, run ids and wall-clock times, for comparing two runs."""

    def strip(coid: str) -> str:
        return coid[len(run_id) :]

    decided = session.scalars(select(Decision).where(Decision.run_id == run_id))
    decisions = {d.id: (d.symbol, d.bar_ts) for d in decided}
    orders = session.scalars(select(Order).where(Order.run_id == run_id))
    order_keys = {}
    rows: dict[str, list[tuple[Any, ...]]] = {
        "orders": [],
        "fills": [],
        "decisions": [],
        "balances": [],
        "positions": [],
        "events": [],
    }
    for o in orders:
        order_keys[o.id] = strip(o.client_order_id)
        rows["orders"].append(
            (
                strip(o.client_order_id),
                decisions.get(o.decision_id),
                o.symbol,
                o.bar_ts,
                o.side,
                o.type,
                o.amount,
                o.price,
                o.status,
                o.reason,
            )
        )
    for f in session.scalars(select(Fill).where(Fill.run_id == run_id)):
        rows["fills"].append(
            (order_keys[f.order_id], f.symbol, f.bar_ts, f.side, f.amount, f.price, f.fee, f.fee_currency)
        )
    for d in session.scalars(select(Decision).where(Decision.run_id == run_id)):
        rows["decisions"].append(
            (
                d.symbol,
                d.bar_ts,
                d.source,
                d.action,
                d.target_exposure,
                d.final_exposure,
                d.confidence,
                d.stop_loss,
                d.take_profit,
                d.invalidation,
                d.rationale,
                d.abstained,
                d.clamps,
            )
        )
    for b in session.scalars(select(BalanceSnapshot).where(BalanceSnapshot.run_id == run_id)):
        rows["balances"].append((b.bar_ts, b.cash, b.equity, b.fees_paid))
    for p in session.scalars(select(PositionSnapshot).where(PositionSnapshot.run_id == run_id)):
        rows["positions"].append(
            (p.bar_ts, p.symbol, p.amount, p.avg_price, p.mark_price, p.stop_loss, p.take_profit)
        )
    for e in session.scalars(select(RiskEvent).where(RiskEvent.run_id == run_id)):
        rows["events"].append((e.bar_ts, e.symbol, e.kind, e.detail, decisions.get(e.decision_id)))
    return {k: sorted(v, key=repr) for k, v in rows.items()}


def _main(url: str, run_id: str, bars: int, kill_at: int) -> None:
    """Play a run; SIGKILL this process inside the transaction writing bar `kill_at` (after its rows are
    inserted, before the commit)."""
    from agent.db.session import open_db
    from agent.ledger import writer

    original = writer._write

    def write_then_die(conn: Connection, tick: TickRecord, *args: bool) -> dict[str, int]:
        counts = original(conn, tick, *args)
        if tick.bar_ts == pipe.times[kill_at]:
            os.kill(os.getpid(), signal.SIGKILL)
        return counts

    writer._write = write_then_die  # type: ignore[assignment]
    engine, factory = open_db(url)
    pipe = Pipeline(bars)
    pipe.begin(factory, run_id)
    with factory() as session:
        point = load_state(session, run_id, pipe.settings)
    pipe.play(factory, run_id, pipe.index_of(point.bar_ts), bars, Carry.resume(point))
    engine.dispose()


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
