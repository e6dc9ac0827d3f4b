"""`donchian_breakout`: enter on a close above the previous N-bar high, leave below the previous M-bar low.

Channels come from TA-Lib MAX/MIN over the *previous* bars (shifted by one), so the bar being decided is
not part of its own channel.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib
from pydantic import Field

from strategies.base import FloatArray, Strategy, StrategyParams, prices, sweep
from strategies.signals import latch, shift_forward


class DonchianParams(StrategyParams):
    """Channel lengths for entries and exits."""

    entry: int = Field(20, ge=2, le=1000, json_schema_extra=sweep(10, 60, 10))
    exit: int = Field(10, ge=2, le=1000, json_schema_extra=sweep(5, 30, 5))


class DonchianBreakout(Strategy):
    """Turtle-style channel breakout, long only."""

    name = "donchian_breakout"
    Params = DonchianParams
    params: DonchianParams

    def warmup_bars(self) -> int:
        """The longer channel plus one bar."""
        return max(self.params.entry, self.params.exit, super().warmup_bars() - 1) + 1

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """Latched long from an upside breakout until a downside breakout."""
        close = prices(candles)
        upper = shift_forward(talib.MAX(prices(candles, "high"), self.params.entry))
        lower = shift_forward(talib.MIN(prices(candles, "low"), self.params.exit))
        with np.errstate(invalid="ignore"):
            return latch(close > upper, close < lower)
