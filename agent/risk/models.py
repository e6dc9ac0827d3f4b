"""Records of the risk layer: what may be proposed (`Allowance`), what was made of a proposal (`RiskResult`),
and every change on the way (`ClampEvent`).

Contracts:
- Immutable and JSON-able: `to_dict()` gives plain data (non-finite numbers become strings, so PostgreSQL's
  JSON accepts them) and `from_dict()` rebuilds the record, for the graph's checkpointed state.
- A `ClampEvent` is recorded for every change the risk layer makes to a proposal, for every rejection and for
  every breaker that limits the allowance; `kind` names the rule (the constants below), `field` what it
  changed, `before`/`after` the values, `detail` one readable sentence.
- `RiskResult.changes` is True exactly when a new target must go to the broker; a HOLD, a rejection, or a
  proposal clamped back to the current exposure never changes anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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


def _plain(value: Value) -> Value:
    """A JSON-safe copy of `value` (NaN and infinities as strings)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@dataclass(frozen=True)
class ClampEvent:
    """One change, rejection or limit applied by the risk layer."""

    kind: str
    field: str
    before: Value
    after: Value
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe data."""
        return {
            "kind": self.kind,
            "field": self.field,
            "before": _plain(self.before),
            "after": _plain(self.after),
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClampEvent:
        """Rebuild an event written by `to_dict`."""
        return cls(**dict(data))


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

    @property
    def llm_needed(self) -> bool:
        """False when HOLD is the only possible answer: then no model is asked."""
        return self.actions != (Action.HOLD,)

    @property
    def entries_blocked(self) -> bool:
        """True when a breaker, the kill switch or a cooldown forbids new entries."""
        return any(e.kind in (KILL_SWITCH, DAILY_LOSS_LIMIT, MAX_DRAWDOWN, COOLDOWN) for e in self.events)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe data."""
        return {
            "symbol": self.symbol,
            "bar_ts": self.bar_ts,
            "actions": [a.value for a in self.actions],
            "max_exposure": self.max_exposure,
            "current_exposure": self.current_exposure,
            "equity": self.equity,
            "caps": {k: _plain(v) for k, v in self.caps.items()},
            "binding": self.binding,
            "events": [e.to_dict() for e in self.events],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Allowance:
        """Rebuild an allowance written by `to_dict`."""
        return cls(
            symbol=data["symbol"],
            bar_ts=int(data["bar_ts"]),
            actions=tuple(Action(a) for a in data["actions"]),
            max_exposure=float(data["max_exposure"]),
            current_exposure=float(data["current_exposure"]),
            equity=float(data["equity"]),
            caps={k: float(v) for k, v in data.get("caps", {}).items()},
            binding=data.get("binding", ""),
            events=tuple(ClampEvent.from_dict(e) for e in data.get("events", ())),
        )


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

    @property
    def changes(self) -> bool:
        """True when a new target goes to the broker."""
        return not self.rejected and self.action is not Action.HOLD

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-safe data (the proposal is kept exactly, non-finite values as strings)."""
        proposed = {k: _plain(v) for k, v in self.proposed.model_dump(mode="python").items()}
        proposed["action"] = str(proposed["action"])
        return {
            "symbol": self.symbol,
            "source": self.source.value,
            "proposed": proposed,
            "action": self.action.value,
            "target_exposure": self.target_exposure,
            "current_exposure": self.current_exposure,
            "stop_loss": self.stop_loss,
            "take_profit": self.take_profit,
            "invalidation": self.invalidation,
            "rejected": self.rejected,
            "changes": self.changes,
            "events": [e.to_dict() for e in self.events],
            "trailing_stop": self.trailing_stop,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskResult:
        """Rebuild a result written by `to_dict` (the proposal without re-validation, as it was)."""
        raw = dict(data["proposed"])
        for key in ("target_exposure", "confidence", "stop_loss", "take_profit"):
            if isinstance(raw.get(key), str):
                raw[key] = float(raw[key])
        try:
            raw["action"] = Action(raw["action"])
        except ValueError:
            pass
        return cls(
            symbol=data["symbol"],
            source=DecisionSource(data["source"]),
            proposed=TradeDecision.model_construct(**raw),
            action=Action(data["action"]),
            target_exposure=float(data["target_exposure"]),
            current_exposure=float(data["current_exposure"]),
            stop_loss=data.get("stop_loss"),
            take_profit=data.get("take_profit"),
            invalidation=data.get("invalidation", ""),
            rejected=bool(data["rejected"]),
            events=tuple(ClampEvent.from_dict(e) for e in data.get("events", ())),
            trailing_stop=data.get("trailing_stop"),
        )
