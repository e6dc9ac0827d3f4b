"""Performance metrics from an equity curve and its trades (pure functions).

Contracts:
- Returns are per bar: r_0 = equity_0 / initial_cash - 1, r_t = equity_t / equity_{t-1} - 1, so the first
  bar counts as a period. Annualisation uses the timeframe: crypto trades 365 days a year, 24 h a day
  (`periods_per_year("1h") == 8760`). The risk-free rate is 0.
- Definitions are the standard ones (tested against quantstats): Sharpe = mean / std(ddof=1) x sqrt(P);
  Sortino = mean x P / (sqrt(mean(min(r, 0)^2)) x sqrt(P)); volatility = std(ddof=1) x sqrt(P);
  CAGR = (final / initial)^(P / n) - 1; max drawdown = the deepest fall from a running peak that
  includes the initial cash (a negative fraction); Calmar = CAGR / |max drawdown|.
- Drawdown duration: the longest stretch of bars spent below a previous peak (until a new peak or the
  end), in bars and in days.
- Trade metrics use closed round trips only: win rate, profit factor (gross profit / gross loss),
  expectancy (mean net pnl per trade, quote currency). Undefined values (no trades, zero variance) are
  NaN, never 0 presented as a result.
- Activity: exposure = mean of gross position value / equity after each close; time in market =
  fraction of bars with a position; turnover = traded notional / mean equity; fees, dust and capped
  orders as counted by the engine.
- The equity-curve statistics are one compiled pass (`_curve_stats`, numba) so metrics cost about as much
  as the simulation itself on long curves; the small numpy functions above it state the definitions and
  are what the tests compare with quantstats.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from agent.backtest.models import FloatArray, SimResult
from agent.execution.compiled import compiled
from agent.market.candles import timeframe_ms

MS_PER_YEAR = 365 * 24 * 3_600_000
MS_PER_DAY = 24 * 3_600_000


def periods_per_year(timeframe: str) -> float:
    """Bars in a (365-day) year for `timeframe`."""
    return MS_PER_YEAR / timeframe_ms(timeframe)


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


@compiled()
def _curve_stats(equity: FloatArray, initial: float) -> tuple[float, float, float, float, int]:
    """(mean return, std ddof=1, downside RMS, max drawdown, longest underwater stretch) in one pass each."""
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


def equity_metrics(equity: FloatArray, initial: float, periods: float, bar_ms: int) -> dict[str, float]:
    """Return, risk and drawdown figures of an equity curve."""
    mean, std, downside, depth, duration = _curve_stats(
        np.ascontiguousarray(equity, dtype=np.float64), float(initial)
    )
    growth = cagr(float(equity[-1]), initial, len(equity), periods)
    root = math.sqrt(periods)
    return {
        "final_equity": float(equity[-1]),
        "total_return": float(equity[-1] / initial - 1.0),
        "cagr": growth,
        "volatility": std * root,
        "sharpe": mean / std * root if std > 0 else math.nan,
        "sortino": mean * root / downside if downside > 0 else math.nan,
        "max_drawdown": depth,
        "max_drawdown_days": duration * bar_ms / MS_PER_DAY,
        "calmar": growth / abs(depth) if depth < 0 else math.nan,
    }


def compute_metrics(sim: SimResult, timeframe: str) -> dict[str, float]:
    """Every metric of one simulation (see the module docstring for definitions)."""
    bar_ms = timeframe_ms(timeframe)
    out = equity_metrics(sim.equity, sim.initial_cash, periods_per_year(timeframe), bar_ms)
    out.update(trade_stats(sim.trade_pnl[sim.closed]))
    notional = float(np.dot(sim.fill_amount, sim.fill_price))
    mean_equity = float(sim.equity.mean())
    out.update(
        {
            "open_trades": int(np.count_nonzero(~sim.closed)),
            "exposure": float(sim.exposure.mean()),
            "time_in_market": float(np.count_nonzero(sim.exposure > 0)) / len(sim.exposure),
            "turnover": notional / mean_equity if mean_equity > 0 else math.nan,
            "fees_paid": float(sim.fill_fee.sum()),
            "fills": len(sim.fill_amount),
            "dust_orders": sim.counters.dust,
            "capped_orders": sim.counters.capped,
            "bars": len(sim.equity),
            "days": len(sim.equity) * bar_ms / MS_PER_DAY,
        }
    )
    return out


def cash_metrics(index: pd.DatetimeIndex, initial: float, timeframe: str) -> dict[str, float]:
    """The metrics of holding cash over the same bars (no trades, no fees)."""
    return compute_metrics(SimResult.all_cash(index, initial), timeframe)
