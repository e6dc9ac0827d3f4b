"""Reading a run back from the ledger: where it stopped, and the exact broker state to resume from.

Contracts:
- `last_processed_bar(session, run_id)`: the last bar whose tick was written (its balance snapshot), or None.
- `load_state(session, run_id, settings)` rebuilds, bit for bit, what the paper broker held after that bar
  (given the run started from `paper.initial_state(initial_cash)` and the graph's `in_force=None`):
  - cash and fees paid from the balance snapshot; positions (amount, average price, stop-loss, take-profit)
    from the position snapshots, kept in symbol order; a position's entry time is the first bar of its
    unbroken run of snapshots; its invalidation and trailing distance are those of the decision behind its
    opening buy, and its stop is the trailing level when it lies above that decision's stop-loss (or the
    decision had none), as the per-bar semantics marks it;
  - peak equity = max(initial cash, every snapshot's equity); the UTC day and its start equity replayed
    from the snapshots with the broker's own rule (`agent.execution.bar.roll_day`);
  - cooldowns from filled stop-outs, stop-loss or trailing stop (`bar.cooldown_end` with
    `settings.risk.cooldown_bars`);
  - the pending targets: decisions at the last bar with a `final_exposure`, with their exit plans (levels
    and a rule's trailing distance), to execute at the next open.
- A run with no tick yet resumes from `initial_state(initial_cash)` with nothing pending.
- Read-only; works on SQLite and PostgreSQL (plain SELECTs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from agent.broker.models import PendingTarget
from agent.broker.paper import initial_state
from agent.db.models import BalanceSnapshot, Decision, Fill, Order, PositionSnapshot
from agent.execution import bar
from agent.market.candles import timeframe_ms
from agent.portfolio import PortfolioState, Position

if TYPE_CHECKING:
    from agent.config import Settings


@dataclass(frozen=True)
class ResumePoint:
    """Everything needed to process the bar after `bar_ts` as if the run had never stopped."""

    run_id: str
    bar_ts: int | None
    """Last processed bar, None when the run has no tick yet."""
    state: PortfolioState
    pending: dict[str, PendingTarget] = field(default_factory=dict)


def last_processed_bar(session: Session, run_id: str) -> int | None:
    """Open time of the last bar written for `run_id`, or None."""
    value = session.scalar(select(func.max(BalanceSnapshot.bar_ts)).where(BalanceSnapshot.run_id == run_id))
    return int(value) if value is not None else None


def load_state(
    session: Session, run_id: str, settings: Settings, initial_cash: float | None = None
) -> ResumePoint:
    """The broker state after the last processed bar of `run_id` (see the module contract)."""
    cash0 = settings.broker.initial_cash if initial_cash is None else initial_cash
    last = last_processed_bar(session, run_id)
    if last is None:
        return ResumePoint(run_id, None, initial_state(cash0))
    bar_ms = timeframe_ms(settings.timeframe)
    balances = session.execute(
        select(
            BalanceSnapshot.bar_ts, BalanceSnapshot.equity, BalanceSnapshot.cash, BalanceSnapshot.fees_paid
        )
        .where(BalanceSnapshot.run_id == run_id)
        .order_by(BalanceSnapshot.bar_ts)
    ).all()
    bars = [int(b[0]) for b in balances]
    peak, day, day_start = cash0, -1.0, cash0
    for bar_ts, equity, _, _ in balances:
        peak = max(peak, equity)
        day, day_start = bar.roll_day(day, day_start, equity, int(bar_ts), bar_ms)
    state = PortfolioState(
        cash=balances[-1][2],
        positions=_positions(session, run_id, last, bars, _held(session, run_id)),
        fees_paid=balances[-1][3],
        peak_equity=peak,
        day_start_equity=day_start,
        day=int(day),
        cooldown_until=_cooldowns(session, run_id, settings.risk.cooldown_bars, bar_ms),
    )
    return ResumePoint(run_id, last, state, _pending(session, run_id, last))


class StateReader(Protocol):
    """The seam the graph resumes through: `LedgerReader`, or a fake."""

    def last_processed_bar(self, run_id: str) -> int | None: ...

    def load_state(self, run_id: str, initial_cash: float | None = None) -> ResumePoint: ...


class LedgerReader:
    """`last_processed_bar` and `load_state` bound to a session factory and settings (a `StateReader`)."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory, self.settings = factory, settings

    def last_processed_bar(self, run_id: str) -> int | None:
        """See `last_processed_bar`."""
        with self.factory() as session:
            return last_processed_bar(session, run_id)

    def load_state(self, run_id: str, initial_cash: float | None = None) -> ResumePoint:
        """See `load_state`."""
        with self.factory() as session:
            return load_state(session, run_id, self.settings, initial_cash)


