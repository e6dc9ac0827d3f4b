"""An independent, loop-free numpy backtest of the simplest case, to cross-check the engine.

Case: one symbol, long only, all-in, signal decided at close t and filled at open t+1, fee `fee` on each
fill's notional, no slippage, no precision or minimums. Each round trip multiplies cash by
open_exit x (1 - fee) / (open_entry x (1 + fee)), so cash before every trade is a cumulative product;
in a trade, equity is that cash / (open_entry x (1 + fee)) x close. It shares no code with the engine.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def sma(values: FloatArray, period: int) -> FloatArray:
    """Simple moving average via a cumulative sum; NaN for the first period - 1 bars."""
    out = np.full(len(values), np.nan)
    if period <= len(values):
        csum = np.cumsum(np.concatenate(([0.0], values)))
        out[period - 1 :] = (csum[period:] - csum[:-period]) / period
    return out


def all_in_equity(
    open_: FloatArray, close: FloatArray, signal: FloatArray, fee: float, initial: float
) -> FloatArray:
    """Equity after each bar's close for a 0/1 `signal` (see the module docstring)."""
    n = len(close)
    held = np.zeros(n, dtype=bool)
    held[1:] = signal[:-1] > 0
    before = np.zeros(n, dtype=bool)
    before[1:] = held[:-1]
    entry_bar = np.flatnonzero(held & ~before)
    exit_bar = np.flatnonzero(~held & before)
    closed = len(exit_bar)
    growth = open_[exit_bar] * (1.0 - fee) / (open_[entry_bar[:closed]] * (1.0 + fee))
    cash = initial * np.concatenate(([1.0], np.cumprod(growth)))
    trade = np.cumsum(held & ~before) - 1
    exits_so_far = np.cumsum(~held & before)
    safe = np.maximum(trade, 0)
    amount = cash[safe] / (open_[entry_bar[safe]] * (1.0 + fee)) if len(entry_bar) else np.zeros(n)
    return np.where(held, amount * close, cash[exits_so_far])
