"""Records of the paper broker: its inputs (bars, pending targets, market rules) and outputs (orders, fills,
events), plus the client-order-id rule.

Contracts:
- `MarketRules` is `agent.market.exchange.MarketRules` (amount step, minimum amount, minimum notional,
  taker/maker fee), re-exported here; the fee fills pay is `agent.execution.costs.effective_fee`.
- A `PendingTarget` is a target exposure decided at close_{t-1}, executed at open_t, with the exit plan an
  entry (from flat) stores on the position: stop-loss and take-profit levels decided with it (the model's
  via the risk layer, or a rule strategy's, as the backtest engine applies them) and an optional trailing
  distance. `from_result` makes one from a risk result only when it `changes`.
- `client_order_id(run, symbol, bar, leg)` is deterministic (`{run}-{BASEQUOTE}-{bar_ts}-{leg}`, characters
  outside [A-Za-z0-9_-] dropped, at most 96 characters): a retried tick produces the same ids, and the
  unique `orders.client_order_id` stops a second fill.
- Legs: `target` (the order moving to a pending target), `exit` (a stop-loss, trailing-stop or
  take-profit exit) and `initial` (the initial position, at the first bar); a symbol has at most one of
  each per bar.
- `FillTerms` also carries the run's conventions (`agent.execution.conventions`): the fill timing
  (`next_open`, or `same_open`: a pending target decided at bar t's open fills at that open) and the order
  style (`target`, or `order_fraction`: a pending "target" is an order fraction in [-1, 1]); the fixed fee
  and the initial position are `[broker]` settings. The defaults are the agent's: next open, targets.
- All records are frozen dataclasses of plain values: the graph's state holds them as they are, and the
  checkpointer's serializer (`agent.graph.checkpoint.STATE_TYPES`) stores and restores them exactly. They
  carry every column the `orders` and `fills` tables need.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.config import BrokerSettings, RiskSettings, Settings
from agent.execution.conventions import FillTiming, OrderStyle
from agent.market.candles import timeframe_ms
from agent.market.exchange import MarketRules
from agent.portfolio import PortfolioState

if TYPE_CHECKING:
    from agent.risk.models import RiskResult

__all__ = [
    "Bar",
    "BarOutcome",
    "BrokerEvent",
    "FillRecord",
    "FillTerms",
    "MarketRules",
    "OrderRecord",
    "PendingTarget",
    "client_order_id",
]

TARGET_LEG = "target"
EXIT_LEG = "exit"
INITIAL_LEG = "initial"
_MAX_ID = 96


def client_order_id(run_id: str, symbol: str, bar_ts: int, leg: str) -> str:
    """The deterministic id of an order (see the module contract)."""
    raw = f"{run_id}-{re.sub(r'[^A-Za-z0-9_]', '', symbol)}-{bar_ts}-{leg}"
    clean = re.sub(r"[^A-Za-z0-9_-]", "", raw)
    if len(clean) <= _MAX_ID:
        return clean
    digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
    return f"{clean[: _MAX_ID - 17]}-{digest}"


@dataclass(frozen=True)
class FillTerms:
    """The settings the paper broker reads: fills, fees and the initial position (`[broker]`), the book's
    limits, cooldown and breakers (`[risk]`), the bar length (the run's timeframe), and the run's fill timing
    and order style."""

    risk: RiskSettings
    broker: BrokerSettings
    bar_ms: int
    timing: FillTiming = "next_open"
    """`same_open`: a pending target decided at bar t's open (decided_ts == bar_ts) fills at that open."""
    style: OrderStyle = "target"
    """`order_fraction`: pending targets are order fractions (+f buys with f of cash, -f sells f held)."""

    @classmethod
    def of(
        cls, settings: Settings, timing: FillTiming = "next_open", style: OrderStyle = "target"
    ) -> FillTerms:
        """The terms a run with `settings` fills on."""
        return cls(settings.risk, settings.broker, timeframe_ms(settings.timeframe), timing, style)


@dataclass(frozen=True)
class Bar:
    """One symbol's OHLCV bar (volume in the base currency)."""

    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class PendingTarget:
    """A target exposure waiting for the next bar's open, with the exit plan an entry stores."""

    symbol: str
    target_exposure: float
    """The risk result's `target_exposure` (fraction of equity; the ledger's `decisions.final_exposure`);
    with `FillTerms.style` `order_fraction`, the order fraction (-1..1)."""
    decided_ts: int
    """Open time of the bar at whose close the target was decided."""
    stop_loss: float | None = None
    take_profit: float | None = None
    invalidation: str = ""
    trailing_stop: float | None = None
    """Trailing distance (price units): the stop follows the highest price since the entry this far below."""

    def plan(self) -> tuple[float, float, float]:
        """(stop-loss level, take-profit level, trailing distance) as the per-bar semantics reads them;
        NaN where there is none."""
        return _level(self.stop_loss), _level(self.take_profit), _level(self.trailing_stop)

    @classmethod
    def from_result(cls, result: RiskResult, decided_ts: int) -> PendingTarget | None:
        """The pending target a risk result produces, or None when it changes nothing."""
        if not result.changes:
            return None
        return cls(
            symbol=result.symbol,
            target_exposure=result.target_exposure,
            decided_ts=decided_ts,
            stop_loss=result.stop_loss,
            take_profit=result.take_profit,
            invalidation=result.invalidation,
            trailing_stop=result.trailing_stop,
        )


def _level(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) and value > 0 else math.nan


@dataclass(frozen=True)
class OrderRecord:
    """A paper market order; a `rejected` one (dust, nothing fillable) has no fill."""

    client_order_id: str
    run_id: str
    symbol: str
    bar_ts: int
    side: str
    amount: float
    """Requested base amount, before the cash, position, volume and precision caps."""
    price: float
    """Reference price (open_t for targets, the stop/take-profit level or a gapped open for exits)."""
    status: str
    """filled | rejected."""
    reason: str
    """entry | increase | decrease | exit | stop_loss | trailing_stop | take_profit, plus ': why' when
    rejected."""
    leg: str
    decided_ts: int | None = None
    """Bar of the decision behind a target order (None for exits)."""
    type: str = "market"


@dataclass(frozen=True)
class FillRecord:
    """The execution of an order: amount, slipped price and fee (in the quote currency)."""

    client_order_id: str
    run_id: str
    symbol: str
    bar_ts: int
    side: str
    amount: float
    price: float
    fee: float
    fee_currency: str


@dataclass(frozen=True)
class BrokerEvent:
    """Something the broker did or could not do (dust, nothing to fill, a stop-out and its cooldown)."""

    symbol: str
    kind: str
    detail: str


@dataclass(frozen=True)
class BarOutcome:
    """The state after bar t was processed, and everything that happened in it."""

    state: PortfolioState
    orders: tuple[OrderRecord, ...]
    fills: tuple[FillRecord, ...]
    events: tuple[BrokerEvent, ...]
    marks: Mapping[str, float]
    """Close of bar t per symbol with a bar."""
    equity: float
    """cash + Σ amount × close_t."""
    in_force: Mapping[str, float] = field(default_factory=dict)
    """Per symbol, the last target acted on (pass it back with a raw target series; see `process_bar`)."""

    def __post_init__(self) -> None:
        for name in ("orders", "fills", "events"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
