"""Seams of the LLM stage: what the agent graph needs from the context builder and the gateway.

Real implementations: `agent.llm.context.MarketContextBuilder`, `agent.llm.gateway.LLMGateway`.
Test fakes: `agent.testing.fakes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from agent.db.prompts import PromptText
from agent.llm.schema import Action, DecisionRequest, DecisionResult
from agent.portfolio import PortfolioState


@dataclass(frozen=True)
class PastDecision:
    """A previous decision and, when known at the current bar, how it turned out."""

    bar_ts: int
    action: Action
    target_exposure: float
    confidence: float
    rationale: str
    realised_return: float | None = None


@dataclass(frozen=True)
class ContextInput:
    """Everything the prompt for one symbol at one bar may use; all of it known at that bar."""

    symbol: str
    candles: pd.DataFrame
    """Point in time: the last row is the last *closed* bar t; nothing after t."""
    portfolio: PortfolioState | None
    """None in the stateless prompt mode: no account, positions or past outcomes are shown."""
    marks: dict[str, float]
    recent_decisions: tuple[PastDecision, ...] = ()
    allowed_actions: tuple[Action, ...] = tuple(Action)
    max_exposure: float = 1.0


@dataclass(frozen=True)
class Prompt:
    """Rendered messages: a long byte-stable prefix first, the volatile tail last."""

    messages: tuple[dict[str, str], ...]
    prompt_hash: str
    estimated_tokens: int
    stable_prefix_chars: int
    price_scale: float = 1.0
    """Real price = price in the prompt × price_scale (leakage control rebases prices; else 1.0)."""
    alias: str | None = None
    """The name the symbol goes by in the prompt (leakage control hides tickers); None = real symbol."""
    stored: PromptText | None = None
    """The messages as the call store keeps them (canonical JSON; its digest is `prompt_hash`), serialised
    once here and reused by the gateway; None: the gateway serialises them."""


class ContextBuilder(Protocol):
    """Turns point-in-time market and portfolio state into a prompt that fits a token budget."""

    def build(self, ctx: ContextInput, budget_tokens: int | None = None) -> Prompt: ...


class DecisionGateway(Protocol):
    """Asks the model; always returns a result per request (abstained on any fault), never raises for
    a bad answer. Raises `LLMUnavailable` only when the endpoint cannot be used at all."""

    async def decide_many(self, requests: Sequence[DecisionRequest]) -> list[DecisionResult]: ...
