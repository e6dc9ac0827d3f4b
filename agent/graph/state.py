"""The graph's state for one tick (one closed bar, all symbols).

Contracts:
- Typed end to end: plain values and the layers' own frozen records (`PortfolioState`, `Bar`,
  `PendingTarget`, `BarOutcome`, `Allowance`, `Analysis`, `Proposal`, `RiskResult`) and enums, all
  registered with the checkpointer's serializer (`checkpoint.STATE_TYPES`), so LangGraph's checkpointer
  stores them as they are and a tick interrupted after any node resumes from there with equal values.
- Every node returns a partial update; no node mutates what it received.
- `bar_ts` is the open time (ms, UTC) of the last closed bar t; nothing after t is ever read.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Protocol, TypedDict

from agent.broker.models import Bar, BarOutcome, PendingTarget
from agent.llm.schema import Analysis
from agent.portfolio import PortfolioState
from agent.risk.inputs import Proposal
from agent.risk.models import Allowance, RiskResult


class LLMStatus(StrEnum):
    """Whether the model could be asked this tick (why not is `TickState.llm_reason`)."""

    OK = "ok"
    UNAVAILABLE = "unavailable"
    """No gateway, the gateway failed, or its circuit is open."""
    SKIPPED = "skipped"
    """Not asked: nothing to decide, or a rule strategy's run."""


class TickState(TypedDict, total=False):
    """State flowing through one tick."""

    run_id: Annotated[str, "the run this tick belongs to"]
    bar_ts: Annotated[int, "open time (ms, UTC) of the last closed bar t"]
    symbols: Annotated[list[str], "symbols traded in this run"]
    strategy: Annotated[str, "llm | hybrid | the name of a rule strategy (`mode.StrategyMode.of`)"]
    bars: Annotated[dict[str, Bar], "bar t per symbol (observed)"]
    marks: Annotated[dict[str, float], "close of bar t per symbol (observed)"]
    atr: Annotated[dict[str, float], "ATR at bar t per symbol (NaN → absent)"]
    skipped: Annotated[dict[str, str], "symbol → why it is not traded this tick (stale data, ...)"]
    portfolio: Annotated[PortfolioState, "the book: before bar t is settled, then after"]
    pending: Annotated[dict[str, PendingTarget], "targets waiting for the next bar's open"]
    outcome: Annotated[BarOutcome | None, "orders, fills, events and marks of settling bar t"]
    settle_error: Annotated[str | None, "why bar t could not be settled (nothing is traded then)"]
    allowances: Annotated[dict[str, Allowance], "per symbol: allowed actions and max exposure"]
    rule_targets: Annotated[dict[str, float], "rule strategy's target per symbol (rule / hybrid)"]
    analyses: Annotated[dict[str, Analysis], "per symbol: the model's answer"]
    llm_status: Annotated[LLMStatus, "whether the model was asked"]
    llm_reason: Annotated[str | None, "why the model is unavailable (None when it is not)"]
    proposals: Annotated[dict[str, Proposal], "per symbol: the decision proposed to the risk layer"]
    final: Annotated[dict[str, RiskResult], "per symbol: the risk layer's result"]
    recorded: Annotated[bool, "the ledger holds this tick"]


class Node(Protocol):
    """A node: the tick's state in, a partial update out (a `TickState` with only the keys it sets).
    LangGraph's node protocols name the argument `state`, so a node is a function of one parameter called
    `state`."""

    def __call__(self, state: TickState) -> TickState: ...
