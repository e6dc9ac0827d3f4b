"""Test helpers for the daemon: a data folder with the bundled candles, settings, a flaky exchange, ledger
snapshots for comparing two runs, a poller that waits on a condition with a deadline (never a sleep), and a
daemon in a subprocess with `tradegraph status` read back as rows."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
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
DAEMON_APP = "tradegraph-daemon-under-test"
"""The PostgreSQL application name of a subprocess daemon's connections (`PGAPPNAME`)."""
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
        "symbols": ["BTC/USDT", "ETH/USDT"],
        "strategy": "sma_cross",
        "timeframe": "1h",
        "data_dir": folder,
        "database_url": db_url,
        "risk": {"cooldown_bars": 1},
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
            balances = (
                session.execute(
                    select(
                        BalanceSnapshot.bar_ts,
                        BalanceSnapshot.cash,
                        BalanceSnapshot.equity,
                        BalanceSnapshot.fees_paid,
                    )
                    .where(BalanceSnapshot.run_id == run_id)
                    .order_by(BalanceSnapshot.bar_ts)
                )
                .tuples()
                .all()
            )
            orders = (
                session.execute(
                    select(
                        Order.client_order_id,
                        Order.symbol,
                        Order.bar_ts,
                        Order.side,
                        Order.type,
                        Order.amount,
                        Order.price,
                        Order.status,
                        Order.reason,
                    )
                    .where(Order.run_id == run_id)
                    .order_by(Order.client_order_id)
                )
                .tuples()
                .all()
            )
            fills = (
                session.execute(
                    select(
                        Order.client_order_id,
                        Fill.symbol,
                        Fill.bar_ts,
                        Fill.side,
                        Fill.amount,
                        Fill.price,
                        Fill.fee,
                        Fill.fee_currency,
                    )
                    .join(Order, Fill.order_id == Order.id)
                    .where(Fill.run_id == run_id)
                    .order_by(Order.client_order_id, Fill.bar_ts)
                )
                .tuples()
                .all()
            )
    finally:
        engine.dispose()
    return {"balances": list(balances), "orders": list(orders), "fills": list(fills)}


def journal_rows(url: str, run_id: str) -> list[tuple[int, str, str | None]]:
    """(bar, status, reason) of every journal row of `run_id`, in insertion order."""
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            rows = (
                session.execute(
                    select(DaemonTick.bar_ts, DaemonTick.status, DaemonTick.reason)
                    .where(DaemonTick.run_id == run_id)
                    .order_by(DaemonTick.id)
                )
                .tuples()
                .all()
            )
    finally:
        engine.dispose()
    return [(int(b), s, r) for b, s, r in rows]


def bars(url: str, run_id: str) -> list[int]:
    """The bars a run's ledger holds (one balance snapshot each), in order."""
    return [b[0] for b in ledger(url, run_id)["balances"]]


def subprocess_env(folder: Path, db_url: str, symbols: Sequence[str] = ("BTC/USDT",)) -> dict[str, str]:
    """The environment of a daemon subprocess: rule strategy on the bundled 1h candles, database `db_url`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGRAPH_")}
    env.update(
        {
            "TRADEGRAPH_SYMBOLS": ",".join(symbols),
            "TRADEGRAPH_STRATEGY": "sma_cross",
            "TRADEGRAPH_TIMEFRAME": "1h",
            "TRADEGRAPH_DATA_DIR": str(folder),
            "TRADEGRAPH_DATABASE_URL": db_url,
            "TRADEGRAPH_RISK__COOLDOWN_BARS": "1",
            "PGAPPNAME": DAEMON_APP,
        }
    )
    return env


def replay_command(*args: str) -> list[str]:
    """The command line of `tradegraph run --replay` with SMA 5/20, then `args`."""
    sma = ["-p", f"fast={SMA['fast']}", "-p", f"slow={SMA['slow']}"]
    return [sys.executable, "-m", "agent.cli.main", "run", "--replay", *sma, *args]


def start_daemon(folder: Path, db_url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`tradegraph run --replay <args>` in a subprocess (SMA 5/20, JSON logs appended to `log`)."""
    command = replay_command("--log-format", "json", *args)
    with log.open("ab") as err:
        return subprocess.Popen(
            command, cwd=folder.parent, env=subprocess_env(folder, db_url), stdout=err, stderr=err
        )


def running(proc: subprocess.Popen[bytes], log: Path) -> bool:
    """True while `proc` runs; AssertionError with the log's tail once it exited."""
    assert proc.poll() is None, f"daemon exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
    return True


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    """Kill `proc` if it still runs (test clean-up)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def status_rows(db_url: str) -> dict[str, str]:
    """The Daemon table of `tradegraph status` on `db_url`, as {field: value}."""
    from typer.testing import CliRunner

    from agent.cli import main as cli

    env = {"TRADEGRAPH_DATABASE_URL": db_url, "COLUMNS": "250"}
    result = CliRunner().invoke(cli.app, ["status"], env=env)
    assert result.exit_code == 0, result.output
    return table_rows(result.output)


def table_rows(out: str) -> dict[str, str]:
    """The two-column rows of the first table in `out` (a wrapped value's lines joined by spaces)."""
    rows: dict[str, str] = {}
    key = None
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) != 2:
            if rows and line.strip().startswith("└"):
                break
            continue
        if cells[0]:
            key = cells[0]
            rows[key] = cells[1]
        elif key is not None:
            rows[key] = f"{rows[key]} {cells[1]}".strip()
    return rows
