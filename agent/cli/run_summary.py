"""What a daemon run did, read back from its ledger: the summary `tradegraph run --replay` prints at the end.

Contracts:
- `read_summary(factory, run_id, initial_cash)` counts the run's processed bars (balance snapshots),
  decisions and fills and reads its last equity; the return is the run's recorded metric set's
  (`agent.runs.metrics.RunMetrics`, what `runs list` shows) when the run has one, else final equity over
  `initial_cash`. Read-only.
- `summary_line(s)` is one line of plain text; bar times are UTC dates, never epoch milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker


@dataclass(frozen=True)
class RunSummary:
    """A run's ledger in figures."""

    run_id: str
    bars: int
    first_bar: int | None
    last_bar: int | None
    decisions: int
    fills: int
    final_equity: float | None
    total_return: float | None
    buy_and_hold: float | None


def read_summary(factory: sessionmaker[Session], run_id: str, initial_cash: float) -> RunSummary:
    """The summary of `run_id` (see the module contract)."""
    from sqlalchemy import func, select

    from agent.db.models import BalanceSnapshot, Decision, Fill, Run
    from agent.runs.metrics import RunMetrics

    with factory() as session:
        bars, first, last = session.execute(
            select(func.count(), func.min(BalanceSnapshot.bar_ts), func.max(BalanceSnapshot.bar_ts)).where(
                BalanceSnapshot.run_id == run_id
            )
        ).one()
        decisions = session.scalar(select(func.count()).where(Decision.run_id == run_id)) or 0
        fills = session.scalar(select(func.count()).where(Fill.run_id == run_id)) or 0
        equity = session.scalar(
            select(BalanceSnapshot.equity)
            .where(BalanceSnapshot.run_id == run_id)
            .order_by(BalanceSnapshot.bar_ts.desc())
            .limit(1)
        )
        run = session.get(Run, run_id)
        metrics = RunMetrics.from_json(run.metrics) if run is not None else None
    final = None if equity is None else float(equity)
    total = metrics.strategy.total_return if metrics is not None else None
    if (total is None or total != total) and final is not None and initial_cash > 0:  # none or NaN
        total = final / initial_cash - 1.0
    hold = metrics.buy_and_hold.total_return if metrics is not None and metrics.buy_and_hold else None
    hold = None if hold is None or hold != hold else hold
    return RunSummary(run_id, int(bars), first, last, int(decisions), int(fills), final, total, hold)


def summary_line(s: RunSummary) -> str:
    """`replay summary: 240 bars (2025-09-10 00:00 to 2025-09-19 22:00 UTC), 480 decisions, 19 fills,
    return -1.72% (buy & hold +3.51%), final equity 9,827.64`."""
    span = f" ({_day(s.first_bar)} to {_day(s.last_bar)} UTC)" if s.first_bar is not None else ""
    ret = "n/a" if s.total_return is None else f"{100 * s.total_return:+.2f}%"
    hold = "" if s.buy_and_hold is None else f" (buy & hold {100 * s.buy_and_hold:+.2f}%)"
    equity = "n/a" if s.final_equity is None else f"{s.final_equity:,.2f}"
    return (
        f"replay summary: {s.bars} bars{span}, {s.decisions} decisions, {s.fills} fills, "
        f"return {ret}{hold}, final equity {equity}"
    )


def _day(ms: int | None) -> str:
    return "-" if ms is None else f"{datetime.fromtimestamp(ms / 1000, UTC):%Y-%m-%d %H:%M}"
