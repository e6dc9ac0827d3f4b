"""Builders shared by the backtest tests: synthetic candles, hand-made bars, plain market rules."""

from __future__ import annotations

import numpy as np
import pandas as pd

from agent.backtest.engine import simulate
from agent.backtest.market import rules_matrix
from agent.backtest.models import EngineConfig, SimResult
from agent.market.exchange import MarketRules


def random_walk(n: int, seed: int = 1, start: str = "2024-01-01", vol: float = 0.01) -> pd.DataFrame:
    """A seeded candle frame: geometric random walk, open = previous close."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    index = pd.date_range(start, periods=n, freq="h", tz="UTC", name="date")
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.003,
            "low": np.minimum(open_, close) * 0.997,
            "close": close,
            "volume": np.full(n, 1e6),
        },
        index=index,
    )


def plain_rules(
    symbol: str = "X", fee: float = 0.0, step: float = 0.0, min_amount: float = 0.0, min_notional: float = 0.0
) -> MarketRules:
    """Market rules with a fee and optional precision/minimums."""
    return MarketRules(symbol, step, min_amount, min_notional, fee, fee)


def run_bars(
    open_: list[float],
    target: list[float],
    *,
    high: list[float] | None = None,
    low: list[float] | None = None,
    close: list[float] | None = None,
    volume: list[float] | None = None,
    rules: MarketRules | None = None,
    config: EngineConfig | None = None,
    plan: np.ndarray | None = None,
) -> SimResult:
    """Simulate one symbol over hand-written bars (high/low/close default to the open); `plan` is the (3, n)
    stop-loss level, take-profit level and trailing distance decided at each close."""
    n = len(open_)
    cols = {
        "open": open_,
        "high": high or open_,
        "low": low or open_,
        "close": close or open_,
        "volume": volume or [1e9] * n,
    }
    ohlcv = {k: np.asarray(v, dtype=np.float64).reshape(n, 1) for k, v in cols.items()}
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    tgt = np.asarray(target, dtype=np.float64).reshape(n, 1)
    return simulate(
        index,
        ["X"],
        ohlcv,
        tgt,
        rules_matrix([rules or plain_rules()]),
        config or EngineConfig(1000.0),
        None if plan is None else plan.reshape(3, n, 1),
    )
