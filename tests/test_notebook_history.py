"""`tg.run_agent` with a rule strategy reads the history `tradegraph backtest` and `tradegraph run --replay`
read for the same window (`agent.market.history.HISTORY_BARS` bars before the first bar, or the
strategy's longer warm-up), not every stored bar, so the three fill alike even for a strategy whose signal
depends on where its history starts. The built-in strategies are compared bar by bar in
tests/test_equivalence.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

import agent as tg
from agent.backtest.models import REASONS
from agent.backtest.service import BacktestRequest, run_request
from agent.config import Settings
from agent.db.models import BalanceSnapshot, Fill, Order
from agent.db.session import open_db
from agent.errors import ConfigError
from agent.market.history import HISTORY_BARS
from strategies.base import FloatArray, Strategy

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
START = "2025-02-20 00:00"  # BTC falls from 98k to 78k over the next days
BARS = 96

Fills = list[tuple[int, str, str, float, float, float, str]]


class AboveFirstClose(Strategy):
    """Long while the close is above the first close it is given: its signal depends on where the history
    starts (module level, so the registry rebuilds it by `module:Class`)."""

    name = "above_first_close"

    def warmup_bars(self) -> int:
        """No indicator."""
        return 0

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """1 where close > the first close, else 0."""
        close = candles["close"].to_numpy()
        return (close > close[0]).astype(np.float64)


class BelowFirstCloseLongWarmup(Strategy):
    """Long while the close is below the first close it is given, declaring more warm-up than
    `HISTORY_BARS`."""

    name = "below_first_close"

    def warmup_bars(self) -> int:
        """Longer than the default history."""
        return HISTORY_BARS + 500

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """1 where close < the first close, else 0."""
        close = candles["close"].to_numpy()
        return (close < close[0]).astype(np.float64)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Two symbols, an empty data folder (the bundled sample through the fallback) and a fresh database."""
    return Settings(
        symbols=SYMBOLS,
        timeframe="1h",
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'history.db'}",
    )


def _iso(ms: int) -> str:
    return pd.Timestamp(ms, unit="ms", tz="UTC").isoformat()


def _engine(settings: Settings, strategy: type[Strategy]) -> tuple[Fills, list[float]]:
    end = pd.Timestamp(START, tz="UTC") + pd.Timedelta(hours=BARS)
    spec = f"{strategy.__module__}:{strategy.__qualname__}"
    request = BacktestRequest(strategy=spec, symbols=SYMBOLS, timeframe="1h", start=START, end=str(end))
    sim = run_request(request, settings, None).result.sim
    times = [int(t) for t in sim.index.as_unit("ms").asi8]
    fills: Fills = [
        (times[int(b)], sim.symbols[int(s)], "buy" if d > 0 else "sell", float(a), float(p), float(f),
         REASONS[int(r)])
        for b, s, d, a, p, f, r in zip(sim.fill_bar, sim.fill_symbol, sim.fill_side, sim.fill_amount,
                                       sim.fill_price, sim.fill_fee, sim.fill_reason, strict=True)
    ]  # fmt: skip
    return fills, [float(e) for e in sim.equity]


def _ledger(settings: Settings, run_id: str) -> tuple[Fills, list[float]]:
    engine, factory = open_db(settings.db_url)
    try:
        with factory() as s:
            rows = s.execute(
                select(Fill.bar_ts, Fill.symbol, Fill.side, Fill.amount, Fill.price, Fill.fee, Order.reason)
                .join(Order, Fill.order_id == Order.id)
                .where(Fill.run_id == run_id)
                .order_by(Fill.id)
            ).all()
            equity = s.scalars(
                select(BalanceSnapshot.equity)
                .where(BalanceSnapshot.run_id == run_id)
                .order_by(BalanceSnapshot.bar_ts)
            ).all()
    finally:
        engine.dispose()
    return [(int(b), y, d, a, p, f, str(r)) for b, y, d, a, p, f, r in rows], list(equity)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", [AboveFirstClose, BelowFirstCloseLongWarmup])
def test_run_agent_reads_the_backtests_history_for_a_rule_strategy(
    settings: Settings, strategy: type[Strategy]
) -> None:
    fills, equity = _engine(settings, strategy)
    assert fills, "the window trades"
    run = tg.run_agent(SYMBOLS, BARS, strategy, start=START, settings=settings)
    assert _ledger(settings, run.run_id) == (fills, equity)


@pytest.mark.slow
def test_run_agent_takes_the_rule_strategys_parameters(settings: Settings) -> None:
    stops = {"stop_atr": 1.0, "trailing_atr": 1.5}
    run = tg.run_agent(SYMBOLS, BARS, "ema_cross", start=START, settings=settings, fast=5, slow=20, **stops)
    engine = run_request(
        BacktestRequest(
            strategy="ema_cross",
            params={"fast": "5", "slow": "20"} | {k: str(v) for k, v in stops.items()},
            symbols=SYMBOLS,
            timeframe="1h",
            start=START,
            end=_iso(int(pd.Timestamp(START, tz="UTC").value // 1_000_000) + BARS * 3_600_000),
        ),
        settings,
        None,
    )
    fills, _ = _ledger(settings, run.run_id)
    assert {f[-1] for f in fills} & {"stop_loss", "trailing_stop"}, "the exit plan is the one given"
    assert run.metrics.loc["total_return", "agent"] == engine.comparison["strategy"]["total_return"]
    with pytest.raises(ConfigError, match="parameters"):
        tg.run_agent(SYMBOLS, 2, "llm", start=START, settings=settings, fast=5)


def test_run_agent_writes_its_report_under_the_data_folder_by_default(settings: Settings) -> None:
    run = tg.run_agent("BTC/USDT", 2, "sma_cross", start=START, settings=settings)
    assert run.report_path.is_file()
    assert run.report_path.parent == settings.reports_dir / run.run_id
