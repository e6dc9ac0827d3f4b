"""Notification events: what the daemon tells its users about, one typed frozen record per kind.

Contracts:
- Each record carries its kind as a class constant (`kind`, one of `agent.config.NotifyKind`), the run it
  belongs to and plain values only; `Event` is the closed union of them.
- Times are epoch milliseconds (`bar_ts` a bar's open time); free text (a breaker's detail, a health
  reason) is kept as given and made inert only when a message is written (`agent.notify.text`).
- A breaker is one of `BREAKERS` (the risk layer's kinds for the daily-loss limit and the drawdown
  breaker): a trip is the bar at which it starts to block entries, not every bar it keeps blocking them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from agent.config import NotifyKind

Side = Literal["buy", "sell"]
Breaker = Literal["daily_loss_limit", "max_drawdown"]
BREAKERS: tuple[Breaker, ...] = ("daily_loss_limit", "max_drawdown")
HealthTurn = Literal["degraded", "stalled", "recovered"]


@dataclass(frozen=True)
class FillEvent:
    """An order of the run was filled (one event per fill row of the ledger)."""

    kind: ClassVar[NotifyKind] = "fill"
    run_id: str
    symbol: str
    bar_ts: int
    side: Side
    amount: float
    price: float
    fee: float
    fee_currency: str


@dataclass(frozen=True)
class BreakerTrip:
    """A risk breaker started blocking new entries at `bar_ts`."""

    kind: ClassVar[NotifyKind] = "breaker"
    run_id: str
    bar_ts: int
    breaker: Breaker
    detail: str


@dataclass(frozen=True)
class KillSwitchChange:
    """The kill switch was found on (`on`) or off again at `bar_ts`."""

    kind: ClassVar[NotifyKind] = "kill_switch"
    run_id: str
    bar_ts: int
    on: bool


@dataclass(frozen=True)
class HealthChange:
    """The daemon became degraded or stalled, or recovered (alive again after either)."""

    kind: ClassVar[NotifyKind] = "health"
    run_id: str
    state: HealthTurn
    reason: str | None
    at_ms: int


@dataclass(frozen=True)
class DailySummary:
    """The run's day, sent at the configured hour of the daemon's clock."""

    kind: ClassVar[NotifyKind] = "summary"
    run_id: str
    day: str
    """The UTC date the summary closes (`YYYY-MM-DD`)."""
    bar_ts: int
    """The bar whose close reached the summary hour."""
    equity: float
    change: float | None
    """Equity change since the previous summary (or the daemon's start), as a fraction."""
    fills: int
    trips: int


Event = FillEvent | BreakerTrip | KillSwitchChange | HealthChange | DailySummary
