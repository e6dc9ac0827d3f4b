"""The records the ledger's query layer returns (`agent.runs.queries`): frozen, typed, JSON-ready.

Contracts:
- Plain frozen dataclasses of numbers, strings, times and tuples: no ORM rows, no dicts of anything (the
  stored metric set is `dict[str, float]` by metric name). FastAPI serialises them as they are.
- Derived figures (a position's PnL, today's PnL, hit rates, a symbol's PnL) are properties marked
  `computed_field`, so JSON answers carry them too.
- Model text is held raw; escaping belongs to the renderer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import computed_field

from agent.runs.llm_calls import CallRecord

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows; `next_cursor` is the cursor of the next (older) page, None at the end."""

    items: tuple[T, ...]
    limit: int
    offset: int = 0
    total: int | None = None
    next_cursor: int | None = None


@dataclass(frozen=True)
class RunRow:
    """A run as listed: identity, state and its stored metric set (by name; NaN where undefined)."""

    id: str
    kind: str
    strategy: str
    symbols: tuple[str, ...]
    timeframe: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    start_ts: int | None
    end_ts: int | None
    error: str | None
    metrics: dict[str, float]


@dataclass(frozen=True)
class OrderRow:
    """An order a decision led to (or an exit)."""

    id: int
    decision_id: int | None
    symbol: str
    bar_ts: int
    side: str
    amount: float
    price: float | None
    status: str
    reason: str | None


@dataclass(frozen=True)
class Clamp:
    """One risk-layer event on a decision."""

    kind: str
    detail: str


@dataclass(frozen=True)
class DecisionRow:
    """A decision in the timeline."""

    id: int
    run_id: str
    symbol: str
    bar_ts: int
    source: str
    action: str
    target_exposure: float | None
    final_exposure: float | None
    confidence: float | None
    abstained: bool
    abstain_reason: str | None
    rationale: str | None
    clamps: tuple[Clamp, ...]
    orders: tuple[OrderRow, ...]
    llm_call_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class DecisionDetail:
    """A decision with everything behind it: the exact prompt, the call's raw answer and figures."""

    decision: DecisionRow
    model: str | None
    reasoning: str | None
    prompt_hash: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    call: CallRecord | None
    messages: tuple[tuple[str, str], ...]
    """(role, content) of each message the call sent; empty when no prompt is stored."""


@dataclass(frozen=True)
class Position:
    """An open position with its exit plan, at the run's last processed bar."""

    symbol: str
    bar_ts: int
    amount: float
    avg_price: float
    mark_price: float
    stop_loss: float | None
    take_profit: float | None

    @computed_field  # type: ignore[prop-decorator]  # serialised with the record (API answers)
    @property
    def pnl(self) -> float:
        """Unrealised PnL at the mark."""
        return (self.mark_price - self.avg_price) * self.amount


@dataclass(frozen=True)
class Book:
    """A run's last balance, its open positions and today's PnL (UTC day of its last bar)."""

    bar_ts: int | None
    cash: float | None
    equity: float | None
    day_start_equity: float | None
    positions: tuple[Position, ...]

    @computed_field  # type: ignore[prop-decorator]  # serialised with the record (API answers)
    @property
    def today_pnl(self) -> float | None:
        """Equity now less equity at the close of the previous UTC day's last bar (or the first of today)."""
        if self.equity is None or self.day_start_equity is None:
            return None
        return self.equity - self.day_start_equity


@dataclass(frozen=True)
class EquityPoint:
    """Equity after one bar."""

    bar_ts: int
    equity: float
    cash: float


@dataclass(frozen=True)
class CountBy:
    """A count under a label (an hour, an abstention reason)."""

    label: str
    count: int


@dataclass(frozen=True)
class LLMStats:
    """The model traffic of the newest `calls_seen` calls."""

    calls_seen: int
    real_calls: int
    cache_hits: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    calls_per_hour: tuple[CountBy, ...]
    abstentions: tuple[CountBy, ...]
    circuit: str
    """`open` / `closed` as of the newest LLM decision, or `not recorded`."""

    @computed_field  # type: ignore[prop-decorator]  # serialised with the record (API answers)
    @property
    def cache_hit_rate(self) -> float:
        """Response-cache hits / calls (NaN without calls)."""
        return self.cache_hits / self.calls_seen if self.calls_seen else math.nan

    @computed_field  # type: ignore[prop-decorator]  # serialised with the record (API answers)
    @property
    def prefix_cache_hit_rate(self) -> float:
        """Prompt tokens the server served from its prefix cache / prompt tokens (NaN without tokens)."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else math.nan


@dataclass(frozen=True)
class SymbolPnl:
    """A symbol's PnL in a run: fill cash flows plus what is still held, at its last mark."""

    symbol: str
    fills: int
    bought: float
    """Quote spent on buys."""
    sold: float
    """Quote received from sells."""
    fees: float
    held_value: float
    """The open position's value at the last processed bar's mark (0 when flat)."""

    @computed_field  # type: ignore[prop-decorator]  # serialised with the record (API answers)
    @property
    def pnl(self) -> float:
        """sold - bought - fees + held value: realised and unrealised together, net of fees."""
        return self.sold - self.bought - self.fees + self.held_value
