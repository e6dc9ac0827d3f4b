"""Market statistics with stated definitions: volatility, drawdown, correlation, rolling windows.

Definitions (every tool's output repeats the ones it used in `definitions`):
- return: simple close-to-close, `close[t] / close[t-1] - 1` (`agent.analytics.market_data.returns`).
- volatility: the sample standard deviation (ddof=1) of the returns, annualised by the square root of bars
  in a 365-day year (`1h`: 8,760).
- max drawdown: the deepest fall of the close from its running peak inside the window,
  `min(close / cummax(close) - 1)`, a fraction <= 0, with the peak and trough bars.
- correlation: Pearson, of the returns of bars both symbols have (inner join on bar time), over the window
  or per calendar period.
- rolling: over the last `window` bars ending at each bar: volatility (as above), return
  (`close[t] / close[t-window] - 1`) or mean return.
- regimes: see `agent.analytics.regimes`.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import Field, field_validator, model_validator

from agent.analytics.context import ToolContext
from agent.analytics.market_data import annualised, frame, period_key, periods_per_year, returns
from agent.analytics.models import (
    Period,
    Timeframe,
    ToolInput,
    ToolOutput,
    Window,
    check_date,
    check_order,
    check_symbol,
    num,
    stamp,
)
from agent.errors import DataError

RETURN_DEF = "return: close[t] / close[t-1] - 1"
VOL_DEF = "volatility: sample std (ddof=1) of returns x sqrt(bars per 365-day year)"
DD_DEF = "max drawdown: min(close / running max(close) - 1) inside the window"
CORR_DEF = "correlation: Pearson of both symbols' returns on common bars"


class StatsInput(Window):
    """Summary statistics of one symbol over a window."""


class StatsResult(ToolOutput):
    """Volatility, drawdown and return figures of one window."""

    symbol: str
    timeframe: str
    first: str
    last: str
    bars: int
    total_return: float | None
    volatility: float | None
    bar_volatility: float | None
    """The per-bar standard deviation, before annualising."""
    max_drawdown: float | None
    drawdown_peak: str
    drawdown_trough: str
    best_return: float | None
    worst_return: float | None
    definitions: list[str]


def stats_tool(ctx: ToolContext, a: StatsInput) -> StatsResult:
    """Volatility, max drawdown (with its peak and trough), total, best and worst bar returns."""
    close = frame(ctx, a)["close"]
    r = returns(close)
    dd = close / close.cummax() - 1
    trough = dd.idxmin()
    peak = close.loc[:trough].idxmax()
    std = float(r.std(ddof=1)) if len(r) > 1 else float("nan")
    return StatsResult(
        symbol=a.symbol,
        timeframe=a.timeframe,
        first=stamp(close.index[0]),
        last=stamp(close.index[-1]),
        bars=len(close),
        total_return=num(close.iloc[-1] / close.iloc[0] - 1),
        volatility=annualised(std, a.timeframe),
        bar_volatility=num(std),
        max_drawdown=num(dd.min()),
        drawdown_peak=stamp(peak),
        drawdown_trough=stamp(trough),
        best_return=num(r.max()) if len(r) else None,
        worst_return=num(r.min()) if len(r) else None,
        definitions=[RETURN_DEF, VOL_DEF, DD_DEF, "total return: last close / first close - 1"],
    )


class CorrelationInput(ToolInput):
    """Correlation of two or more symbols' returns."""

    symbols: list[str] = Field(min_length=2, max_length=8)
    timeframe: Timeframe = "1h"
    start: str | None = None
    end: str | None = None
    period: Period = "bar"
    """`bar`: one matrix over the window; else also each pair's correlation per calendar period."""

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(check_symbol(s) for s in v))

    @field_validator("start", "end")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        return check_date(v)

    @model_validator(mode="after")
    def _order(self) -> CorrelationInput:
        check_order(self.start, self.end)
        return self


