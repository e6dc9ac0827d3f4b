"""Rule baselines of a published daily protocol (CryptoTrade, Li et al., EMNLP 2024): order-fraction
strategies that decide on each day's open, from indicators of the opens (TA-Lib).

Each day, from the open of that day and the opens before it: a buy signal places an order of +`buy` (buy
with that fraction of the cash), a sell signal an order of -`sell` (sell that fraction of the holdings),
every day the signal holds, not only when it changes; no signal (or an indicator still warming up) is 0.
The orders fill at the same open (`fill_timing = "same_open"`, so the engine shows them the `open` column
only). The preset `data/campaigns/published_daily.toml` runs them; docs/evaluation.md describes the protocol.

- `open_sma`: buy while open_t > SMA(open, period), sell while open_t < it.
- `open_sma_cross`: buy while SMA(open, short) > SMA(open, long), sell while it is below.
- `open_macd`: MACD(fast, slow, signal) of the opens; buy while the MACD line is above its signal line,
  sell while below. `contrarian = true` swaps them, as the published code does (it buys while MACD is below
  the signal line, although its comment describes the usual rule).
- `open_bollinger`: buy while open_t < SMA - nbdev x the sample standard deviation (ddof 1) of the last
  `period` opens, sell while open_t > SMA + nbdev x it.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import talib
from pydantic import Field, model_validator

from agent.execution.conventions import FillTiming, OrderStyle
from strategies.base import FloatArray, Strategy, StrategyParams, prices, sweep

BoolArray = npt.NDArray[np.bool_]


class OrderParams(StrategyParams):
    """The size of each order: a fraction of the cash (buy) or of the holdings (sell)."""

    buy: float = Field(0.5, gt=0, le=1, description="fraction of the cash each buy signal spends")
    sell: float = Field(0.5, gt=0, le=1, description="fraction of the holdings each sell signal sells")


class OpenOrders(Strategy):
    """Base of the order strategies deciding on the open: subclasses give buy and sell masks."""

    style: ClassVar[OrderStyle] = "order_fraction"
    fill_timing: ClassVar[FillTiming] = "same_open"
    params: OrderParams

    def warmup_bars(self) -> int:
        """No exit plan (none is allowed at the open): the indicators' own warm-up."""
        return 0

    def masks(self, opens: FloatArray) -> tuple[BoolArray, BoolArray]:
        """(buy, sell) per day from the opens up to that day; never both."""
        raise NotImplementedError

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """+buy on buy days, -sell on sell days, else 0."""
        with np.errstate(invalid="ignore"):
            buy, sell = self.masks(prices(candles, "open"))
        return np.where(buy, self.params.buy, np.where(sell, -self.params.sell, 0.0))


class SmaParams(OrderParams):
    """The SMA period."""

    period: int = Field(15, ge=2, le=500, json_schema_extra=sweep(5, 30, 5))


class OpenSma(OpenOrders):
    """Buy while the open is above its SMA, sell while below."""

    name = "open_sma"
    Params = SmaParams
    params: SmaParams

    def warmup_bars(self) -> int:
        """The SMA period."""
        return self.params.period

    def masks(self, opens: FloatArray) -> tuple[BoolArray, BoolArray]:
        """open > SMA, open < SMA."""
        sma = talib.SMA(opens, self.params.period)
        return opens > sma, opens < sma


class SmaCrossParams(OrderParams):
    """Short and long SMA periods."""

    short: int = Field(15, ge=2, le=500, json_schema_extra=sweep(5, 20, 5))
    long: int = Field(30, ge=3, le=1000, json_schema_extra=sweep(10, 30, 5))

    @model_validator(mode="after")
    def _short_below_long(self) -> SmaCrossParams:
        if self.short >= self.long:
            raise ValueError(f"short ({self.short}) must be below long ({self.long})")
        return self


class OpenSmaCross(OpenOrders):
    """Buy while the short SMA of the opens is above the long one, sell while below."""

    name = "open_sma_cross"
    Params = SmaCrossParams
    params: SmaCrossParams

    def warmup_bars(self) -> int:
        """The long period."""
        return self.params.long

    def masks(self, opens: FloatArray) -> tuple[BoolArray, BoolArray]:
        """SMA(short) > SMA(long), SMA(short) < SMA(long)."""
        short, long = talib.SMA(opens, self.params.short), talib.SMA(opens, self.params.long)
        return short > long, short < long


class MacdParams(OrderParams):
    """MACD periods, and the published code's reversed reading."""

    fast: int = Field(12, ge=2, le=500)
    slow: int = Field(26, ge=3, le=1000)
    signal: int = Field(9, ge=2, le=500)
    contrarian: bool = Field(
        False, description="buy while MACD is below its signal line (the published code)"
    )

    @model_validator(mode="after")
    def _fast_below_slow(self) -> MacdParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class OpenMacd(OpenOrders):
    """Buy while MACD of the opens is above its signal line, sell while below (or the reverse)."""

    name = "open_macd"
    Params = MacdParams
    params: MacdParams

    def warmup_bars(self) -> int:
        """Ten slow periods: the exponential averages forget their seed."""
        return 10 * self.params.slow + self.params.signal

    def masks(self, opens: FloatArray) -> tuple[BoolArray, BoolArray]:
        """MACD vs its signal line."""
        p = self.params
        line, signal_line, _ = talib.MACD(opens, fastperiod=p.fast, slowperiod=p.slow, signalperiod=p.signal)
        above, below = line > signal_line, line < signal_line
        return (below, above) if p.contrarian else (above, below)


class BollingerParams(OrderParams):
    """Band period and width in sample standard deviations."""

    period: int = Field(20, ge=2, le=1000)
    nbdev: float = Field(2.0, gt=0, le=10)


class OpenBollinger(OpenOrders):
    """Buy below the lower band, sell above the upper band (bands of the opens)."""

    name = "open_bollinger"
    Params = BollingerParams
    params: BollingerParams

    def warmup_bars(self) -> int:
        """The band period."""
        return self.params.period

    def masks(self, opens: FloatArray) -> tuple[BoolArray, BoolArray]:
        """open < lower band, open > upper band."""
        n = self.params.period
        middle = talib.SMA(opens, n)
        width = self.params.nbdev * talib.STDDEV(opens, n, 1.0) * math.sqrt(n / (n - 1))  # sample std
        return opens < middle - width, opens > middle + width
