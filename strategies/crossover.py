"""Trend following by moving-average crossovers: `sma_cross`, `ema_cross`, `macd` (TA-Lib indicators).

Each is long (exposure 1.0) while the fast line is above the slow one and flat otherwise, including the
warm-up bars where an indicator is still NaN. Parameters require fast < slow.
"""

from __future__ import annotations

import pandas as pd
import talib
from pydantic import Field, model_validator

from strategies.base import FloatArray, Strategy, StrategyParams, prices, sweep
from strategies.signals import above


class CrossParams(StrategyParams):
    """Fast and slow periods of two moving averages."""

    fast: int = Field(20, ge=2, le=1000, json_schema_extra=sweep(10, 50, 10))
    slow: int = Field(50, ge=3, le=2000, json_schema_extra=sweep(50, 200, 25))

    @model_validator(mode="after")
    def _fast_below_slow(self) -> CrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class SmaCross(Strategy):
    """Long while SMA(fast) > SMA(slow)."""

    name = "sma_cross"
    Params = CrossParams
    params: CrossParams

    def warmup_bars(self) -> int:
        """The slow average's period."""
        return max(self.params.slow, super().warmup_bars())

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """1.0 where the fast SMA is above the slow SMA."""
        close = prices(candles)
        return above(talib.SMA(close, self.params.fast), talib.SMA(close, self.params.slow))


class EmaCrossParams(CrossParams):
    """EMA periods (defaults 12/26)."""

    fast: int = Field(12, ge=2, le=1000, json_schema_extra=sweep(6, 30, 6))
    slow: int = Field(26, ge=3, le=2000, json_schema_extra=sweep(26, 104, 26))


class EmaCross(Strategy):
    """Long while EMA(fast) > EMA(slow)."""

    name = "ema_cross"
    Params = EmaCrossParams
    params: EmaCrossParams

    def warmup_bars(self) -> int:
        """Three slow periods, so the exponential averages have forgotten their seed."""
        return max(3 * self.params.slow, super().warmup_bars())

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """1.0 where the fast EMA is above the slow EMA."""
        close = prices(candles)
        return above(talib.EMA(close, self.params.fast), talib.EMA(close, self.params.slow))


class MacdParams(EmaCrossParams):
    """MACD fast/slow EMA periods and the signal line's period."""

    signal: int = Field(9, ge=2, le=500, json_schema_extra=sweep(5, 15, 2))


class Macd(Strategy):
    """Long while the MACD line is above its signal line."""

    name = "macd"
    Params = MacdParams
    params: MacdParams

    def warmup_bars(self) -> int:
        """Three slow periods plus the signal period."""
        return max(3 * self.params.slow + self.params.signal, super().warmup_bars())

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """1.0 where MACD > its signal line."""
        p = self.params
        line, signal_line, _ = talib.MACD(
            prices(candles), fastperiod=p.fast, slowperiod=p.slow, signalperiod=p.signal
        )
        return above(line, signal_line)