class CorrelationResult(ToolOutput):
    """Pairwise correlations over the window, and per period when asked."""

    timeframe: str
    bars: int
    """Common bars with a return for every symbol."""
    pairs: dict[str, float | None]
    """`A~B` -> correlation over the window."""
    periods: dict[str, dict[str, float | None]]
    """period label -> `A~B` -> correlation within that period."""
    definitions: list[str]


def aligned_returns(
    ctx: ToolContext, symbols: list[str], tf: str, start: str | None, end: str | None
) -> pd.DataFrame:
    """Returns of each symbol (columns) on the bars all of them have."""
    closes = {
        s: frame(ctx, Window(symbol=s, timeframe=tf, start=start, end=end))["close"]  # type: ignore[arg-type]
        for s in symbols
    }
    joined = pd.concat(closes, axis=1, join="inner")
    return joined.pct_change().iloc[1:]


def _pairs(r: pd.DataFrame) -> dict[str, float | None]:
    cols = list(r.columns)
    corr = r.corr()
    return {f"{a}~{b}": num(corr.loc[a, b]) for i, a in enumerate(cols) for b in cols[i + 1 :]}


def correlation_tool(ctx: ToolContext, a: CorrelationInput) -> CorrelationResult:
    """Pearson correlations of the symbols' returns over the window and, optionally, per period."""
    r = aligned_returns(ctx, a.symbols, a.timeframe, a.start, a.end)
    if len(r) < 2:
        raise DataError("fewer than 2 common bars: widen the window")
    periods: dict[str, dict[str, float | None]] = {}
    if a.period != "bar":
        for key, part in r.groupby(period_key(pd.DatetimeIndex(r.index), a.period)):
            periods[str(key)] = _pairs(part)
    return CorrelationResult(
        timeframe=a.timeframe,
        bars=len(r),
        pairs=_pairs(r),
        periods=periods,
        definitions=[RETURN_DEF, CORR_DEF],
    )


RollingStat = Literal["volatility", "return", "mean_return"]


class RollingInput(Window):
    """A rolling statistic of one symbol."""

    stat: RollingStat = "volatility"
    window: int = Field(24, ge=2, le=10_000, description="bars in each rolling window")
    points: int = Field(10, ge=0, le=200, description="newest values to list")


class RollingResult(ToolOutput):
    """The rolling series' summary and newest values."""

    symbol: str
    stat: RollingStat
    window: int
    values: int
    last: float | None
    mean: float | None
    min: float | None
    min_at: str | None
    max: float | None
    max_at: str | None
    newest: dict[str, float | None]
    definitions: list[str]


def rolling_series(close: pd.Series, stat: RollingStat, window: int, timeframe: str) -> pd.Series:
    """The rolling statistic at each bar (NaN during warm-up dropped)."""
    r = close.pct_change()
    if stat == "volatility":
        out = r.rolling(window).std(ddof=1) * periods_per_year(timeframe) ** 0.5
    elif stat == "return":
        out = close / close.shift(window) - 1
    else:
        out = r.rolling(window).mean()
    return pd.Series(out.dropna())


def rolling_tool(ctx: ToolContext, a: RollingInput) -> RollingResult:
    """A rolling volatility, return or mean return: last, mean, min, max and the newest values."""
    s = rolling_series(frame(ctx, a)["close"], a.stat, a.window, a.timeframe)
    if s.empty:
        raise DataError(
            f"the window holds fewer than {a.window + 1} bars: shorten `window` or widen the dates"
        )
    newest = s.tail(a.points)
    return RollingResult(
        symbol=a.symbol,
        stat=a.stat,
        window=a.window,
        values=len(s),
        last=num(s.iloc[-1]),
        mean=num(s.mean()),
        min=num(s.min()),
        min_at=stamp(s.idxmin()),
        max=num(s.max()),
        max_at=stamp(s.idxmax()),
        newest={stamp(t): num(v) for t, v in newest.items()},
        definitions=[
            RETURN_DEF,
            f"rolling over {a.window} bars: volatility = annualised std of returns; "
            "return = close[t]/close[t-window] - 1; mean_return = mean of returns",
        ],
    )
