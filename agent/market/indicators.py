"""Indicators computed from candle columns, for every stage that reads candles (context, sizing, exit plans).

Contracts:
- Pure and vectorised: numpy arrays in, float64 arrays of the same length out; nothing is read beyond the
  arrays given, so a value at bar t uses bars <= t only (TA-Lib's recursions start at the first bar and
  never look ahead).
- `atr`: average true range from TA-Lib (Wilder smoothing), NaN during the warm-up of `period` bars.
- `indicators`: every indicator the decision prompt shows (`INDICATORS`), from TA-Lib.
- `IndicatorSeries` computes `indicators` once over the longest series it was given and reads them point
  in time: `at(n)` is bit-identical to `indicators` over the first `n` bars alone (tested on random cuts),
  because each value depends only on the bars up to its own.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import talib

FloatArray = npt.NDArray[np.float64]

INDICATORS = ("ema20", "ema50", "rsi", "macd", "macd_signal", "macd_hist", "atr", "vol_mean")
"""EMA(20), EMA(50), RSI(14), MACD(12, 26, 9) line/signal/histogram, ATR(period), SMA(20) of volume."""


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


def indicators(
    high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray, atr_period: int = 14
) -> dict[str, FloatArray]:
    """`INDICATORS` over the bars given, each as long as the input (NaN during its warm-up)."""
    c = np.ascontiguousarray(close, dtype=np.float64)
    macd, signal, hist = talib.MACD(c, fastperiod=12, slowperiod=26, signalperiod=9)
    return {
        "ema20": np.asarray(talib.EMA(c, timeperiod=20)),
        "ema50": np.asarray(talib.EMA(c, timeperiod=50)),
        "rsi": np.asarray(talib.RSI(c, timeperiod=14)),
        "macd": np.asarray(macd),
        "macd_signal": np.asarray(signal),
        "macd_hist": np.asarray(hist),
        "atr": atr(high, low, c, atr_period),
        "vol_mean": np.asarray(talib.SMA(np.ascontiguousarray(volume, dtype=np.float64), timeperiod=20)),
    }


class IndicatorSeries:
    """`indicators` of one growing series, computed once over the whole series and read point in time.

    The caller owns the bars: `update` gets the whole series so far (whose first `len(self)` bars must be
    the ones given before: the caller checks that) and recomputes over it; `at(n)` returns views of the
    first `n` values. Memory: the arrays of the longest series given, nothing per read.
    """

    def __init__(self, atr_period: int = 14) -> None:
        """Indicators with ATR over `atr_period` bars."""
        self.atr_period = atr_period
        self._values: dict[str, FloatArray] = {k: np.empty(0) for k in INDICATORS}
        self._n = 0

    def __len__(self) -> int:
        """Bars covered."""
        return self._n

    def update(self, high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray) -> None:
        """Cover the series given (at least as long as before; its prefix is the series given before)."""
        if len(close) < self._n:
            raise ValueError(f"a series of {len(close)} bars cannot extend one of {self._n}")
        if len(close) > self._n:
            self._values = indicators(high, low, close, volume, self.atr_period)
            self._n = len(close)

    def at(self, n: int) -> dict[str, FloatArray]:
        """Every indicator over the first `n` bars (read-only views; n <= len(self))."""
        if not 0 <= n <= self._n:
            raise ValueError(f"bar count {n} outside the {self._n} bars covered")
        out = {}
        for key, values in self._values.items():
            view = values[:n]
            view.flags.writeable = False
            out[key] = view
        return out
