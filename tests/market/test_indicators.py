"""Indicators are causal: computed once over a long series and read at bar t, they equal the indicators of
the series cut at t (bit for bit), so reading them point in time leaks nothing after t."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import DEFAULT_DATA_DIR
from agent.market.candles import read_feather
from agent.market.indicators import INDICATORS, IndicatorSeries, indicators


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return read_feather(DEFAULT_DATA_DIR / "binance" / "BTC_USDT-1h.feather")


def columns(frame: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(frame[c].to_numpy(dtype=np.float64) for c in ("high", "low", "close", "volume"))


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want) == list(INDICATORS)
    for key in INDICATORS:
        assert got[key].shape == want[key].shape, key
        assert np.array_equal(got[key], want[key], equal_nan=True), key  # bit for bit, warm-up NaN alike


def test_every_slice_equals_the_indicators_of_the_truncated_series(btc: pd.DataFrame) -> None:
    series = IndicatorSeries(atr_period=14)
    series.update(*columns(btc))  # once, over the whole series
    cuts = np.random.default_rng(20_251_205).integers(1, len(btc) + 1, 200)
    for n in cuts.tolist():
        assert_same(series.at(n), indicators(*columns(btc.iloc[:n]), atr_period=14))


def test_future_bars_do_not_reach_a_slice(btc: pd.DataFrame) -> None:
    n = 3_000
    poisoned = btc.copy()
    poisoned.iloc[n:] = 1e9  # absurd bars after t
    series = IndicatorSeries()
    series.update(*columns(poisoned))
    assert_same(series.at(n), indicators(*columns(btc.iloc[:n])))


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(st.integers(0, 90), min_size=1, max_size=12),
    seed=st.integers(0, 2**32 - 1),
    period=st.sampled_from([5, 14, 21]),
)
def test_growing_a_series_equals_computing_it_at_once(steps: list[int], seed: int, period: int) -> None:
    rng = np.random.default_rng(seed)
    size = sum(steps)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, size)))
    high = close * (1 + rng.uniform(0, 0.01, size))
    low = close * (1 - rng.uniform(0, 0.01, size))
    volume = rng.lognormal(3, 1, size)
    series = IndicatorSeries(atr_period=period)
    end = 0
    for step in steps:
        end += step
        series.update(high[:end], low[:end], close[:end], volume[:end])
        assert len(series) == end
        for n in {0, end // 2, end}:
            assert_same(series.at(n), indicators(high[:n], low[:n], close[:n], volume[:n], period))


def test_slices_are_read_only_and_bounded(btc: pd.DataFrame) -> None:
    series = IndicatorSeries()
    series.update(*columns(btc.iloc[:500]))
    view = series.at(400)["rsi"]
    with pytest.raises(ValueError, match="read-only"):
        view[0] = 1.0
    with pytest.raises(ValueError, match="outside"):
        series.at(501)
    with pytest.raises(ValueError, match="cannot extend"):
        series.update(*columns(btc.iloc[:100]))
