"""Regime labels with stated definitions: each bar of a window is `trend_up`, `trend_down`, `range` or
`high_vol`.

Definitions (repeated in every result's `definitions`), per bar after `window` bars of warm-up:
- `high_vol` when the rolling `window`-bar sample standard deviation of returns (`close[t]/close[t-1] - 1`)
  exceeds its `vol_quantile` quantile over the window asked for (descriptive: that threshold reads the
  whole window, so it is not a point-in-time signal);
- otherwise `trend_up` / `trend_down` when the `window`-bar return `close[t]/close[t-window] - 1` is above
  `+trend_threshold` / below `-trend_threshold`;
- otherwise `range`.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import Field

from agent.analytics.context import ToolContext
from agent.analytics.market_data import frame
from agent.analytics.models import ToolOutput, Window, stamp
from agent.errors import DataError

Regime = Literal["trend_up", "trend_down", "range", "high_vol"]


class RegimesInput(Window):
    """Regime labels of one symbol's bars."""

    window: int = Field(24, ge=2, le=10_000)
    trend_threshold: float = Field(0.05, gt=0, lt=1)
    vol_quantile: float = Field(0.8, gt=0, lt=1)
    segments: int = Field(10, ge=0, le=100, description="newest regime segments to list")


class Segment(ToolOutput):
    """A run of consecutive bars with one label."""

    label: Regime
    start: str
    end: str
    bars: int


class RegimesResult(ToolOutput):
    """How the window's bars split between regimes."""

    symbol: str
    bars: int
    """Labelled bars (after warm-up)."""
    fractions: dict[str, float]
    counts: dict[str, int]
    current: Regime
    segments: list[Segment]
    definitions: list[str]


def regime_labels(close: pd.Series, window: int, threshold: float, quantile: float) -> pd.Series:
    """The label of each bar after warm-up (see the module's definitions)."""
    r = close.pct_change()
    vol = r.rolling(window).std(ddof=1)
    ret = close / close.shift(window) - 1
    valid = vol.notna() & ret.notna()
    cut = vol[valid].quantile(quantile)
    labels = pd.Series("range", index=close.index, dtype=object)
    labels[ret > threshold] = "trend_up"
    labels[ret < -threshold] = "trend_down"
    labels[vol > cut] = "high_vol"
    return labels[valid]


def regimes_tool(ctx: ToolContext, a: RegimesInput) -> RegimesResult:
    """Each bar labelled trend_up / trend_down / range / high_vol: fractions and the newest segments."""
    labels = regime_labels(frame(ctx, a)["close"], a.window, a.trend_threshold, a.vol_quantile)
    if labels.empty:
        raise DataError(
            f"the window holds fewer than {a.window + 1} bars: shorten `window` or widen the dates"
        )
    counts = {str(k): int(v) for k, v in labels.value_counts().items()}
    runs = (labels != labels.shift()).cumsum()
    segs = [
        Segment(label=part.iloc[0], start=stamp(part.index[0]), end=stamp(part.index[-1]), bars=len(part))
        for _, part in labels.groupby(runs)
    ]
    return RegimesResult(
        symbol=a.symbol,
        bars=len(labels),
        fractions={k: v / len(labels) for k, v in counts.items()},
        counts=counts,
        current=labels.iloc[-1],
        segments=segs[-a.segments :] if a.segments else [],
        definitions=[
            f"high_vol: rolling {a.window}-bar std of returns above its {a.vol_quantile:g} quantile over the "
            "window asked for (descriptive, reads the whole window)",
            f"trend_up / trend_down: otherwise, {a.window}-bar return above +{a.trend_threshold:g} / below "
            f"-{a.trend_threshold:g}",
            "range: everything else; the first bars (warm-up) are not labelled",
        ],
    )
