"""Ledger tables of one run as pandas frames (for reports, the CLI and notebooks). Read-only.

Every frame is indexed or sorted by bar time (`date`, UTC) and holds exactly what the database holds.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import BalanceSnapshot, Decision, Fill, LLMCall, Order, PositionSnapshot, Run


def _date(ms: pd.Series) -> pd.Series:
    return pd.to_datetime(ms.astype("int64"), unit="ms", utc=True)


def _frame(factory: sessionmaker[Session], stmt: object, columns: list[str]) -> pd.DataFrame:
    with factory() as session:
        rows = session.execute(stmt).all()  # type: ignore[call-overload]
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def equity_frame(factory: sessionmaker[Session], run_id: str) -> pd.DataFrame:
    """Cash, equity and cumulative fees after each processed bar."""
    cols = ["bar_ts", "cash", "equity", "fees_paid"]
    stmt = (
        select(
            BalanceSnapshot.bar_ts, BalanceSnapshot.cash, BalanceSnapshot.equity, BalanceSnapshot.fees_paid
        )
        .where(BalanceSnapshot.run_id == run_id)
        .order_by(BalanceSnapshot.bar_ts)
    )
    df = _frame(factory, stmt, cols)
    df.index = pd.DatetimeIndex(_date(df["bar_ts"]) if len(df) else [], name="date")
    return df


def decisions_frame(factory: sessionmaker[Session], run_id: str) -> pd.DataFrame:
    """Every decision of the run with its source, proposal, final exposure, clamps and LLM fields."""
    cols = [
        "id",
        "bar_ts",
        "symbol",
        "source",
        "action",
        "target_exposure",
        "final_exposure",
        "confidence",
        "stop_loss",
        "take_profit",
        "abstained",
        "abstain_reason",
        "rationale",
        "clamps",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "latency_ms",
        "llm_call_id",
        "prompt_hash",
        "reasoning",
    ]
    stmt = (
        select(*(getattr(Decision, c) for c in cols))
        .where(Decision.run_id == run_id)
        .order_by(Decision.bar_ts, Decision.symbol)
    )
    df = _frame(factory, stmt, cols)
    df.insert(0, "date", _date(df["bar_ts"]) if len(df) else pd.Series(dtype="datetime64[ns, UTC]"))
    return df


def orders_frame(factory: sessionmaker[Session], run_id: str) -> pd.DataFrame:
    """Orders of the run (filled and rejected) with their fills' price and fee, if any, and the id of the
    decision behind each (`decisions_frame`'s `id`; None for an exit or the initial position)."""
    cols = [
        "client_order_id",
        "bar_ts",
        "symbol",
        "side",
        "amount",
        "status",
        "reason",
        "fill_amount",
        "fill_price",
        "fee",
        "decision_id",
    ]
    stmt = (
        select(
            Order.client_order_id,
            Order.bar_ts,
            Order.symbol,
            Order.side,
            Order.amount,
            Order.status,
            Order.reason,
            Fill.amount,
            Fill.price,
            Fill.fee,
            Order.decision_id,
        )
        .outerjoin(Fill, Fill.order_id == Order.id)
        .where(Order.run_id == run_id)
        .order_by(Order.bar_ts, Order.id)
    )
    df = _frame(factory, stmt, cols)
    df.insert(0, "date", _date(df["bar_ts"]) if len(df) else pd.Series(dtype="datetime64[ns, UTC]"))
    return df


def positions_frame(factory: sessionmaker[Session], run_id: str, bar_ts: int | None = None) -> pd.DataFrame:
    """Open positions after `bar_ts` (default: the last processed bar)."""
    cols = ["bar_ts", "symbol", "amount", "avg_price", "mark_price", "stop_loss", "take_profit"]
    with factory() as session:
        if bar_ts is None:
            bar_ts = session.scalar(
                select(BalanceSnapshot.bar_ts)
                .where(BalanceSnapshot.run_id == run_id)
                .order_by(BalanceSnapshot.bar_ts.desc())
                .limit(1)
            )
    if bar_ts is None:
        return pd.DataFrame(columns=cols)
    stmt = select(*(getattr(PositionSnapshot, c) for c in cols)).where(
        PositionSnapshot.run_id == run_id, PositionSnapshot.bar_ts == bar_ts
    )
    df = _frame(factory, stmt, cols)
    df["value"] = df["amount"] * df["mark_price"]
    df["pnl"] = (df["mark_price"] - df["avg_price"]) * df["amount"]
    return df


def llm_usage(factory: sessionmaker[Session], run_id: str) -> dict[str, float]:
    """LLM calls of the run: calls made, cache hits, errors, tokens, mean latency of real calls."""
    cols = ["from_cache", "error", "prompt_tokens", "completion_tokens", "cached_tokens", "latency_ms"]
    stmt = select(*(getattr(LLMCall, c) for c in cols)).where(LLMCall.run_id == run_id)
    df = _frame(factory, stmt, cols)
    real = df[~df["from_cache"].astype(bool)] if len(df) else df
    return {
        "llm_requests": float(len(df)),
        "llm_calls": float(len(real)),
        "cache_hits": float(df["from_cache"].astype(bool).sum()) if len(df) else 0.0,
        "llm_errors": float(df["error"].notna().sum()) if len(df) else 0.0,
        "prompt_tokens": float(df["prompt_tokens"].fillna(0).sum()) if len(df) else 0.0,
        "completion_tokens": float(df["completion_tokens"].fillna(0).sum()) if len(df) else 0.0,
        "cached_prompt_tokens": float(df["cached_tokens"].fillna(0).sum()) if len(df) else 0.0,
        "mean_latency_ms": float(real["latency_ms"].mean()) if len(real) else 0.0,
    }


def runs_frame(factory: sessionmaker[Session], limit: int = 50) -> pd.DataFrame:
    """The most recent runs."""
    cols = ["id", "kind", "strategy", "symbols", "timeframe", "status", "created_at", "report_path"]
    stmt = select(*(getattr(Run, c) for c in cols)).order_by(Run.created_at.desc()).limit(limit)
    return _frame(factory, stmt, cols)
