"""One backtest end to end: candle frames and a strategy in, simulation and metrics out (no I/O).

Contracts:
- `run_backtest` computes each symbol's signal on its whole frame (including any warm-up rows before
  `start`), sizes and caps it (`agent.backtest.plan`), aligns the symbols, then simulates only the bars at
  or after `start` with the compiled engine and computes the metrics. The strategy is point in time, so
  computing it over earlier rows and then cutting them off sees nothing from the future.
- Symbols are processed in sorted order, as in the paper broker (the order buys are filled when cash is
  short).
- `rules` are the symbols' `MarketRules` (in sorted symbol order) or a ready (k, 4) array; required,
  so no fee is ever assumed.
- The strategy's kind sets the meaning of its output (`EngineConfig.style` is taken from it) and the fill
  timing `config.fill` sets what it may read (`agent.backtest.plan.rule_plan`).
- `compare(result, frames, ...)` gives the references every report shows over the same bars: buy & hold
  (`agent.backtest.baseline`: fully invested from the first bar, same costs and initial position; plus
  `buy_and_hold_capped` when the per-symbol cap binds) and cash.
- Deterministic: the same inputs give bit-identical outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from agent.backtest.baseline import FULL, hold_metrics, hold_weights
from agent.backtest.engine import simulate
from agent.backtest.market import rules_matrix
from agent.backtest.metrics import cash_metrics, compute_metrics
from agent.backtest.models import EngineConfig, FloatArray, SimResult, SizingRules
from agent.backtest.plan import align, rule_plan
from agent.errors import DataError
from agent.market.exchange import MarketRules
from strategies.base import Strategy


@dataclass(frozen=True)
class BacktestResult:
    """A simulation with its inputs and metrics."""

    strategy: str
    params: dict[str, Any]
    timeframe: str
    sim: SimResult
    metrics: dict[str, float]
    targets: FloatArray
    """(n, k) target exposure decided at each bar's close, after sizing and caps."""
    close: FloatArray
    """(n, k) closes (NaN where a symbol has no bar), for charts."""
    config: EngineConfig = field(default_factory=EngineConfig)
    sizing: SizingRules = field(default_factory=SizingRules)

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols in engine order."""
        return self.sim.symbols


def run_backtest(
    frames: Mapping[str, pd.DataFrame],
    strategy: Strategy,
    *,
    timeframe: str,
    rules: Sequence[MarketRules] | FloatArray,
    config: EngineConfig | None = None,
    sizing: SizingRules | None = None,
    start: pd.Timestamp | None = None,
) -> BacktestResult:
    """Simulate `strategy` over `frames` (symbol -> candle frame); bars before `start` only warm up."""
    config = config or EngineConfig()
    sizing = sizing or SizingRules()
    if not frames:
        raise DataError("no symbols to backtest")
    if config.style != strategy.style:
        config = replace(config, style=strategy.style)
    plan = rule_plan(frames, strategy, sizing, fill=config.fill)
    index, ohlcv, targets, levels, clamped = plan.index, plan.ohlcv, plan.targets, plan.plan, plan.clamped
    n, k = len(index), len(plan.symbols)
    first = 0 if start is None else int(index.searchsorted(start))
    if first >= n:
        raise DataError(f"no bars at or after {start} to backtest")
    if first:
        index = index[first:]
        ohlcv = {c: a[first:] for c, a in ohlcv.items()}
        targets = targets[first:]
        levels = levels[:, first:] if levels is not None else None
    matrix = rules if isinstance(rules, np.ndarray) else rules_matrix(rules)
    if matrix.shape != (k, 4):
        raise ValueError(f"rules for {matrix.shape[0]} symbols given, {k} needed")
    sim = simulate(index, plan.symbols, ohlcv, targets, matrix, config, levels, timeframe)
    metrics = compute_metrics(sim, timeframe)
    metrics["clamped_bars"] = int(np.count_nonzero(clamped[first:]))
    return BacktestResult(
        strategy=strategy.name,
        params=strategy.params.model_dump(),
        timeframe=timeframe,
        sim=sim,
        metrics=metrics,
        targets=targets,
        close=ohlcv["close"],
        config=config,
        sizing=sizing,
    )


def compare(
    frames: Mapping[str, pd.DataFrame],
    result: BacktestResult,
    rules: Sequence[MarketRules] | FloatArray,
    start: pd.Timestamp | None = None,
) -> tuple[BacktestResult, dict[str, dict[str, float]]]:
    """Buy & hold (`agent.backtest.baseline`: fully invested from the first bar with the same costs, plus
    the same within the per-symbol cap when that binds) and cash over the strategy's bars, beside it."""
    symbols = list(result.symbols)
    index, ohlcv, _ = align(frames, symbols)
    first = 0 if start is None else int(index.searchsorted(start))
    index, ohlcv = index[first:], {c: a[first:] for c, a in ohlcv.items()}
    matrix = rules if isinstance(rules, np.ndarray) else rules_matrix(rules)
    runs, metrics = hold_metrics(
        index, symbols, ohlcv, matrix, result.config, result.timeframe, result.sizing.position_cap
    )
    hold = BacktestResult(
        strategy=FULL,
        params={},
        timeframe=result.timeframe,
        sim=runs[FULL],
        metrics=metrics[FULL],
        targets=np.broadcast_to(hold_weights(len(symbols)), (len(index), len(symbols))),
        close=ohlcv["close"],
        config=result.config,
        sizing=result.sizing,
    )
    cash = cash_metrics(result.sim.index, result.config.initial_cash, result.timeframe)
    return hold, {"strategy": result.metrics, **metrics, "cash": cash}
