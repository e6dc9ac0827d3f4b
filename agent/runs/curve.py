"""The statistics of an equity curve and of round trips: the definitions every run's metrics use.

Contracts:
- Returns are per bar: r_0 = equity_0 / initial - 1, r_t = equity_t / equity_{t-1} - 1, so the first bar
  counts as a period. The risk-free rate is 0.
- Definitions are the standard ones (tested against quantstats): Sharpe = mean / std(ddof=1) x sqrt(P);
  Sortino = mean x P / (sqrt(mean(min(r, 0)^2)) x sqrt(P)); volatility = std(ddof=1) x sqrt(P);
  CAGR = (final / initial)^(P / n) - 1; max drawdown = the deepest fall from a running peak that includes
  the initial cash (a negative fraction, in [-1, 0]).
- Drawdown duration: the longest stretch of bars spent below a previous peak (until a new peak or the end).
- Trade statistics use closed round trips' net pnl: win rate, profit factor (gross profit / gross loss),
  expectancy (mean net pnl). Undefined values (no trades, zero variance) are NaN, never 0 shown as a result.
- The curve statistics are one compiled pass (`curve_stats`, numba, compiled on first use and cached on
  disk) so metrics cost about as much as the simulation itself on long curves; the small numpy functions
  state the same definitions for tests and notebooks.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]


def bar_returns(equity: FloatArray, initial: float) -> FloatArray:
    """Simple return of each bar, the first one measured from the initial cash."""
    prev = np.empty_like(equity)
    prev[0] = initial
    prev[1:] = equity[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return equity / prev - 1.0


def sharpe(returns: FloatArray, periods: float) -> float:
    """Annualised Sharpe ratio (risk-free 0); NaN when the returns do not vary."""
    if len(returns) < 2:
        return math.nan
    std = float(np.std(returns, ddof=1))
    return float(np.mean(returns)) / std * math.sqrt(periods) if std > 0 else math.nan


def sortino(returns: FloatArray, periods: float) -> float:
    """Annualised Sortino ratio (target 0); NaN without any negative return."""
    downside = math.sqrt(float(np.mean(np.square(np.minimum(returns, 0.0))))) if len(returns) else 0.0
    return float(np.mean(returns)) * math.sqrt(periods) / downside if downside > 0 else math.nan


def volatility(returns: FloatArray, periods: float) -> float:
    """Annualised standard deviation of returns."""
    return float(np.std(returns, ddof=1)) * math.sqrt(periods) if len(returns) > 1 else math.nan


def cagr(final: float, initial: float, n_bars: int, periods: float) -> float:
    """Compound annual growth rate over `n_bars` bars."""
    if n_bars <= 0 or initial <= 0:
        return math.nan
    return float((final / initial) ** (periods / n_bars) - 1.0)


def drawdown(equity: FloatArray, initial: float) -> tuple[float, int]:
    """(max drawdown, a negative fraction; longest underwater stretch in bars); the initial cash is a peak."""
    curve = np.empty(len(equity) + 1)
    curve[0] = initial
    curve[1:] = equity
    peak = np.maximum.accumulate(curve)
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = float(np.min(curve / peak - 1.0))
    at_peak = np.flatnonzero(curve >= peak)
    gaps = np.diff(at_peak, append=len(curve))
    return depth, int(gaps.max()) - 1


def trade_stats(pnl: FloatArray) -> dict[str, float]:
    """Win rate, profit factor and expectancy of closed trades' net pnl."""
    n = len(pnl)
    if n == 0:
        return {"trades": 0, "win_rate": math.nan, "profit_factor": math.nan, "expectancy": math.nan}
    gains = float(pnl[pnl > 0].sum())
    losses = float(-pnl[pnl < 0].sum())
    if losses > 0:
        factor = gains / losses
    else:
        factor = math.inf if gains > 0 else math.nan
    return {
        "trades": n,
        "win_rate": float(np.count_nonzero(pnl > 0)) / n,
        "profit_factor": factor,
        "expectancy": float(pnl.mean()),
    }


@njit(cache=True)
def _stats(equity: FloatArray, initial: float) -> tuple[float, float, float, float, int]:
    n = equity.shape[0]
    total, prev = 0.0, initial
    for t in range(n):
        total += equity[t] / prev - 1.0
        prev = equity[t]
    mean = total / n
    sq, down, prev = 0.0, 0.0, initial
    peak, depth, run, longest = initial, 0.0, 0, 0
    for t in range(n):
        r = equity[t] / prev - 1.0
        prev = equity[t]
        sq += (r - mean) * (r - mean)
        if r < 0.0:
            down += r * r
        if equity[t] >= peak:
            peak = equity[t]
            run = 0
        else:
            run += 1
            longest = max(longest, run)
            depth = min(depth, equity[t] / peak - 1.0)
    std = math.sqrt(sq / (n - 1)) if n > 1 else math.nan
    return mean, std, math.sqrt(down / n), depth, longest


def curve_stats(equity: FloatArray, initial: float) -> tuple[float, float, float, float, int]:
    """(mean return, std ddof=1, downside RMS, max drawdown, longest underwater stretch) of a non-empty curve,
    in one compiled pass each."""
    result: tuple[float, float, float, float, int] = _stats(
        np.ascontiguousarray(equity, dtype=np.float64), float(initial)
    )
    return result