def _held(session: Session, run_id: str) -> set[tuple[int, str]]:
    """(bar, symbol) of every position snapshot of the run."""
    rows = session.execute(
        select(PositionSnapshot.bar_ts, PositionSnapshot.symbol).where(PositionSnapshot.run_id == run_id)
    )
    return {(int(b), s) for b, s in rows}


def _positions(
    session: Session, run_id: str, last: int, bars: list[int], held: set[tuple[int, str]]
) -> dict[str, Position]:
    rows = session.scalars(
        select(PositionSnapshot)
        .where(PositionSnapshot.run_id == run_id, PositionSnapshot.bar_ts == last)
        .order_by(PositionSnapshot.symbol)
    ).all()
    positions: dict[str, Position] = {}
    for row in rows:
        entry = last
        for bar_ts in reversed(bars):
            if (bar_ts, row.symbol) not in held:
                break
            entry = bar_ts
        opening = _opening(session, run_id, row.symbol, entry)
        invalidation, trail, planned = opening if opening is not None else ("", None, None)
        raised = row.stop_loss is not None and (planned is None or row.stop_loss > planned)
        trailing = trail is not None and raised
        positions[row.symbol] = Position(
            row.symbol,
            row.amount,
            row.avg_price,
            entry,
            row.stop_loss,
            row.take_profit,
            invalidation or "",
            trail,
            trailing,
        )
    return positions


def _opening(
    session: Session, run_id: str, symbol: str, entry_ts: int
) -> tuple[str | None, float | None, float | None] | None:
    """(invalidation, trailing distance, stop-loss) of the decision behind the position's opening buy."""
    row = session.execute(
        select(Decision.invalidation, Decision.trailing_stop, Decision.stop_loss)
        .join(Order, Order.decision_id == Decision.id)
        .where(
            Order.run_id == run_id,
            Order.symbol == symbol,
            Order.side == "buy",
            Order.status == "filled",
            Order.bar_ts == entry_ts,
        )
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def _cooldowns(session: Session, run_id: str, cooldown_bars: int, bar_ms: int) -> dict[str, int]:
    stop_outs = (bar.REASONS[bar.STOPPED], bar.REASONS[bar.TRAILED])
    rows = session.execute(
        select(Fill.symbol, func.max(Fill.bar_ts))
        .join(Order, Fill.order_id == Order.id)
        .where(Fill.run_id == run_id, Order.reason.in_(stop_outs))
        .group_by(Fill.symbol)
    )
    return {symbol: int(bar.cooldown_end(int(ts), cooldown_bars, bar_ms)) for symbol, ts in rows}


def _pending(session: Session, run_id: str, last: int) -> dict[str, PendingTarget]:
    rows = session.scalars(
        select(Decision)
        .where(Decision.run_id == run_id, Decision.bar_ts == last, Decision.final_exposure.is_not(None))
        .order_by(Decision.symbol)
    ).all()
    return {
        r.symbol: PendingTarget(
            r.symbol,
            float(r.final_exposure or 0.0),
            last,
            r.stop_loss,
            r.take_profit,
            r.invalidation or "",
            r.trailing_stop,
        )
        for r in rows
    }
