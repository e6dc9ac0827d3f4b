"""Buy & hold: the one benchmark every report sets a run against (rule backtests, agent runs, `runs show`).

Contracts:
- Buy & hold over a window = equal weights over the run's symbols, fully invested (each 1/k of equity)
  bought at the first bar's open and held to the end, marked at every close. It goes through the compiled
  engine (`agent.backtest.engine.simulate`, a target in force before the first bar), so its fills pay the
  same fee (the fixed fee too), slippage, amount step and minimums as the run it is compared with; holding
  costs nothing more. It starts from the run's initial position, if any: the rest is bought at that open.
- `cap` lowers each weight to at most `cap` (the per-symbol risk cap): the "buy & hold (capped)" column, shown
  next to the full one (never instead of it) when the cap binds, e.g. one symbol with
  `max_position_exposure` 0.5.
- `hold_metrics` is the metric set the reports store under `buy_and_hold` (and `buy_and_hold_capped`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from agent.backtest.engine import simulate
from agent.backtest.metrics import compute_metrics
from agent.backtest.models import EngineConfig, FloatArray, SimResult

FULL = "buy_and_hold"
"""Key of the fully invested benchmark in a report's metrics."""
CAPPED = "buy_and_hold_capped"
"""Key of the benchmark held within the per-symbol cap (present only when the cap binds)."""


def hold_weights(k: int, cap: float = 1.0) -> FloatArray:
    """Each of `k` symbols' weight: 1/k, at most `cap`."""
    return np.full(k, min(1.0 / k, cap))


def buy_and_hold(
    index: pd.DatetimeIndex,
    symbols: Sequence[str],
    ohlcv: dict[str, FloatArray],
    rules: FloatArray,
    config: EngineConfig,
    timeframe: str,
    cap: float = 1.0,
) -> SimResult:
    """Equal weights (at most `cap`) bought at the first bar's open and held, with the run's costs."""
    weights = hold_weights(len(symbols), cap)
    target = np.broadcast_to(weights, (len(index), len(symbols)))
    plain = EngineConfig(
        initial_cash=config.initial_cash,
        slippage_bps=config.slippage_bps,
        max_participation=config.max_participation,
        fixed_fee=config.fixed_fee,
        initial_position=config.initial_position,
    )
    return simulate(index, symbols, ohlcv, target, rules, plain, None, timeframe, initial=weights)


def hold_metrics(
    index: pd.DatetimeIndex,
    symbols: Sequence[str],
    ohlcv: dict[str, FloatArray],
    rules: FloatArray,
    config: EngineConfig,
    timeframe: str,
    cap: float = 1.0,
) -> tuple[dict[str, SimResult], dict[str, dict[str, float]]]:
    """The benchmark runs and their metrics: `buy_and_hold`, plus `buy_and_hold_capped` when `cap` binds."""
    runs = {FULL: buy_and_hold(index, symbols, ohlcv, rules, config, timeframe)}
    if min(1.0 / len(symbols), cap) < 1.0 / len(symbols):
        runs[CAPPED] = buy_and_hold(index, symbols, ohlcv, rules, config, timeframe, cap)
    return runs, {name: compute_metrics(sim, timeframe) for name, sim in runs.items()}
