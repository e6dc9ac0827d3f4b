"""Vectorised signal helpers shared by the built-in strategies (pure numpy, point in time).

Contracts:
- Inputs are boolean or float64 arrays aligned with a candle frame; outputs are float64 exposures.
- Comparisons with NaN (indicator warm-up) are False, so warm-up bars are flat (0.0).
- `latch` and `shift_forward` only ever look backwards: the value at t depends on inputs at <= t.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def above(a: FloatArray, b: FloatArray | float) -> FloatArray:
    """1.0 where a > b, else 0.0 (NaN on either side gives 0.0)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(a > b, dtype=np.float64)


def latch(enter: BoolArray, leave: BoolArray) -> FloatArray:
    """1.0 from a bar where `enter` holds until the next bar where `leave` holds (exclusive), else 0.0.

    When both hold on the same bar, `leave` wins (stay flat). Vectorised as a forward fill of the last
    event, so it only uses bars <= t.
    """
    n = len(enter)
    event = np.full(n, np.nan)
    event[np.asarray(enter, dtype=bool)] = 1.0
    event[np.asarray(leave, dtype=bool)] = 0.0
    has = ~np.isnan(event)
    last = np.where(has, np.arange(n), -1)
    np.maximum.accumulate(last, out=last)
    out = np.where(last >= 0, event[np.maximum(last, 0)], 0.0)
    return np.asarray(out, dtype=np.float64)


def shift_forward(a: FloatArray, periods: int = 1) -> FloatArray:
    """`a` delayed by `periods` bars (the value at t is a[t - periods]); the first bars are NaN."""
    out = np.full(len(a), np.nan)
    if periods < len(a):
        out[periods:] = a[: len(a) - periods]
    return out
