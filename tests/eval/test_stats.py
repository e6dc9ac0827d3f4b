"""The campaign statistics against independent computations (scipy) and their invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp

from agent.eval import stats
from agent.runs.curve import sharpe


def _series(n: int, drift: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(drift, 0.01, n)


def _reference_dsr(r: np.ndarray, trial_sharpes: list[float], trials: int) -> float:
    """Bailey and Lopez de Prado (2014), eq. 2 with the expected maximum of eq. 1, written from the paper."""
    sr = r.mean() / r.std(ddof=1)
    v = np.var(trial_sharpes, ddof=1)
    g = 0.5772156649015329
    sr0 = math.sqrt(v) * ((1 - g) * sp.norm.ppf(1 - 1 / trials) + g * sp.norm.ppf(1 - 1 / (trials * math.e)))
    skew, kurt = sp.skew(r), sp.kurtosis(r, fisher=False)
    return float(
        sp.norm.cdf((sr - sr0) * math.sqrt(len(r) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    )


def test_deflated_sharpe_matches_the_papers_formula() -> None:
    r = _series(250, 0.002, 1)
    trials = [stats.per_bar_sharpe(_series(250, 0.0005 * k, k)) for k in range(8)]
    assert stats.deflated_sharpe(r, trials, 8) == pytest.approx(_reference_dsr(r, trials, 8), abs=1e-12)


def test_with_one_trial_it_is_the_probabilistic_sharpe_ratio_against_zero() -> None:
    r = _series(120, 0.001, 2)
    sr = r.mean() / r.std(ddof=1)
    skew, kurt = sp.skew(r), sp.kurtosis(r, fisher=False)
    psr = sp.norm.cdf(sr * math.sqrt(len(r) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    assert stats.deflated_sharpe(r, [sr], 1) == pytest.approx(psr, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), trials=st.integers(2, 500))
def test_trying_more_strategies_never_raises_the_deflated_sharpe(seed: int, trials: int) -> None:
    r = _series(100, 0.001, seed)
    spread = [stats.per_bar_sharpe(_series(100, 0.0, seed + k)) for k in range(1, 6)]
    few, many = stats.deflated_sharpe(r, spread, trials), stats.deflated_sharpe(r, spread, trials + 10)
    assert 0.0 <= many <= few <= 1.0


def test_intervals_are_seeded_and_cover_the_estimate() -> None:
    r = _series(300, 0.001, 3)
    periods = 365.0
    kw = {"samples": 400, "confidence": 0.9, "block": 5, "seed": 11}
    a = stats.interval(r, lambda x: sharpe(x, periods), **kw)
    b = stats.interval(r, lambda x: sharpe(x, periods), **kw)
    assert a == b, "the same seed gives the same interval, bit for bit"
    assert a[0] < sharpe(r, periods) < a[1]
    lo, hi = stats.interval(r, stats.total_return, **kw)
    assert lo < stats.total_return(r) < hi
    assert stats.interval(r, lambda x: sharpe(x, periods), **kw | {"seed": 12}) != a


def test_a_series_too_short_or_flat_is_not_tested() -> None:
    short, flat = _series(stats.MIN_BARS - 1, 0.01, 4), np.zeros(50)
    kw = {"samples": 200, "confidence": 0.9, "block": 2, "seed": 1}
    assert all(math.isnan(x) for x in stats.interval(short, stats.total_return, **kw))
    assert all(math.isnan(x) for x in stats.interval(flat, stats.total_return, **kw))
    assert math.isnan(stats.superior([short], short * 0.5, samples=200, block=2, seed=1))
    assert math.isnan(stats.superior([flat], flat, samples=200, block=2, seed=1))
    assert math.isnan(stats.deflated_sharpe(flat, [0.1, 0.2], 3))


def test_the_superiority_test_tells_a_better_strategy_from_a_worse_one() -> None:
    bench = _series(400, 0.0, 5)
    noise = np.random.default_rng(6).normal(0, 0.002, 400)
    better, worse = bench + 0.003 + noise, bench - 0.003 + noise
    kw = {"samples": 500, "block": 5, "seed": 7}
    assert stats.superior([better], bench, **kw) < 0.05
    assert stats.superior([worse], bench, **kw) > 0.3, "no evidence (a worse model's statistic is 0)"
    assert stats.superior([better], bench, **kw) == stats.superior([better], bench, **kw)
    # the family test: the best of several, one of them truly better, still shows; all worse does not
    assert stats.superior([worse, better, worse - 0.001], bench, **kw) < 0.05
    assert stats.superior([worse, worse - 0.001], bench, **kw) > 0.3


def test_block_length_is_the_given_one_within_bounds_else_chosen_from_the_data() -> None:
    r = _series(90, 0.0, 8)
    assert stats.block_length(r, 7) == 7
    assert stats.block_length(r, 1000) == 30, "at most a third of the series"
    assert 1 <= stats.block_length(r) <= 30
    assert stats.block_length(np.zeros(40)) == 1
