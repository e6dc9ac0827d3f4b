"""Metrics of a compiled simulation: the engine's inputs to the one metric function,
`agent.runs.metrics.compute`.

Contracts:
- `compute_metrics(sim, timeframe)` is the run metric set (`agent.runs.metrics.MetricSet`, as a dict of
  figures) of one simulation, plus the engine's own counters (`dust_orders`, `capped_orders`). Its inputs:
  equity and exposure (gross position value / equity) after each close, traded notional, fees, fills and
  the closed round trips' net pnl (open trades are counted, not scored); the engine records no decisions
  (`decisions` NaN) and rules never abstain (`abstentions` 0).
- Definitions (tested against quantstats) are in `agent.runs.curve`, re-exported here; annualisation uses
  the timeframe over a 365-day, 24-hour year (`periods_per_year("1h") == 8760`), and a window too short to
  annualise leaves the annualised figures NaN (`agent.runs.metrics.window_warnings` says why).
- `equity_metrics` is the return, risk and drawdown part of the same set, for a bare equity curve.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agent.backtest.models import FloatArray, SimResult
from agent.market.candles import timeframe_ms
from agent.runs.curve import bar_returns, cagr, drawdown, sharpe, sortino, trade_stats, volatility
from agent.runs.metrics import MS_PER_DAY, MS_PER_YEAR, Activity, Curve, compute

__all__ = [
    "MS_PER_DAY",
    "MS_PER_YEAR",
    "bar_returns",
    "cagr",
    "cash_metrics",
    "compute_metrics",
    "drawdown",
    "equity_metrics",
    "periods_per_year",
    "sharpe",
    "sortino",
    "trade_stats",
    "volatility",
]

CURVE_KEYS = (
    "final_equity",
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_days",
    "calmar",
)
"""The figures `equity_metrics` gives: those of the curve alone."""


def periods_per_year(timeframe: str) -> float:
    """Bars in a (365-day) year for `timeframe`."""
    return MS_PER_YEAR / timeframe_ms(timeframe)


def equity_metrics(equity: FloatArray, initial: float, periods: float, bar_ms: int) -> dict[str, float]:
    """Return, risk and drawdown figures of an equity curve."""
    figures = compute(Curve(equity, initial, bar_ms, periods_per_year=periods)).numbers()
    return {key: figures[key] for key in CURVE_KEYS}


def compute_metrics(sim: SimResult, timeframe: str) -> dict[str, float]:
    """Every metric of one simulation (see the module contract)."""
    curve = Curve(sim.equity, sim.initial_cash, timeframe_ms(timeframe), sim.exposure)
    closed = sim.closed
    activity = Activity(
        notional=float(np.dot(sim.fill_amount, sim.fill_price)),
        fees_paid=float(sim.fill_fee.sum()),
        fills=len(sim.fill_amount),
        trade_pnl=sim.trade_pnl[closed],
        open_trades=int(np.count_nonzero(~closed)),
        decisions=None,
        abstentions=0,
    )
    figures = compute(curve, activity).numbers()
    return figures | {"dust_orders": sim.counters.dust, "capped_orders": sim.counters.capped}


def cash_metrics(index: pd.DatetimeIndex, initial: float, timeframe: str) -> dict[str, float]:
    """The metrics of holding cash over the same bars (no trades, no fees)."""
    return compute_metrics(SimResult.all_cash(index, initial), timeframe)
