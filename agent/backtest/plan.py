"""From strategy output to the engine's inputs: sized targets, exit distances, aligned bars (vectorised).

Contracts:
- Sizing goes through `agent.risk.sizing`: `fixed` = signal x fraction (`fixed_fraction_exposure`);
  `vol_target` = signal x `vol_target_exposure(close, ATR, risk_per_trade, stop_atr)`, with the size fixed
  at the bar where the signal changes and held while it stays the same (drift is not rebalanced, so a
  size that moved with ATR every bar would trade every bar). ATR warm-up gives size 0.
- Caps: each symbol's target is capped at `position_cap`; a row whose targets sum above `gross_cap` is
  scaled down proportionally. Every capped bar is marked (and counted as `clamped_bars`), never hidden.
- Exit distances at bar t use ATR with data <= t (TA-Lib, `agent.market.indicators.atr`): stop, take-profit
  and trailing distances = multiple x ATR_t, NaN where a multiple is off or ATR is warming up.
- Alignment: the union of all symbols' bar times; prices are NaN where a symbol has no bar (it does not
  trade there); targets and distances carry forward the last decided value (0 before a symbol's first
  bar), which is point in time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from agent.backtest.models import FloatArray, SizingRules
from agent.market.indicators import atr
from agent.risk.sizing import fixed_fraction_exposure, vol_target_exposure
from strategies.base import StrategyParams, prices

COLUMNS = ("open", "high", "low", "close", "volume")


def sized_targets(
    signal: FloatArray, candles: pd.DataFrame, rules: SizingRules
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """(target exposure per bar, mask of the bars where the per-symbol cap clamped it)."""
    if rules.mode == "fixed":
        if rules.fraction <= rules.position_cap:  # signals are within [0, 1]: the cap cannot bind
            out = signal if rules.fraction == 1.0 else signal * rules.fraction
            return out, np.zeros(len(signal), dtype=bool)
        raw = signal * rules.fraction
        return fixed_fraction_exposure(raw, 1.0, rules.position_cap), raw > rules.position_cap
    close = prices(candles)
    size = vol_target_exposure(
        close,
        atr(prices(candles, "high"), prices(candles, "low"), close, rules.atr_period),
        rules.risk_per_trade,
        rules.stop_atr,
        cap=np.inf,
    )
    raw = signal * _hold_from_changes(signal, size)
    return np.minimum(raw, rules.position_cap), raw > rules.position_cap


def _hold_from_changes(signal: FloatArray, value: FloatArray) -> FloatArray:
    """`value` taken at each bar where `signal` changes (and at bar 0), carried forward until the next."""
    change = np.ones(len(signal), dtype=bool)
    change[1:] = signal[1:] != signal[:-1]
    last = np.where(change, np.arange(len(signal)), 0)
    np.maximum.accumulate(last, out=last)
    return value[last]


def exit_distances(candles: pd.DataFrame, params: StrategyParams) -> FloatArray | None:
    """(3, n) stop-loss, take-profit and trailing distances in price units, or None when all are off."""
    multiples = (params.stop_atr, params.take_profit_atr, params.trailing_atr)
    if all(m is None for m in multiples):
        return None
    value = atr(prices(candles, "high"), prices(candles, "low"), prices(candles), params.atr_period)
    return np.stack([value * m if m is not None else np.full(len(value), np.nan) for m in multiples])


def gross_cap(targets: FloatArray, cap: float) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Scale the rows of (n, k) targets whose sum exceeds `cap`; returns (targets, mask of rows scaled)."""
    total = targets.sum(axis=1)
    over = total > cap
    if not over.any():
        return targets, over
    scaled = targets.copy()
    scaled[over] *= (cap / total[over])[:, None]
    return scaled, over


def align(
    frames: Mapping[str, pd.DataFrame], symbols: Sequence[str]
) -> tuple[pd.DatetimeIndex, dict[str, FloatArray], list[np.ndarray]]:
    """Union index, (n, k) OHLCV arrays with NaN gaps, and each symbol's row positions in the union."""
    indexes = [frames[s].index for s in symbols]
    union = indexes[0]
    for other in indexes[1:]:
        if not union.equals(other):
            union = union.union(other)
    union = pd.DatetimeIndex(union)
    n, k = len(union), len(symbols)
    rows = [np.arange(n) if idx.equals(union) else union.get_indexer(idx) for idx in indexes]
    ohlcv = {}
    for col in COLUMNS:
        if k == 1:
            ohlcv[col] = frames[symbols[0]][col].to_numpy(dtype=np.float64).reshape(n, 1)
            continue
        out = np.full((n, k), np.nan)
        for j, s in enumerate(symbols):
            out[rows[j], j] = frames[s][col].to_numpy(dtype=np.float64)
        ohlcv[col] = out
    return union, ohlcv, rows


def spread(values: FloatArray, rows: np.ndarray, n: int, before: float) -> FloatArray:
    """A symbol's per-bar values placed on the union rows, carried forward over gaps (`before` first)."""
    if len(rows) == n:
        return values
    out = np.full(n, np.nan)
    out[rows] = values
    known = ~np.isnan(out)
    last = np.where(known, np.arange(n), -1)
    np.maximum.accumulate(last, out=last)
    return np.where(last >= 0, out[np.maximum(last, 0)], before)
