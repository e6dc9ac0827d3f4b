"""A run's ledger as tools: its orders and fills, its decisions with clamps, its LLM calls (runs themselves:
`agent.analytics.runs`; one decision explained: `agent.analytics.explain`).

Contracts:
- Read-only, through the query layer: `agent.runs.catalog` (runs), `agent.runs.metrics.RunMetrics`
  (stored figures), `agent.evaluation.frames` (decisions, orders, equity), `agent.runs.llm_calls` (prompt
  and answer). No SQL here. The context's database refuses writes in any case.
- An unknown run id is a `ConfigError` naming it (from `get_runs`); lists are bounded by `limit`.
- Model text (prompt, answer, rationale, reasoning) is returned as data, cut to `TEXT_CAP` characters
  each; whoever displays it escapes it (`agent.textsafe`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import Field, field_validator

from agent.analytics.context import ToolContext
from agent.analytics.models import ToolInput, ToolOutput, check_date, check_symbol, num, stamp
from agent.errors import ConfigError

TEXT_CAP = 4000


def cap_text(text: object, cap: int = TEXT_CAP) -> str | None:
    """Model text as a string of at most `cap` characters (saying how much was cut); None stays None."""
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return None
    s = str(text)
    return s if len(s) <= cap else s[:cap] + f" [... {len(s) - cap} more characters]"


class RunSlice(ToolInput):
    """A run's ledger rows, optionally for one symbol and a date window."""

    run_id: str
    symbol: str | None = None
    start: str | None = None
    end: str | None = None
    limit: int = Field(50, ge=1, le=500)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str | None) -> str | None:
        return None if v is None else check_symbol(v)

    @field_validator("start", "end")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        return check_date(v)


def _slice(ctx: ToolContext, df: pd.DataFrame, a: RunSlice) -> pd.DataFrame:
    from agent.market.candles import utc_timestamp
    from agent.runs.catalog import get_runs

    get_runs(ctx.factory, [a.run_id])  # an unknown id is one clear error
    if a.symbol is not None:
        df = df[df["symbol"] == a.symbol]
    if a.start is not None:
        df = df[df["date"] >= utc_timestamp(a.start)]
    if a.end is not None:
        df = df[df["date"] < utc_timestamp(a.end)]
    return df


class OrderRow(ToolOutput):
    """One order and its fill."""

    time: str
    symbol: str
    side: str
    amount: float
    status: str
    reason: str | None
    fill_price: float | None
    fee: float | None
    decision_id: int | None


class TradesResult(ToolOutput):
    """A run's orders (newest `limit`), and totals over every order matched."""

    run_id: str
    orders: int
    filled: int
    fees: float
    notional: float
    rows: list[OrderRow]


def trades_tool(ctx: ToolContext, a: RunSlice) -> TradesResult:
    """The run's orders with their fills, prices and fees."""
    from agent.evaluation.frames import orders_frame

    df = _slice(ctx, orders_frame(ctx.factory, a.run_id), a)
    filled = df[df["fill_price"].notna()]
    rows = [
        OrderRow(
            time=stamp(r.date),
            symbol=r.symbol,
            side=r.side,
            amount=float(r.amount),
            status=r.status,
            reason=r.reason,
            fill_price=num(r.fill_price),
            fee=num(r.fee),
            decision_id=_id(r.decision_id),
        )
        for r in rows_of(df.tail(a.limit))
    ]
    return TradesResult(
        run_id=a.run_id,
        orders=len(df),
        filled=len(filled),
        fees=float(filled["fee"].sum()),
        notional=float((filled["fill_amount"] * filled["fill_price"]).sum()),
        rows=rows,
    )


class DecisionRow(ToolOutput):
    """One decision: what was proposed, what the risk layer let through, and why."""

    id: int
    time: str
    symbol: str
    source: str
    action: str
    target_exposure: float | None
    final_exposure: float | None
    confidence: float | None
    abstained: bool
    abstain_reason: str | None
    rationale: str | None
    clamps: list[Any]


class DecisionsResult(ToolOutput):
    """A run's decisions (newest `limit`) and counts over every decision matched."""

    run_id: str
    decisions: int
    by_action: dict[str, int]
    abstained: int
    clamped: int
    rows: list[DecisionRow]


def decision_row(r: Any) -> DecisionRow:
    """A `decisions_frame` row as a record."""
    return DecisionRow(
        id=int(r.id),
        time=stamp(r.date),
        symbol=r.symbol,
        source=r.source,
        action=r.action,
        target_exposure=num(r.target_exposure),
        final_exposure=num(r.final_exposure),
        confidence=num(r.confidence),
        abstained=bool(r.abstained),
        abstain_reason=cap_text(r.abstain_reason),
        rationale=cap_text(r.rationale),
        clamps=list(r.clamps or []),
    )


def decisions_tool(ctx: ToolContext, a: RunSlice) -> DecisionsResult:
    """The run's decisions with source, proposal, final exposure, clamps and rationale."""
    from agent.evaluation.frames import decisions_frame

    df = _slice(ctx, decisions_frame(ctx.factory, a.run_id), a)
    return DecisionsResult(
        run_id=a.run_id,
        decisions=len(df),
        by_action={str(k): int(v) for k, v in df["action"].value_counts().items()},
        abstained=int(df["abstained"].astype(bool).sum()),
        clamped=int(sum(1 for c in df["clamps"] if c)),
        rows=[decision_row(r) for r in rows_of(df.tail(a.limit))],
    )


def rows_of(df: pd.DataFrame) -> list[Any]:
    """The frame's rows as named tuples (typed loosely: columns are read by name)."""
    return list(df.itertuples())


def _id(value: Any) -> int | None:
    """A nullable integer column's value (pandas gives NaN for NULL)."""
    return None if value is None or pd.isna(value) else int(value)


def require(condition: bool, message: str) -> None:
    """A `ConfigError` with `message` unless `condition`."""
    if not condition:
        raise ConfigError(message)


class UsageInput(ToolInput):
    """A run's model traffic."""

    run_id: str


class UsageResult(ToolOutput):
    """A run's LLM calls: how many, cache hits, errors, tokens, mean latency."""

    run_id: str
    usage: dict[str, float]


def usage_tool(ctx: ToolContext, a: UsageInput) -> UsageResult:
    """The run's LLM calls: requests, real calls, cache hits, errors, tokens and mean latency."""
    from agent.evaluation.frames import llm_usage
    from agent.runs.catalog import get_runs

    get_runs(ctx.factory, [a.run_id])
    return UsageResult(run_id=a.run_id, usage=llm_usage(ctx.factory, a.run_id))
