"""Test helper: drive the paper broker over bundled Binance candles with a target series, as the backtest
engine does (a pending target only when the series changes), and check the ledger identities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import talib

from agent.broker import Bar, BarOutcome, FillTerms, MarketRules, PendingTarget, initial_state, process_bar
from agent.config import PROJECT_ROOT, Settings
from agent.market.candles import read_feather
from agent.portfolio import PortfolioState

BINANCE_STEPS = {"BTC/USDT": 1e-5, "ETH/USDT": 1e-4, "SOL/USDT": 1e-3}


def rules_for(symbols: list[str], fee: float = 0.001, min_notional: float = 5.0) -> dict[str, MarketRules]:
    """Binance-like spot rules for the bundled symbols."""
    return {s: MarketRules(s, BINANCE_STEPS[s], BINANCE_STEPS[s], min_notional, fee, fee) for s in symbols}


def load_frames(
    symbols: list[str], bars: int | None = None, timeframe: str = "1h"
) -> dict[str, pd.DataFrame]:
    """Bundled candles of `symbols` on their common bar times (the last `bars` of them)."""
    frames = {
        s: read_feather(PROJECT_ROOT / "data/binance" / f"{s.replace('/', '_')}-{timeframe}.feather")
        for s in symbols
    }
    common = frames[symbols[0]].index
    for frame in frames.values():
        common = common.intersection(frame.index)
    if bars is not None:
        common = common[-bars:]
    return {s: f.loc[common] for s, f in frames.items()}


def bar_times(frame: pd.DataFrame) -> list[int]:
    """Bar open times in epoch milliseconds."""
    return [int(t) for t in frame.index.as_unit("ms").asi8]


def sma_targets(frame: pd.DataFrame, fast: int = 20, slow: int = 50) -> np.ndarray:
    """1.0 while SMA(fast) > SMA(slow), else 0.0 (0 during warm-up)."""
    close = frame["close"].to_numpy()
    return np.where(talib.SMA(close, fast) > talib.SMA(close, slow), 1.0, 0.0)


def atr_of(frame: pd.DataFrame, period: int = 14) -> np.ndarray:
    """TA-Lib ATR of a candle frame."""
    return np.asarray(
        talib.ATR(
            frame["high"].to_numpy(), frame["low"].to_numpy(), frame["close"].to_numpy(), timeperiod=period
        )
    )


@dataclass
class Run:
    """What a driven run produced, bar by bar."""

    times: list[int]
    outcomes: list[BarOutcome]
    initial_cash: float


def drive(
    frames: Mapping[str, pd.DataFrame],
    targets: Mapping[str, np.ndarray],
    settings: Settings,
    rules: Mapping[str, MarketRules],
    run_id: str = "run",
    stops: Mapping[str, np.ndarray] | None = None,
    take_profits: Mapping[str, np.ndarray] | None = None,
    state: PortfolioState | None = None,
) -> Run:
    """Settle every bar; the target at t (with stop/take-profit at t) is pending for t+1 when it changed."""
    symbols = list(frames)
    times = bar_times(frames[symbols[0]])
    arrays = {s: frames[s][["open", "high", "low", "close", "volume"]].to_numpy() for s in symbols}
    state = state or initial_state(settings.broker.initial_cash)
    cash0 = state.cash
    pending: dict[str, PendingTarget] = {}
    in_force: Mapping[str, float] = {}
    outcomes: list[BarOutcome] = []
    previous = {s: 0.0 for s in symbols}
    for i, ts in enumerate(times):
        bars = {s: Bar(*map(float, arrays[s][i])) for s in symbols}
        outcome = process_bar(state, bars, pending, ts, rules, FillTerms.of(settings), run_id, in_force)
        outcomes.append(outcome)
        state, in_force = outcome.state, outcome.in_force
        pending = {}
        for s in symbols:
            target = float(targets[s][i])
            if target != previous[s]:
                stop = _level(stops, s, i)
                take = _level(take_profits, s, i)
                pending[s] = PendingTarget(s, target, ts, stop, take)
                previous[s] = target
    return Run(times, outcomes, cash0)


def _level(levels: Mapping[str, np.ndarray] | None, symbol: str, i: int) -> float | None:
    if levels is None:
        return None
    value = float(levels[symbol][i])
    return value if np.isfinite(value) and value > 0 else None


def check_identities(run: Run, frames: Mapping[str, pd.DataFrame]) -> int:
    """Assert the ledger identities after every bar; returns the number of fills checked."""
    cash = run.initial_cash
    fees = 0.0
    held: dict[str, float] = {s: 0.0 for s in frames}
    closes = {s: f["close"].to_numpy() for s, f in frames.items()}
    n_fills = 0
    for i, outcome in enumerate(run.outcomes):
        for fill in outcome.fills:
            notional = fill.amount * fill.price
            cash += -notional if fill.side == "buy" else notional
            held[fill.symbol] += fill.amount if fill.side == "buy" else -fill.amount
            fees += fill.fee
            n_fills += 1
        cash -= sum(f.fee for f in outcome.fills)
        state = outcome.state
        equity = state.cash + sum(p.amount * closes[s][i] for s, p in state.positions.items())
        assert outcome.equity == equity
        assert state.cash == _approx(cash), f"bar {i}: cash {state.cash} != reconstructed {cash}"
        assert state.fees_paid == _approx(fees)
        for symbol, amount in held.items():
            position = state.positions.get(symbol)
            assert (position.amount if position else 0.0) == _approx(amount, 1e-9), f"bar {i} {symbol}"
    return n_fills


def _approx(value: float, abs_tol: float = 1e-6) -> object:
    import pytest

    return pytest.approx(value, rel=1e-10, abs=abs_tol)
