"""The statistics of a campaign: confidence intervals and tests over bar returns, with a correction for the
number of strategies tried.

Role: pure functions of return series (numpy arrays of simple returns per bar, aligned on the same bars),
so every figure can be recomputed from the curves a campaign stores. The resampling is `arch`'s stationary
bootstrap (Politis and Romano), which keeps the serial dependence of returns within blocks of random length.

Contracts:
- Seeded: the same series, settings and seed give the same intervals and p-values, bit for bit.
- `block_length`: the mean block length, the campaign's `block_bars` if given, else Politis and White's
  automatic choice for the stationary bootstrap (`arch.bootstrap.optimal_block_length`), at least 1 and
  at most a third of the series.
- `interval`: the percentile bootstrap interval of a statistic (total return, Sharpe) at `confidence`.
- `superior`: Hansen's test for superior predictive ability (`arch.bootstrap.SPA`, consistent p-value) of
  the models' returns over a benchmark's: one model gives a plain one-sided bootstrap test of "mean excess
  return > 0"; several give the p-value that the best of them beats the benchmark, corrected for having
  tried them all (White's reality check, studentised).
- `deflated_sharpe`: Bailey and Lopez de Prado's deflated Sharpe ratio: the probability that the true
  Sharpe ratio is above the best that `trials` strategies with the observed spread of Sharpe ratios would
  reach by luck, given the sample's length, skewness and kurtosis. With one trial it is the probabilistic
  Sharpe ratio against 0.
- Series too short to test (fewer than `MIN_BARS` bars) or without variance give NaN, never a number that
  looks like evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
from arch.bootstrap import SPA, StationaryBootstrap, optimal_block_length

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

MIN_BARS = 10
"""Fewer bar returns than this are not tested."""
EULER_GAMMA = 0.5772156649015329


def block_length(returns: FloatArray, given: int | None = None) -> int:
    """The mean block length of the bootstrap (module contract)."""
    n = len(returns)
    if given is not None:
        return max(1, min(given, max(1, n // 3)))
    if n < MIN_BARS or not np.isfinite(returns).all() or float(np.std(returns)) == 0.0:
        return 1
    with np.errstate(
        divide="ignore", invalid="ignore"
    ):  # flat stretches (no position) have no autocorrelation
        auto = float(optimal_block_length(returns)["stationary"].iloc[0])
    return max(1, min(round(auto) if math.isfinite(auto) else 1, max(1, n // 3)))


def total_return(returns: FloatArray) -> float:
    """Compounded return of a series of simple returns."""
    return float(np.prod(1.0 + returns) - 1.0)


def interval(
    returns: FloatArray,
    statistic: Callable[[FloatArray], float],
    *,
    samples: int,
    confidence: float,
    block: int,
    seed: int,
) -> tuple[float, float]:
    """The percentile bootstrap interval of `statistic` (module contract); NaNs when too short."""
    if len(returns) < MIN_BARS or float(np.std(returns)) == 0.0:
        return math.nan, math.nan
    boot = StationaryBootstrap(block, returns, seed=np.random.default_rng(seed))
    values = boot.apply(lambda r: np.array([statistic(r)]), samples)[:, 0]
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return float(lo), float(hi)


def superior(
    models: Sequence[FloatArray], benchmark: FloatArray, *, samples: int, block: int, seed: int
) -> float:
    """p-value that the best of `models` beats `benchmark` in mean return per bar (module contract)."""
    if not models or len(benchmark) < MIN_BARS:
        return math.nan
    excess = np.column_stack([m - benchmark for m in models])
    if not np.isfinite(excess).all() or float(np.max(np.std(excess, axis=0))) == 0.0:
        return math.nan
    losses = -np.column_stack(models)  # SPA compares losses: lower is better
    spa = SPA(-benchmark, losses, block_size=block, reps=samples, seed=np.random.default_rng(seed))
    spa.compute()
    return float(spa.pvalues["consistent"])


def deflated_sharpe(returns: FloatArray, trial_sharpes: Sequence[float], trials: int) -> float:
    """The deflated Sharpe ratio of `returns` among `trials` strategies whose per-bar Sharpe ratios spread as
    `trial_sharpes` do (module contract); a probability in [0, 1]."""
    n = len(returns)
    sd = float(np.std(returns, ddof=1)) if n > 1 else 0.0
    if n < MIN_BARS or sd == 0.0:
        return math.nan
    sr = float(np.mean(returns)) / sd
    finite = [s for s in trial_sharpes if math.isfinite(s)]
    spread = float(np.var(finite, ddof=1)) if len(finite) > 1 else 0.0
    if trials > 1 and spread > 0:
        z = NormalDist().inv_cdf
        expected_max = (1 - EULER_GAMMA) * z(1 - 1 / trials) + EULER_GAMMA * z(1 - 1 / (trials * math.e))
        threshold = math.sqrt(spread) * float(expected_max)
    else:
        threshold = 0.0
    centred = returns - float(np.mean(returns))
    m2 = float(np.mean(centred**2))
    skew = float(np.mean(centred**3)) / m2**1.5
    kurt = float(np.mean(centred**4)) / m2**2
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if not math.isfinite(denom) or denom <= 0:
        return math.nan
    return float(NormalDist().cdf((sr - threshold) * math.sqrt(n - 1) / math.sqrt(denom)))


def per_bar_sharpe(returns: FloatArray) -> float:
    """Mean over standard deviation of bar returns (not annualised); NaN without variance."""
    sd = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    return float(np.mean(returns)) / sd if sd > 0 else math.nan
