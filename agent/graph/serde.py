"""Records ↔ plain dicts, for the checkpointed graph state (JSON-able, exact round trip).

Portfolio states, broker outcomes, allowances and gateway results cross node boundaries as dicts, so that a
tick interrupted after any node resumes from the checkpoint with exactly the same values.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from agent.broker.models import BarOutcome, BrokerEvent, FillRecord, OrderRecord
from agent.llm.schema import Action, DecisionRequest, DecisionResult, TradeDecision
from agent.portfolio import PortfolioState, Position
from agent.risk.models import Allowance


def portfolio_to_dict(state: PortfolioState) -> dict[str, Any]:
    """A JSON-able copy of `state`."""
    return asdict(state)


def portfolio_from_dict(data: dict[str, Any]) -> PortfolioState:
    """Rebuild a `PortfolioState` written by `portfolio_to_dict`."""
    positions = {s: Position(**p) for s, p in data.get("positions", {}).items()}
    rest = {k: v for k, v in data.items() if k != "positions"}
    rest["cooldown_until"] = {k: int(v) for k, v in rest.get("cooldown_until", {}).items()}
    return PortfolioState(positions=positions, **rest)


def allowance_of(data: dict[str, Any]) -> Allowance:
    """Rebuild an `Allowance` from the state."""
    return Allowance.from_dict(data)


def outcome_to_dict(outcome: BarOutcome) -> dict[str, Any]:
    """A JSON-able copy of a broker `BarOutcome`."""
    return {
        "state": portfolio_to_dict(outcome.state),
        "orders": [o.to_dict() for o in outcome.orders],
        "fills": [f.to_dict() for f in outcome.fills],
        "events": [e.to_dict() for e in outcome.events],
        "marks": dict(outcome.marks),
        "equity": outcome.equity,
        "in_force": dict(outcome.in_force),
    }


def outcome_from_dict(data: dict[str, Any]) -> BarOutcome:
    """Rebuild a `BarOutcome` written by `outcome_to_dict`."""
    return BarOutcome(
        state=portfolio_from_dict(data["state"]),
        orders=tuple(OrderRecord.from_dict(o) for o in data["orders"]),
        fills=tuple(FillRecord.from_dict(f) for f in data["fills"]),
        events=tuple(BrokerEvent.from_dict(e) for e in data["events"]),
        marks=dict(data["marks"]),
        equity=float(data["equity"]),
        in_force=dict(data.get("in_force", {})),
    )


_RESULT_FIELDS = (
    "abstained",
    "reason",
    "llm_call_id",
    "model",
    "reasoning",
    "response_text",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "latency_ms",
    "from_cache",
)


def decision_result_to_dict(result: DecisionResult) -> dict[str, Any]:
    """The gateway's answer without its request's messages (those live in `llm_calls`)."""
    out = {k: getattr(result, k) for k in _RESULT_FIELDS}
    out["decision"] = result.decision.model_dump(mode="json")
    out["symbol"] = result.request.symbol
    out["prompt_hash"] = result.request.prompt_hash
    return out


def decision_result_from_dict(data: dict[str, Any]) -> DecisionResult:
    """Rebuild a `DecisionResult` (with a message-less request) from `decision_result_to_dict`."""
    request = DecisionRequest(symbol=data["symbol"], messages=(), prompt_hash=data["prompt_hash"])
    raw = dict(data["decision"])
    try:
        raw["action"] = Action(raw["action"])
    except ValueError:
        pass
    decision = TradeDecision.model_construct(**raw)
    fields: dict[str, Any] = {k: data.get(k) for k in _RESULT_FIELDS}  # JSON values, as written
    return DecisionResult(request=request, decision=decision, **fields)
