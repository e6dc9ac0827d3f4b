"""`tradegraph status`: is the daemon alive, what did it do last, what does its run hold (read from the db).

Contracts:
- Read-only. `read_status(factory, now_ms, run_id)` gathers the daemon's health (`agent.daemon.health`:
  alive, degraded, stalled or stopped, why, and the last error), the lease (holder, heartbeat age, next
  wake-up), the run's last balance snapshot (equity, cash), its open positions at that bar, its latest
  decisions, its last journalled tick and its recent skipped, failed or discarded ticks. Without `run_id`
  it reports the run of the lease (the daemon running or last run on this database).
- `render(status)` turns it into Rich tables; nothing here prints. Text from the model or from errors
  (rationales, tick reasons, the lease note) goes in as `agent.textsafe.for_terminal` cells: never markup.
- The `state` row is the health's state, never the heartbeat alone; `reason` and `last error` say why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.daemon import journal
from agent.daemon.health import Health, read_health
from agent.daemon.journal import JournalEntry
from agent.daemon.lease import LeaseInfo, read_lease
from agent.db.models import BalanceSnapshot, Decision, PositionSnapshot, Run
from agent.textsafe import for_terminal

RATIONALE_SHOWN = 60


@dataclass(frozen=True)
class DaemonStatus:
    """Everything `tradegraph status` shows."""

    now_ms: int
    lease: LeaseInfo | None
    run: dict[str, Any] | None = None
    balance: dict[str, Any] | None = None
    positions: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    last_tick: JournalEntry | None = None
    problems: list[JournalEntry] = field(default_factory=list)
    health: Health = field(default_factory=lambda: Health("stopped"))

    @property
    def alive(self) -> bool:
        """Held lease with a fresh heartbeat (judged by the database's clock), however the ticks go."""
        return self.lease is not None and self.lease.alive()


def read_status(
    factory: sessionmaker[Session], now_ms: int, run_id: str | None = None, limit: int = 10
) -> DaemonStatus:
    """The daemon's status (see the module contract)."""
    lease = read_lease(factory)
    run_id = run_id or (lease.run_id if lease is not None else None)
    health = read_health(factory, now_ms, run_id)
    if run_id is None:
        return DaemonStatus(now_ms, lease, health=health)
    with factory() as session:
        run = session.get(Run, run_id)
        if run is None:
            return DaemonStatus(now_ms, lease, {"id": run_id, "missing": True}, health=health)
        info = {
            "id": run.id,
            "kind": run.kind,
            "strategy": run.strategy,
            "symbols": list(run.symbols),
            "timeframe": run.timeframe,
            "status": run.status,
            "params": dict(run.params),
        }
        balance = session.scalars(
            select(BalanceSnapshot)
            .where(BalanceSnapshot.run_id == run_id)
            .order_by(BalanceSnapshot.bar_ts.desc())
            .limit(1)
        ).first()
        bal = (
            None
            if balance is None
            else {
                "bar_ts": balance.bar_ts,
                "cash": balance.cash,
                "equity": balance.equity,
                "fees_paid": balance.fees_paid,
            }
        )
        positions = (
            []
            if balance is None
            else [
                {
                    "symbol": p.symbol,
                    "amount": p.amount,
                    "avg_price": p.avg_price,
                    "mark_price": p.mark_price,
                    "stop_loss": p.stop_loss,
                    "take_profit": p.take_profit,
                }
                for p in session.scalars(
                    select(PositionSnapshot)
                    .where(PositionSnapshot.run_id == run_id, PositionSnapshot.bar_ts == balance.bar_ts)
                    .order_by(PositionSnapshot.symbol)
                )
            ]
        )
        decisions = [
            {
                "bar_ts": d.bar_ts,
                "symbol": d.symbol,
                "source": d.source,
                "action": d.action,
                "target": d.target_exposure,
                "final": d.final_exposure,
                "confidence": d.confidence,
                "rationale": d.rationale or d.abstain_reason or "",
            }
            for d in session.scalars(
                select(Decision)
                .where(Decision.run_id == run_id)
                .order_by(Decision.bar_ts.desc(), Decision.symbol)
                .limit(limit)
            )
        ]
    last = journal.recent(factory, run_id, limit=1)
    problems = journal.recent(factory, run_id, journal.PROBLEMS, limit)
    return DaemonStatus(
        now_ms, lease, info, bal, positions, decisions, last[0] if last else None, problems, health
    )


def render(status: DaemonStatus) -> Group:
    """Rich tables for `status`."""
    parts: list[Any] = [_daemon_table(status)]
    run = status.run
    if run is None or run.get("missing"):
        return Group(*parts)
    if status.balance is not None:
        parts.append(_account_table(status))
    parts.append(_positions_table(status))
    parts.append(_decisions_table(status))
    parts.append(_problems_table(status))
    return Group(*parts)


def _daemon_table(status: DaemonStatus) -> Table:
    table = Table(title="Daemon", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    lease = status.lease
    if lease is None:
        table.add_row("state", "no daemon has run on this database")
        return table
    age = lease.age_s()
    health = status.health
    table.add_row("state", _STATE_STYLE[health.state].format(health.state))
    if health.reason and health.state != "stopped":
        table.add_row("reason", for_terminal(health.reason))
    if health.last_error is not None and health.state != "alive":
        e = health.last_error
        at = "" if e.finished_at is None else f" (at {e.finished_at:%Y-%m-%d %H:%M:%S})"
        table.add_row("last error", for_terminal(f"bar {_iso(e.bar_ts)}: {e.status}: {e.reason or ''}{at}"))
    table.add_row("run", str((status.run or {}).get("id", lease.run_id)))
    table.add_row("mode", str(lease.mode))
    if lease.holder is not None:
        table.add_row("process", f"pid {lease.pid} on {lease.host}")
    table.add_row("heartbeat", "never" if age is None else f"{age:.1f} s ago (ttl {lease.ttl_s:g} s)")
    if lease.clock_ms is not None:
        table.add_row("clock", _iso(lease.clock_ms, seconds=True))
    if status.last_tick is not None:
        t = status.last_tick
        why = f" ({t.reason})" if t.reason else ""
        table.add_row("last tick", for_terminal(f"bar {_iso(t.bar_ts)}: {t.status}{why}"))
    if lease.next_tick_ms is not None and status.alive:
        table.add_row("next wake-up", _iso(lease.next_tick_ms, seconds=True))
    if lease.note:
        table.add_row("note", for_terminal(lease.note))
    return table


_STATE_STYLE = {
    "alive": "[green]{}[/]",
    "degraded": "[yellow]{}[/]",
    "stalled": "[red]{}[/]",
    "stopped": "{}",
}


def _account_table(status: DaemonStatus) -> Table:
    bal = status.balance or {}
    table = Table(title="Account")
    table.add_column("after bar")
    for col in ("equity", "cash", "fees paid"):
        table.add_column(col, justify="right")
    money = (f"{bal[k]:,.2f}" for k in ("equity", "cash", "fees_paid"))
    table.add_row(_iso(bal["bar_ts"]), *money)
    return table


def _positions_table(status: DaemonStatus) -> Table:
    table = Table(title="Positions")
    for col in ("symbol", "amount", "avg price", "mark", "value", "stop", "take profit"):
        table.add_column(col, justify="left" if col == "symbol" else "right")
    for p in status.positions:
        table.add_row(
            p["symbol"],
            f"{p['amount']:.6g}",
            _num(p["avg_price"]),
            _num(p["mark_price"]),
            _num(p["amount"] * p["mark_price"]),
            _num(p["stop_loss"]),
            _num(p["take_profit"]),
        )
    if not status.positions:
        table.add_row("(flat)", "", "", "", "", "", "")
    return table


def _decisions_table(status: DaemonStatus) -> Table:
    table = Table(title="Latest decisions")
    for col in ("bar", "symbol", "source", "action", "target", "sent", "rationale"):
        table.add_column(col)
    for d in status.decisions:
        why = d["rationale"]
        why = why if len(why) <= RATIONALE_SHOWN else why[: RATIONALE_SHOWN - 1] + "…"
        table.add_row(
            _iso(d["bar_ts"]),
            for_terminal(d["symbol"]),
            for_terminal(d["source"]),
            for_terminal(d["action"]),
            _num(d["target"]),
            _num(d["final"]),
            for_terminal(why),
        )
    return table


def _problems_table(status: DaemonStatus) -> Table:
    table = Table(title="Recent skips and errors")
    for col in ("bar", "status", "reason", "at"):
        table.add_column(col)
    for e in status.problems:
        at = "" if e.finished_at is None else f"{e.finished_at:%Y-%m-%d %H:%M:%S}"
        table.add_row(_iso(e.bar_ts), e.status, for_terminal(e.reason or ""), at)
    if not status.problems:
        table.add_row("(none)", "", "", "")
    return table


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}"


def _iso(ms: int, seconds: bool = False) -> str:
    fmt = "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime(fmt)
