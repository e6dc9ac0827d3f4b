"""The decision schema the model must answer in, and what the gateway hands back.

Contracts:
- `TradeDecision` is the JSON the model returns for ONE symbol; it is validated with `extra="forbid"` and
  no NaN or infinity. `target_exposure` is the fraction of equity to hold in the symbol afterwards (spot,
  0..1). Prices (`stop_loss`, `take_profit`) are absolute quote prices.
- Numbers are strict: a JSON number (integer or not) is accepted, a boolean or a string never is (`true`
  is not 1.0, `"0.8"` is not 0.8). One exception, asked for by the llama.cpp profile, whose grammar cannot
  bound numbers: when validated with `context=PRICES_AS_TEXT`, a price may also be a plain decimal string
  (`PRICE_TEXT`, e.g. "64250.5").
- Semantic checks (right symbol, allowed action, sane stop relative to price, size caps) belong to the risk
  layer, which records every clamp; the schema only guarantees shape and ranges.
- `DecisionResult` is what the gateway returns for every request, whatever happened: when the call or the
  parse fails, `abstained=True`, `reason` says why, `fault` names the kind (`agent.llm.faults.LLMFault`),
  and `decision` is a HOLD. It never raises for a bad
  answer.
- `Analysis` is a `DecisionResult` as the graph's state and the ledger carry it: without the request's
  messages (those live in `llm_calls`), with the prompt's mapping back (alias, price scale). A frozen record
  of plain values, enums and the `TradeDecision`, which the checkpointer's serializer stores as is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from agent.db.prompts import PromptText
from agent.llm.faults import LLMFault


class Action(StrEnum):
    """What the model may propose for a symbol."""

    BUY = "buy"
    SELL = "sell"
    HOLD = "hold"
    CLOSE = "close"


RATIONALE_MAX = 600
INVALIDATION_MAX = 300
PRICE_TEXT = re.compile(r"(0|[1-9][0-9]*)([.][0-9]+)?", re.ASCII)
"""A price written as text: ASCII digits, an optional fraction; no sign, exponent or spaces."""


class _PricesAsText:
    """Validation context marker: prices may be decimal strings (see the module contract)."""


PRICES_AS_TEXT = _PricesAsText()


class TradeDecision(BaseModel):
    """One symbol's decision, exactly as the model must emit it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    symbol: str = Field(max_length=32, description="the symbol this decision is for, e.g. BTC/USDT")
    action: Action
    target_exposure: float = Field(
        ge=0.0, le=1.0, strict=True, description="fraction of equity to hold afterwards"
    )
    confidence: float = Field(ge=0.0, le=1.0, strict=True)
    stop_loss: float | None = Field(
        None, gt=0.0, strict=True, description="absolute price; required for entries"
    )
    take_profit: float | None = Field(None, gt=0.0, strict=True, description="absolute price")
    invalidation: str = Field("", max_length=INVALIDATION_MAX, description="what would prove this wrong")
    rationale: str = Field(max_length=RATIONALE_MAX, description="short reason, plain text")

    @field_validator("stop_loss", "take_profit", mode="before")
    @classmethod
    def _price_text(cls, value: Any, info: ValidationInfo) -> Any:
        """A decimal string is a price only where the schema sent asked for one (`PRICES_AS_TEXT`)."""
        if info.context is PRICES_AS_TEXT and isinstance(value, str) and PRICE_TEXT.fullmatch(value):
            return float(value)
        return value


def hold(symbol: str, rationale: str) -> TradeDecision:
    """A HOLD decision (used for abstentions and fallbacks)."""
    return TradeDecision(
        symbol=symbol,
        action=Action.HOLD,
        target_exposure=0.0,
        confidence=0.0,
        rationale=rationale[:RATIONALE_MAX],
    )


@dataclass(frozen=True)
class DecisionRequest:
    """One question to the model: the messages for one symbol and what it may answer."""

    symbol: str
    messages: tuple[dict[str, str], ...]
    prompt_hash: str
    allowed_actions: tuple[Action, ...] = tuple(Action)
    max_exposure: float = 1.0
    run_id: str | None = None
    bar_ts: int | None = None
    shrink: Callable[[], DecisionRequest | None] | None = None
    """Rebuilds this request with a smaller context (after a context-length 400); None = cannot."""
    stored: PromptText | None = None
    """`messages` as the call store keeps them, when the prompt builder serialised them already
    (`Prompt.stored`); None: the gateway serialises them."""


@dataclass(frozen=True)
class DecisionResult:
    """The gateway's answer to a `DecisionRequest`; always present, possibly abstained."""

    request: DecisionRequest
    decision: TradeDecision
    abstained: bool
    reason: str | None = None
    llm_call_id: int | None = None
    model: str | None = None
    reasoning: str | None = None
    response_text: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    latency_ms: float | None = None
    from_cache: bool = False
    extra: dict[str, Any] | None = None
    fault: LLMFault | None = None
    """Why it abstained, as a closed kind (None for a usable answer); `reason` has the detail."""


@dataclass(frozen=True)
class Analysis:
    """The model's answer for one symbol at one bar, as the graph and the ledger carry it (see the module
    contract)."""

    symbol: str
    """The request's symbol (the alias under leakage control); the graph keys analyses by the real one."""
    decision: TradeDecision
    abstained: bool
    prompt_hash: str = ""
    fault: LLMFault | None = None
    reason: str | None = None
    llm_call_id: int | None = None
    model: str | None = None
    reasoning: str | None = None
    response_text: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    latency_ms: float | None = None
    from_cache: bool = False
    price_scale: float = 1.0
    """Real price = prompt price × `price_scale` (leakage control; 1 otherwise)."""
    alias: str | None = None
    """The symbol's name in the prompt under leakage control."""

    @classmethod
    def of(cls, result: DecisionResult, price_scale: float = 1.0, alias: str | None = None) -> Analysis:
        """`result` without its request's messages, with its prompt's mapping back."""
        shared = {f.name: getattr(result, f.name) for f in fields(cls) if hasattr(result, f.name)}
        request = result.request
        return cls(
            symbol=request.symbol,
            prompt_hash=request.prompt_hash,
            price_scale=price_scale,
            alias=alias,
            **shared,
        )
