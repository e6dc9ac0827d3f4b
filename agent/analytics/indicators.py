"""Technical indicators (TA-Lib) of one symbol, point in time.

Contracts:
- Indicators are computed over every stored bar before `end` (the store's whole history, not from
  `start`), so recursive ones (EMA, RSI, ATR, MACD) match what a backtest or the daemon computes with a
  long history; the value at bar t reads bars <= t only. Values are listed for bars inside [start, end).
- `name` is a closed set; each output column is named as TA-Lib names it (`macd`, `macd_signal`,
  `macd_hist`; `upper`, `middle`, `lower` for Bollinger bands).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import talib
from pydantic import Field

from agent.analytics.context import ToolContext
from agent.analytics.market_data import frame
from agent.analytics.models import ToolOutput, Window, num, stamp
from agent.errors import DataError
from agent.market.candles import utc_timestamp

IndicatorName = Literal["sma", "ema", "rsi", "atr", "macd", "bbands", "adx"]


class IndicatorInput(Window):
    """One indicator of one symbol."""

    name: IndicatorName
    period: int = Field(14, ge=2, le=1000, description="time period (MACD: ignored, 12/26/9)")
    points: int = Field(10, ge=1, le=200, description="newest values to list")


class IndicatorResult(ToolOutput):
    """The indicator's newest values inside the window, per output column."""

    symbol: str
    name: IndicatorName
    period: int
    last_bar: str
    last: dict[str, float | None]
    newest: dict[str, dict[str, float | None]]
    """column -> bar time -> value."""
    definition: str


def compute(df: pd.DataFrame, name: IndicatorName, period: int) -> pd.DataFrame:
    """The indicator's columns over every bar of `df` (NaN during warm-up)."""
    c = np.ascontiguousarray(df["close"], dtype=np.float64)
    h = np.ascontiguousarray(df["high"], dtype=np.float64)
    lo = np.ascontiguousarray(df["low"], dtype=np.float64)
    cols: dict[str, np.ndarray] = {}
    if name == "sma":
        cols["sma"] = talib.SMA(c, timeperiod=period)
    elif name == "ema":
        cols["ema"] = talib.EMA(c, timeperiod=period)
    elif name == "rsi":
        cols["rsi"] = talib.RSI(c, timeperiod=period)
    elif name == "atr":
        cols["atr"] = talib.ATR(h, lo, c, timeperiod=period)
    elif name == "adx":
        cols["adx"] = talib.ADX(h, lo, c, timeperiod=period)
    elif name == "macd":
        cols["macd"], cols["macd_signal"], cols["macd_hist"] = talib.MACD(c, 12, 26, 9)
    else:
        cols["upper"], cols["middle"], cols["lower"] = talib.BBANDS(
            c, timeperiod=period, nbdevup=2, nbdevdn=2
        )
    return pd.DataFrame(cols, index=df.index)


_DEFS = {
    "sma": "simple moving average of the close over `period` bars",
    "ema": "exponential moving average of the close (TA-Lib, seeded with the SMA of the first `period` bars)",
    "rsi": "Wilder's relative strength index of the close over `period` bars (0-100)",
    "atr": "Wilder's average true range over `period` bars (price units)",
    "adx": "Wilder's average directional index over `period` bars (0-100)",
    "macd": "MACD(12, 26, 9): EMA12 - EMA26, its EMA9 signal, and their difference",
    "bbands": "Bollinger bands: SMA(`period`) of the close +/- 2 population standard deviations",
}


def indicator_tool(ctx: ToolContext, a: IndicatorInput) -> IndicatorResult:
    """TA-Lib's indicator over the stored history before `end`, listed inside the window."""
    history = frame(ctx, a.model_copy(update={"start": None}))
    values = compute(history, a.name, a.period)
    if a.start is not None:
        values = values[values.index >= utc_timestamp(a.start)]
    values = values.dropna(how="all")
    if values.empty:
        raise DataError(f"no {a.name} values in the window: it needs more than {a.period} bars of history")
    tail = values.tail(a.points)
    return IndicatorResult(
        symbol=a.symbol,
        name=a.name,
        period=a.period,
        last_bar=stamp(values.index[-1]),
        last={c: num(values[c].iloc[-1]) for c in values.columns},
        newest={c: {stamp(t): num(v) for t, v in tail[c].items()} for c in tail.columns},
        definition=_DEFS[a.name],
    )
