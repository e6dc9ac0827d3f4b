"""Circuit breakers: conditions under which no new entry is allowed, whatever the proposal.

Contracts:
- Pure functions of the portfolio state at the close of bar t (after the broker marked it) and of the `risk`
  section of the settings (`RiskSettings`, never the whole `Settings`), except `kill_switch_active`, which
  looks at the file system: the caller passes it the path (`settings.risk.kill_switch_file`) and hands
  the answer to `allowance` as a bool.
- Daily loss limit: equity at close_t has lost `risk.daily_loss_limit` (or more) of
  `PortfolioState.day_start_equity`, the equity at the start of the current UTC day (the broker rolls it).
- Maximum drawdown: equity at close_t is `risk.max_drawdown` (or more) below `PortfolioState.peak_equity`.
  Not latching: it clears only if held positions recover (no entries are possible meanwhile).
- Cooldown: after a stop-out at bar s the broker sets `cooldown_until[symbol] = cooldown_end(s, ...)`
  = s + cooldown_bars bars; decisions at bars t < cooldown_until may not enter (cooldown_bars = 3: the
  decisions at s, s+1 and s+2 are blocked; 0 disables it).
- Kill switch: the file `risk.kill_switch_file` exists (the settings store it absolute: a relative path
  is taken from the configuration file's folder; one passed here directly is taken from the working
  directory; None or '' is no switch), or, given the run's session factory, the operator's kill switch or
  pause of new entries is on in the database (`agent.db.controls`, set by `tradegraph serve`) and the run
  is a live one (`CONTROLLED_KINDS`: the daemon's, a paper tick's).
- Breakers never force an exit: held positions may still be sold or closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from agent.db.controls import read_controls
from agent.db.models import Run
from agent.execution import bar
from agent.portfolio import PortfolioState
from agent.risk.models import COOLDOWN, DAILY_LOSS_LIMIT, KILL_SWITCH, MAX_DRAWDOWN
from agent.runs.kinds import RunKind

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from agent.config import RiskSettings


CONTROLLED_KINDS = frozenset({RunKind.DAEMON.value, RunKind.PAPER.value})
"""Runs the database controls (kill switch, pause) apply to: the ones trading on the live clock."""


@dataclass(frozen=True)
class Breach:
    """A breaker that blocks new entries, and why."""

    kind: str
    detail: str


def kill_switch_active(
    path: str | None, session: sessionmaker[Session] | None = None, run_id: str | None = None
) -> bool:
    """True when the kill-switch file `path` exists, or a control in the database behind the session
    factory `session` stops new entries (the kill switch or the pause) and applies to `run_id` (a live run:
    `CONTROLLED_KINDS`; backtests and campaigns on the same database are not operated)."""
    if path and Path(str(path)).exists():
        return True
    if session is None or not read_controls(session).entries_stopped:
        return False
    if run_id is None:
        return True
    with session() as db:
        kind = db.scalar(select(Run.kind).where(Run.id == run_id))
    return kind is None or kind in CONTROLLED_KINDS


def daily_loss(state: PortfolioState, equity: float, risk: RiskSettings) -> Breach | None:
    """The daily loss limit, if today's loss reached it."""
    start = state.day_start_equity
    if not bar.daily_loss_hit(equity, start, risk.daily_loss_limit):  # the per-bar semantics' own rule
        return None
    loss = 1.0 - equity / start
    return Breach(
        DAILY_LOSS_LIMIT,
        f"equity {equity:.2f} is {loss:.2%} below the day's start {start:.2f} "
        f"(limit {risk.daily_loss_limit:.2%})",
    )


def drawdown(state: PortfolioState, equity: float, risk: RiskSettings) -> Breach | None:
    """The maximum-drawdown breaker, if the drawdown from peak equity reached it."""
    peak = state.peak_equity
    if not bar.drawdown_hit(equity, peak, risk.max_drawdown):  # the per-bar semantics' own rule
        return None
    depth = 1.0 - equity / peak
    return Breach(
        MAX_DRAWDOWN,
        f"equity {equity:.2f} is {depth:.2%} below the peak {peak:.2f} (limit {risk.max_drawdown:.2%})",
    )


def cooldown_end(stop_bar_ts: int, cooldown_bars: int, bar_ms: int) -> int:
    """The first bar at which a symbol stopped out at `stop_bar_ts` may be entered again by a decision
    (`agent.execution.bar.cooldown_end`, the rule the broker and the engine apply)."""
    return int(bar.cooldown_end(stop_bar_ts, cooldown_bars, bar_ms))


def cooldown(state: PortfolioState, symbol: str, bar_ts: int) -> Breach | None:
    """The cooldown after a stop-out, if `symbol` is still in it at `bar_ts`."""
    until = state.cooldown_until.get(symbol)
    if until is not None and bar.cooling(float(until), bar_ts):
        return Breach(COOLDOWN, f"{symbol} stopped out recently; no entry before bar {until}")
    return None


def entry_blocks(
    state: PortfolioState,
    symbol: str,
    equity: float,
    bar_ts: int,
    risk: RiskSettings,
    kill_switch: bool,
) -> list[Breach]:
    """Every breaker that forbids a new entry in `symbol` at `bar_ts` (empty when entries are allowed)."""
    found: list[Breach | None] = [
        Breach(KILL_SWITCH, "the kill switch is on") if kill_switch else None,
        daily_loss(state, equity, risk),
        drawdown(state, equity, risk),
        cooldown(state, symbol, bar_ts),
    ]
    return [b for b in found if b is not None]
