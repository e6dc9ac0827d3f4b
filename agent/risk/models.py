"""Records of the risk layer: what may be proposed (`Allowance`), what was made of a proposal (`RiskResult`),
and every change on the way (`ClampEvent`).

Contracts:
- Immutable records of plain values and enums: the graph's state holds them as they are, and the
  checkpointer's serializer (`agent.graph.checkpoint.STATE_TYPES`) stores and restores them exactly (a
  sequence read back as a list is made a tuple again on construction).
- A `ClampEvent` is recorded for every change the risk layer makes to a proposal, for every rejection and for
  every breaker that limits the allowance; `kind` names the rule (the constants below), `field` what it
  changed, `before`/`after` the values, `detail` one readable sentence.
- `RiskResult.changes` is True exactly when a new target must go to the broker; a HOLD, a rejection, or a
  proposal clamped back to the current exposure never changes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from agent.llm.schema import Action, TradeDecision

# Rejections: the proposal is refused and becomes a HOLD.
UNKNOWN_SYMBOL = "unknown_symbol"
NON_FINITE = "non_finite"
OUT_OF_RANGE = "out_of_range"
BAD_MARKET_DATA = "bad_market_data"
ACTION_NOT_ALLOWED = "action_not_allowed"
LOW_CONFIDENCE = "low_confidence"
INCONSISTENT_ACTION = "inconsistent_action"
NOTHING_TO_SELL = "nothing_to_sell"
NO_VOLATILITY = "no_volatility"
NO_EXIT_PLAN = "no_exit_plan"
DUST = "dust"
# Clamps: the proposal goes ahead, changed.
EXPOSURE_CAP = "exposure_cap"
CLOSE_TARGET = "close_target"
STOP_LOSS_DEFAULT = "stop_loss_default"
TAKE_PROFIT_DEFAULT = "take_profit_default"
EXIT_PLAN_KEPT = "exit_plan_kept"
STOP_RISK = "stop_risk"
"""The loss at the stop (the model's or the default ATR stop, whichever is wider) would exceed
`risk_per_trade` of equity: the increase is shrunk to it (or refused when nothing is left)."""
PORTFOLIO_ROOM = "portfolio_room"
"""The tick's increases together would break `max_gross_exposure` or `min_cash_fraction`: each is scaled
by the same factor (or refused when nothing is left, or when what is left is dust)."""
# Breakers and other limits on the allowance (no new entries).
KILL_SWITCH = "kill_switch"
DAILY_LOSS_LIMIT = "daily_loss_limit"
MAX_DRAWDOWN = "max_drawdown"
COOLDOWN = "cooldown"


class DecisionSource(StrEnum):
    """Who proposed a decision (stored as its value in `decisions.source`)."""

    LLM = "llm"
    RULE = "rule"
    HYBRID = "hybrid"
    """The rule's proposal, confirmed (or vetoed into a HOLD) by the model."""
    FALLBACK = "fallback"
    """The configured fallback (rule or HOLD) when the model gave no usable decision."""
    RISK = "risk"
    """The HOLD recorded when the allowance leaves HOLD as the only action (no one was asked)."""


Value = float | str | None


@dataclass(frozen=True)
class ClampEvent:
    """One change, rejection or limit applied by the risk layer."""

    kind: str
    field: str
    before: Value
    after: Value
    detail: str


@dataclass(frozen=True)
class Allowance:
    """What the model may propose for one symbol at one bar, computed before it is asked."""

    symbol: str
    bar_ts: int
    actions: tuple[Action, ...]
    max_exposure: float
    current_exposure: float
    equity: float
    caps: Mapping[str, float] = field(default_factory=dict)
    binding: str = ""
    """The cap or breaker that sets `max_exposure` (e.g. `cash`, `max_drawdown`)."""
    events: tuple[ClampEvent, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", tuple(self.actions))
        object.__setattr__(self, "events", tuple(self.events))
        object.__setattr__(self, "caps", dict(self.caps))

    @property
    def llm_needed(self) -> bool:
        """False when HOLD is the only possible answer: then no model is asked."""
        return self.actions != (Action.HOLD,)

    @property
    def entries_blocked(self) -> bool:
        """True when a breaker, the kill switch or a cooldown forbids new entries."""
        return any(e.kind in (KILL_SWITCH, DAILY_LOSS_LIMIT, MAX_DRAWDOWN, COOLDOWN) for e in self.events)


@dataclass(frozen=True)
class RiskResult:
    """The risk layer's verdict on one proposal: the final target, its exit plan and every change made."""

    symbol: str
    source: DecisionSource
    """Who proposed."""
    proposed: TradeDecision
    action: Action
    """The action after the risk layer (HOLD when rejected)."""
    target_exposure: float
    """Fraction of equity to hold after the next open (the current exposure when nothing changes)."""
    current_exposure: float
    stop_loss: float | None
    take_profit: float | None
    invalidation: str
    rejected: bool
    events: tuple[ClampEvent, ...] = ()
    trailing_stop: float | None = None
    """A rule strategy's trailing distance for an entry (price units; None for the model's proposals)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", DecisionSource(self.source))  # a stored value is accepted too
        object.__setattr__(self, "events", tuple(self.events))

    @property
    def changes(self) -> bool:
        """True when a new target goes to the broker."""
        return not self.rejected and self.action is not Action.HOLD
