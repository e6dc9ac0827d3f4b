"""Mean reversion: `rsi_reversion` and `bollinger_reversion` (TA-Lib indicators), long only.

Both buy weakness and hold until the indicator has recovered: the position is latched from the entry
condition until the exit condition (see `strategies.signals.latch`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib
from pydantic import Field, model_validator

from strategies.base import FloatArray, Strategy, StrategyParams, prices, sweep
from strategies.signals import latch


class RsiParams(StrategyParams):
    """RSI period and the oversold/overbought thresholds."""

    period: int = Field(14, ge=2, le=500, json_schema_extra=sweep(7, 28, 7))
    lower: float = Field(30.0, gt=0, lt=100, json_schema_extra=sweep(20, 40, 5))
    upper: float = Field(70.0, gt=0, lt=100, json_schema_extra=sweep(55, 80, 5))

    @model_validator(mode="after")
    def _lower_below_upper(self) -> RsiParams:
        if self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")
        return self


class RsiReversion(Strategy):
    """Enter when RSI < lower, leave when RSI > upper."""

    name = "rsi_reversion"
    Params = RsiParams
    params: RsiParams

    def warmup_bars(self) -> int:
        """Three RSI periods (Wilder smoothing)."""
        return max(3 * self.params.period, super().warmup_bars())

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """Latched long between an oversold and an overbought reading."""
        rsi = talib.RSI(prices(candles), self.params.period)
        with np.errstate(invalid="ignore"):
            return latch(rsi < self.params.lower, rsi > self.params.upper)


class BollingerParams(StrategyParams):
    """Band period and width in standard deviations."""

    period: int = Field(20, ge=2, le=1000, json_schema_extra=sweep(10, 50, 10))
    nbdev: float = Field(2.0, gt=0, le=10, json_schema_extra=sweep(1.5, 3.0, 0.5))


class BollingerReversion(Strategy):
    """Enter on a close below the lower band, leave on a close above the middle band."""

    name = "bollinger_reversion"
    Params = BollingerParams
    params: BollingerParams

    def warmup_bars(self) -> int:
        """One band period."""
        return max(self.params.period, super().warmup_bars())

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """Latched long from below the lower band back to the middle band."""
        close = prices(candles)
        p = self.params
        upper, middle, lower = talib.BBANDS(close, timeperiod=p.period, nbdevup=p.nbdev, nbdevdn=p.nbdev)
        with np.errstate(invalid="ignore"):
            return latch(close < lower, close > middle)
