"""Matplotlib figures of a backtest: equity, drawdown, trades on the price chart.

Contracts:
- Pure plotting: arrays in, a `Figure` out; `png_bytes` renders one. Figures are built with
  `matplotlib.figure.Figure` (no pyplot, no global state, no GUI backend); no network, no fonts beyond
  matplotlib's bundled ones, so reports are self-contained and render offline.
- Long series are drawn as they are (matplotlib decimates lines itself); markers are one per fill.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from agent.backtest.models import TRIGGERED, FloatArray, SimResult

if TYPE_CHECKING:
    from matplotlib.typing import LegendLocType

_SIZE = (11, 4)


def equity_figure(strategy: SimResult, hold: SimResult | None, label: str) -> Figure:
    """Strategy equity against buy-and-hold and cash."""
    fig = Figure(figsize=_SIZE)
    ax = fig.subplots()
    ax.plot(strategy.index, strategy.equity, label=label, color="tab:blue", linewidth=1.2)
    if hold is not None:
        ax.plot(hold.index, hold.equity, label="buy & hold", color="tab:gray", linewidth=1.0)
    ax.axhline(strategy.initial_cash, color="black", linewidth=0.8, linestyle=":", label="cash")
    _finish(ax, "equity", "upper left")
    fig.tight_layout()
    return fig


def drawdown_figure(strategy: SimResult, hold: SimResult | None) -> Figure:
    """Drawdown from the running peak (percent) of the strategy and of buy-and-hold."""
    fig = Figure(figsize=(_SIZE[0], 3))
    ax = fig.subplots()
    for sim, name, color in ((strategy, "strategy", "tab:red"), (hold, "buy & hold", "tab:gray")):
        if sim is None:
            continue
        peak = np.maximum(np.maximum.accumulate(sim.equity), sim.initial_cash)
        ax.plot(sim.index, 100.0 * (sim.equity / peak - 1.0), label=name, color=color, linewidth=1.0)
    _finish(ax, "drawdown %", "lower left")
    fig.tight_layout()
    return fig


def trades_figure(sim: SimResult, symbol: int, close: FloatArray) -> Figure:
    """One symbol's closes with its buys (green ^) and sells (red v; stops and take-profits marked)."""
    fig = Figure(figsize=_SIZE)
    ax = fig.subplots()
    ax.plot(sim.index, close, color="black", linewidth=0.8, label=sim.symbols[symbol])
    mine = sim.fill_symbol == symbol
    times = pd.DatetimeIndex(sim.index[sim.fill_bar[mine]])
    price, side, reason = sim.fill_price[mine], sim.fill_side[mine], sim.fill_reason[mine]
    buys, sells, exits = side > 0, (side < 0) & (reason < TRIGGERED), (side < 0) & (reason >= TRIGGERED)
    ax.scatter(times[buys], price[buys], marker="^", color="tab:green", s=28, label="buy", zorder=3)
    ax.scatter(times[sells], price[sells], marker="v", color="tab:red", s=28, label="sell", zorder=3)
    ax.scatter(
        times[exits], price[exits], marker="x", color="tab:purple", s=28, label="stop / take-profit", zorder=3
    )
    _finish(ax, "price", "upper left")
    fig.tight_layout()
    return fig


def _finish(ax: Axes, ylabel: str, legend: LegendLocType) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel(ylabel)
    ax.legend(loc=legend)
    ax.grid(alpha=0.3)


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
