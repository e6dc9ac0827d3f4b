"""Test helpers for the daemon: a data folder with the bundled candles, settings, a flaky exchange, ledger
snapshots for comparing two runs, and a poller that waits on a condition with a deadline (never a sleep)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ccxt
from sqlalchemy import create_engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from agent.config import DEFAULT_DATA_DIR, Settings
from agent.db.models import BalanceSnapshot, DaemonTick, Fill, Order
from agent.market.candles import timeframe_ms

HOUR = timeframe_ms("1h")
DATA_END = 1758322800000
"""Close of the last bundled 1h bar (2025-09-19 22:00 + 1h), common to BTC, ETH and SOL."""
SMA = {"fast": 5, "slow": 20}


def data_dir(tmp_path: Path) -> Path:
    """A data folder whose `binance/` is the bundled sample (read-only, linked)."""
    folder = tmp_path / "data"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "binance"
    if not link.exists():
        link.symlink_to(DEFAULT_DATA_DIR / "binance", target_is_directory=True)
    return folder


def settings(folder: Path, db_url: str | None = None, **overrides: Any) -> Settings:
    """Rule-strategy settings over the bundled BTC and ETH 1h candles; no LLM, no network."""
    values: dict[str, Any] = {
        "symbols": ["BTC/USDT", "ETH/USDT"], "strategy": "sma_cross", "timeframe": "1h",
        "data_dir": folder, "database_url": db_url, "risk": {"cooldown_bars": 1},
    }
    values.update(overrides)
    return Settings(**values)


def iso(ms: int) -> str:
    """A bar time as the CLI accepts it."""
    import pandas as pd

    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


class FlakyExchange:
    """Wraps an exchange: each data call fails with `ccxt.NetworkError` with probability `rate`."""

    FLAKY = ("load_markets", "market", "fetch_ohlcv", "fetch_time")

    def __init__(self, inner: Any, rate: float, seed: int) -> None:
        self.inner = inner
        self.rate = rate
        self.rng = random.Random(seed)
        self.calls = 0
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.FLAKY:
            return attr

        def flaky(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.rng.random() < self.rate:
                self.failures += 1
                raise ccxt.NetworkError(f"injected network fault #{self.failures} in {name}")
            return attr(*args, **kwargs)

        return flaky


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `condition` until it returns a truthy value (returned); AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except DBAPIError:  # the daemon has not created its tables yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)  # polling a condition with a deadline, not a sleep standing in for sync


def ledger(url: str, run_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """A run's balance snapshots, orders and fills without ids and wall-clock times, in a stable order."""
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            balances = session.execute(
                select(BalanceSnapshot.bar_ts, BalanceSnapshot.cash, BalanceSnapshot.equity,
                       BalanceSnapshot.fees_paid)
                .where(BalanceSnapshot.run_id == run_id).order_by(BalanceSnapshot.bar_ts)).tuples().all()
            orders = session.execute(
                select(Order.client_order_id, Order.symbol, Order.bar_ts, Order.side, Order.type,
                       Order.amount, Order.price, Order.status, Order.reason)
                .where(Order.run_id == run_id).order_by(Order.client_order_id)).tuples().all()
            fills = session.execute(
                select(Order.client_order_id, Fill.symbol, Fill.bar_ts, Fill.side, Fill.amount, Fill.price,
                       Fill.fee, Fill.fee_currency)
                .join(Order, Fill.order_id == Order.id)
                .where(Fill.run_id == run_id).order_by(Order.client_order_id, Fill.bar_ts)).tuples().all()
    finally:
        engine.dispose()
    return {"balances": list(balances), "orders": list(orders), "fills": list(fills)}


def journal_rows(url: str, run_id: str) -> list[tuple[int, str, str | None]]:
    """(bar, status, reason) of every journal row of `run_id`, in insertion order."""
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            rows = session.execute(select(DaemonTick.bar_ts, DaemonTick.status, DaemonTick.reason)
                                   .where(DaemonTick.run_id == run_id).order_by(DaemonTick.id)).tuples().all()
    finally:
        engine.dispose()
    return [(int(b), s, r) for b, s, r in rows]
