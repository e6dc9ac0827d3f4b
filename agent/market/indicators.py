"""Indicators computed from candle columns, for every stage that reads candles (context, sizing, exit plans).

Contracts:
- Pure and vectorised: numpy arrays in, a float64 array of the same length out; nothing is read beyond the
  arrays given, so a value at bar t uses bars <= t only.
- `atr`: average true range from TA-Lib (Wilder smoothing), NaN during the warm-up of `period` bars.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import talib

FloatArray = npt.NDArray[np.float64]


def atr(high: FloatArray, low: FloatArray, close: FloatArray, period: int = 14) -> FloatArray:
    """Average true range (TA-Lib, Wilder smoothing); NaN during warm-up."""
    return np.asarray(
        talib.ATR(
            np.ascontiguousarray(high, dtype=np.float64),
            np.ascontiguousarray(low, dtype=np.float64),
            np.ascontiguousarray(close, dtype=np.float64),
            timeperiod=period,
        )
    )
