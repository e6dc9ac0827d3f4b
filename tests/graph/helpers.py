"""Shared helpers for agent tests: settings against the vLLM emulator, and ledger invariants."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.config import Settings, load_settings
from agent.db.models import BalanceSnapshot, Decision, Fill, Order, PositionSnapshot
from agent.db.session import open_db
from agent.graph.factory import load_source
from agent.market.source import FrameSource


def emulator_settings(db_url: str, base_url: str, **overrides: Any) -> Settings:
    """Settings for an LLM run against the vLLM emulator, with a small prompt budget (fast tests)."""
    llm = {
        "profile": "vllm",
        "base_url": base_url,
        "model": "nemotron",
        "context_tokens": 1500,
        "max_retries": 0,
        "timeout_s": 5.0,
    } | overrides.pop("llm", {})
    return load_settings(database_url=db_url, llm=llm, symbols=["BTC/USDT", "ETH/USDT"], **overrides)


def short_source(settings: Settings, days: int = 60) -> FrameSource:
    """The configured symbols' bundled candles, cut to the last `days` days (keeps prompt building fast)."""
    full = load_source(settings)
    frames = {}
    for symbol in settings.symbols:
        frame = full.history(symbol, full.last_ts(symbol))
        frames[symbol] = frame[frame.index >= frame.index[-1] - pd.Timedelta(days=days)]
    return FrameSource(frames)


def ledger(factory: sessionmaker[Session], run_id: str) -> dict[str, pd.DataFrame]:
    """Balances, positions, orders and fills of a run, without ids or wall-clock columns."""
    with factory() as s:
        bal = pd.DataFrame(
            s.execute(
                select(
                    BalanceSnapshot.bar_ts,
                    BalanceSnapshot.cash,
                    BalanceSnapshot.equity,
                    BalanceSnapshot.fees_paid,
                )
                .where(BalanceSnapshot.run_id == run_id)
                .order_by(BalanceSnapshot.bar_ts)
            ).all(),
            columns=["bar_ts", "cash", "equity", "fees_paid"],
        )
        pos = pd.DataFrame(
            s.execute(
                select(
                    PositionSnapshot.bar_ts,
                    PositionSnapshot.symbol,
                    PositionSnapshot.amount,
                    PositionSnapshot.avg_price,
                    PositionSnapshot.mark_price,
                )
                .where(PositionSnapshot.run_id == run_id)
                .order_by(PositionSnapshot.bar_ts, PositionSnapshot.symbol)
            ).all(),
            columns=["bar_ts", "symbol", "amount", "avg_price", "mark_price"],
        )
        orders = pd.DataFrame(
            s.execute(
                select(
                    Order.client_order_id,
                    Order.bar_ts,
                    Order.symbol,
                    Order.side,
                    Order.amount,
                    Order.status,
                    Order.reason,
                )
                .where(Order.run_id == run_id)
                .order_by(Order.bar_ts, Order.client_order_id)
            ).all(),
            columns=["client_order_id", "bar_ts", "symbol", "side", "amount", "status", "reason"],
        )
        fills = pd.DataFrame(
            s.execute(
                select(Fill.bar_ts, Fill.symbol, Fill.side, Fill.amount, Fill.price, Fill.fee)
                .where(Fill.run_id == run_id)
                .order_by(Fill.bar_ts, Fill.id)
            ).all(),
            columns=["bar_ts", "symbol", "side", "amount", "price", "fee"],
        )
    orders["client_order_id"] = orders["client_order_id"].str.replace(run_id, "RUN", regex=False)
    return {"balances": bal, "positions": pos, "orders": orders, "fills": fills}


def decisions(factory: sessionmaker[Session], run_id: str) -> pd.DataFrame:
    """A run's decisions as recorded: proposal, final target, prompt hash, abstention; by bar and symbol."""
    columns = (
        Decision.bar_ts,
        Decision.symbol,
        Decision.source,
        Decision.action,
        Decision.target_exposure,
        Decision.final_exposure,
        Decision.prompt_hash,
        Decision.abstained,
    )
    query = select(*columns).where(Decision.run_id == run_id).order_by(Decision.bar_ts, Decision.symbol)
    with factory() as s:
        return pd.DataFrame(s.execute(query).all(), columns=[c.key for c in columns])


def book(db_url: str, run_id: str) -> dict[str, pd.DataFrame]:
    """`ledger` and `decisions` of a run in the database at `db_url`."""
    engine, factory = open_db(db_url)
    try:
        return ledger(factory, run_id) | {"decisions": decisions(factory, run_id)}
    finally:
        engine.dispose()


def assert_ledger_identities(led: dict[str, pd.DataFrame], initial_cash: float) -> None:
    """At every bar: equity = cash + Σ position × mark; fills rebuild positions, cash and fees."""
    bal, pos, fills = led["balances"], led["positions"], led["fills"]
    held: dict[str, float] = defaultdict(float)
    cash, fees = initial_cash, 0.0
    fills_by_bar = {t: g for t, g in fills.groupby("bar_ts")}
    pos_by_bar = {t: g for t, g in pos.groupby("bar_ts")}
    for row in bal.itertuples():
        for f in fills_by_bar.get(row.bar_ts, pd.DataFrame()).itertuples():
            sign = 1.0 if f.side == "buy" else -1.0
            held[f.symbol] += sign * f.amount
            cash -= sign * f.amount * f.price + f.fee
            fees += f.fee
        snap = pos_by_bar.get(row.bar_ts, pd.DataFrame(columns=pos.columns))
        marked = float((snap["amount"] * snap["mark_price"]).sum())
        assert abs(row.cash + marked - row.equity) <= 1e-9 * row.equity, f"equity identity at {row.bar_ts}"
        assert abs(cash - row.cash) <= 1e-7 * initial_cash, f"cash rebuilt from fills at {row.bar_ts}"
        assert abs(fees - row.fees_paid) <= 1e-9 * initial_cash, f"fees rebuilt from fills at {row.bar_ts}"
        in_snap = dict(zip(snap["symbol"], snap["amount"], strict=True))
        for symbol, amount in held.items():
            assert abs(in_snap.get(symbol, 0.0) - amount) <= 1e-9 * max(1.0, abs(amount)), (
                f"position of {symbol} rebuilt from fills at {row.bar_ts}"
            )
        assert row.cash >= -1e-9, "cash never negative (spot, no borrowing)"
