"""One decision explained from the ledger: the exact prompt, the model's answer and reasoning, the risk
layer's clamps, the orders it led to, and what happened next.

Contracts:
- The decision is chosen by `decision_id`, or as the run's latest decision for `symbol` at or before
  `at`; neither found is a `ConfigError` naming what was looked for.
- Prompt and answer come from the stored LLM call (`agent.runs.llm_calls`); a rule decision has none.
  Each text is cut to `text_chars` characters (default 4,000, saying how much was cut); raise it for the
  exact prompt in full.
- "What happened next" is read point-after-point: the symbol's close `horizon` bars after the decision's
  bar (from the candle store, the run's timeframe), the run's equity then (`agent.evaluation.frames`), and
  the next decision for that symbol. Returns: close[t+horizon] / close[t] - 1, t the decision's bar.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import Field, field_validator, model_validator

from agent.analytics.context import ToolContext
from agent.analytics.ledger import cap_text, decision_row, require
from agent.analytics.models import ToolInput, ToolOutput, check_date, check_symbol, num


class ExplainInput(ToolInput):
    """Which decision: an id, or a run, a symbol and a time."""

    run_id: str
    decision_id: int | None = None
    symbol: str | None = None
    at: str | None = Field(None, description="UTC time; the latest decision at or before it")
    horizon: int = Field(24, ge=1, le=1000, description="bars after the decision to look at")
    text_chars: int = Field(4000, ge=100, le=1_000_000, description="characters of each prompt message shown")

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str | None) -> str | None:
        return None if v is None else check_symbol(v)

    @field_validator("at")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        return check_date(v)

    @model_validator(mode="after")
    def _which(self) -> ExplainInput:
        if self.decision_id is None and self.symbol is None:
            raise ValueError("give decision_id, or symbol (and optionally at)")
        return self


class Aftermath(ToolOutput):
    """What followed the decision."""

    horizon_bars: int
    close_at_decision: float | None
    close_after: float | None
    price_return: float | None
    equity_at_decision: float | None
    equity_after: float | None
    next_decision: dict[str, Any] | None


class ExplainResult(ToolOutput):
    """The decision, its model traffic, its orders and its aftermath."""

    decision: dict[str, Any]
    prompt: list[dict[str, Any]] | None
    answer: str | None
    reasoning: str | None
    model: str | None
    orders: list[dict[str, Any]]
    aftermath: Aftermath


def explain_tool(ctx: ToolContext, a: ExplainInput) -> ExplainResult:
    """The prompt, answer, clamps, orders and what happened next for one decision."""
    from agent.evaluation.frames import decisions_frame, orders_frame
    from agent.runs.catalog import get_runs
    from agent.runs.llm_calls import call_messages, llm_call

    run = get_runs(ctx.factory, [a.run_id])[0]
    df = decisions_frame(ctx.factory, a.run_id)
    row = _pick(df, a)
    cap = a.text_chars
    prompt, answer, reasoning, model = None, None, cap_text(row.reasoning, cap), row.model
    if row.llm_call_id is not None and not pd.isna(row.llm_call_id):
        call = llm_call(ctx.factory, int(row.llm_call_id))
        messages = call_messages(ctx.factory, int(row.llm_call_id))
        prompt = [{"role": m.get("role"), "content": cap_text(m.get("content"), cap)} for m in messages or []]
        prompt = prompt or None
        if call is not None:
            answer, model = cap_text(call.response_text, cap), call.model
            reasoning = reasoning or cap_text(call.reasoning, cap)
    orders = orders_frame(ctx.factory, a.run_id)
    mine = orders[orders["decision_id"] == row.id]
    return ExplainResult(
        decision=decision_row(row).model_dump(),
        prompt=prompt,
        answer=answer,
        reasoning=reasoning,
        model=model,
        orders=[
            {
                "side": o.side,
                "amount": float(o.amount),
                "status": o.status,
                "reason": o.reason,
                "fill_price": num(o.fill_price),
                "fee": num(o.fee),
            }  # fmt: skip
            for o in mine.itertuples()
        ],
        aftermath=_aftermath(ctx, run.timeframe, a, row, df),
    )


def _pick(df: pd.DataFrame, a: ExplainInput) -> Any:
    from agent.market.candles import utc_timestamp

    if a.decision_id is not None:
        found = df[df["id"] == a.decision_id]
        require(not found.empty, f"run {a.run_id} has no decision with id {a.decision_id}")
    else:
        found = df[df["symbol"] == a.symbol]
        if a.at is not None:
            found = found[found["date"] <= utc_timestamp(a.at)]
        require(
            not found.empty, f"run {a.run_id} has no decision for {a.symbol} at or before {a.at or 'its end'}"
        )
    return next(found.tail(1).itertuples())


def _aftermath(ctx: ToolContext, timeframe: str, a: ExplainInput, row: Any, df: pd.DataFrame) -> Aftermath:
    from agent.analytics.market_data import exchange_folder
    from agent.evaluation.frames import equity_frame
    from agent.market.store import load_candles

    t = pd.Timestamp(row.date)
    candles = load_candles(
        row.symbol, timeframe, ctx.settings.data_dir, start=t, exchange=exchange_folder(ctx)
    )
    closes: list[float] = candles["close"].tolist()
    c0 = closes[0] if closes and candles.index[0] == t else None
    c1 = closes[a.horizon] if len(closes) > a.horizon else None
    eq = equity_frame(ctx.factory, a.run_id)["equity"]
    later = eq[eq.index >= t]
    after = df[(df["symbol"] == row.symbol) & (df["date"] > t)]
    nxt = decision_row(next(after.head(1).itertuples())).model_dump() if len(after) else None
    return Aftermath(
        horizon_bars=a.horizon,
        close_at_decision=c0,
        close_after=c1,
        price_return=num(c1 / c0 - 1) if c0 and c1 else None,
        equity_at_decision=num(later.iloc[0]) if len(later) else None,
        equity_after=num(later.iloc[a.horizon]) if len(later) > a.horizon else None,
        next_decision=nxt,
    )
