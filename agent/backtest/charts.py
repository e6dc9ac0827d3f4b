"""The figures of a run, for every page that shows one: interactive (plotly) with a PNG fallback.

Role: the one chart module. Reports (the rule backtest's, the agent run's, campaigns), pages and notebooks
describe what to draw with the records below and embed what this module returns; nothing else builds a
chart. It sits in the `backtest` layer so that every report above it can use it; it reads only plain
series (and, for `sim_overview` / `sim_marks`, the engine's `SimResult`).

Contracts:
- Records in, figures out: `Overview` (equity lines against buy-and-hold and the initial cash, drawdown
  and exposure computed or taken from it) gives `overview_figure`, one figure whose panels (equity,
  drawdown, and exposure when given) share a time axis (zoom one, all follow; hover shows every line at
  that bar); `PriceMarks` (a symbol's closes and its fills: buy, sell, stop / take-profit exit) gives
  `trades_figure`.
- Offline: `script()` is plotly.js from the installed package, inline in one `<script>` element, to put
  once on a page before the first `div(fig)`; no CDN, no network resource. `div` gives a fixed element id
  and the figure as JSON, which plotly encodes with `<`, `>` and `/` escaped, so no text in a figure can
  close the script element it sits in.
- Text is data: every text drawn (line names, symbols, hover notes such as a model's rationale) goes
  through `agent.textsafe.for_html` here (notes cut to `NOTE_SHOWN` characters first, and broken into
  lines joined by `<br>`, the only markup), so plotly shows it literally and never reads it as its own
  markup. Callers pass raw text.
- Long series are thinned for drawing only: past `MAX_POINTS` points a line keeps the minimum and the
  maximum of every bucket of bars (extremes and drawdown troughs survive), and the figure's title says so.
  Fills are never thinned. Times are drawn in UTC.
- PNG fallback for readers without JavaScript: `overview_png` draws the equity and drawdown panels, and
  `price_png` a symbol's closes with its fills, with matplotlib's object API (no pyplot, no GUI backend);
  `noscript(name)` points to such a file.
"""

from __future__ import annotations

import io
import math
import textwrap
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure
from plotly.io import to_html
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from agent.backtest.models import REASONS, FloatArray, SimResult
from agent.execution import bar
from agent.textsafe import for_html

MAX_POINTS = 10_000
"""Points drawn per line at most; longer lines are thinned to the min and max of each bucket of bars."""
NOTE_SHOWN = 300
"""Characters of a hover note (e.g. a rationale) shown."""

EXIT_REASONS = REASONS[bar.STOPPED : bar.TRAILED + 1]
"""Order reasons of an exit triggered inside a bar: stop-loss, take-profit, trailing stop."""
TradeKind = Literal["buy", "sell", "exit"]
"""A fill on the price chart: a buy, a sell, or a sell triggered inside a bar (stop / take-profit)."""

_MARKERS: dict[TradeKind, tuple[str, str, str]] = {
    "buy": ("buy", "triangle-up", "#2ca02c"),
    "sell": ("sell", "triangle-down", "#d62728"),
    "exit": ("stop / take-profit", "x", "#9467bd"),
}
_COLORS = ("#1f77b4", "#7f7f7f", "#ff7f0e", "#17becf", "#bcbd22", "#e377c2", "#8c564b", "#9467bd")
_CONFIG = {"displaylogo": False, "responsive": True, "scrollZoom": True}


@dataclass(frozen=True)
class Line:
    """One named series over bar open times (UTC)."""

    name: str
    values: pd.Series


@dataclass(frozen=True)
class Overview:
    """The curves of a run: equity lines (strategies first, then benchmarks such as buy & hold), the
    initial cash (drawn flat, and the floor of every drawdown's running peak), and exposure lines
    (gross position value / equity, a fraction)."""

    equity: tuple[Line, ...]
    initial_cash: float
    exposure: tuple[Line, ...] = ()


@dataclass(frozen=True)
class Fill:
    """One fill on a price chart; `note` is raw text shown on hover."""

    time: pd.Timestamp
    price: float
    kind: TradeKind
    note: str = ""


@dataclass(frozen=True)
class PriceMarks:
    """A symbol's closes and its fills."""

    symbol: str
    close: pd.Series
    fills: tuple[Fill, ...]


# ------------------------------------------------------------------------------------------- adapters


def sim_overview(sim: SimResult, hold: SimResult | None, label: str) -> Overview:
    """A simulation's overview: its equity (named `label`), buy & hold's, and its exposure."""
    equity = [Line(label, pd.Series(sim.equity, index=sim.index))]
    if hold is not None:
        equity.append(Line("buy & hold", pd.Series(hold.equity, index=hold.index)))
    exposure = (Line(label, pd.Series(sim.exposure, index=sim.index)),)
    return Overview(tuple(equity), sim.initial_cash, exposure)


def sim_marks(sim: SimResult, symbol: int, close: FloatArray) -> PriceMarks:
    """One symbol's closes and fills of a simulation (hover: amount, price and the order's reason)."""
    mine = np.flatnonzero(sim.fill_symbol == symbol)
    fills = tuple(
        Fill(
            sim.index[sim.fill_bar[i]],
            float(sim.fill_price[i]),
            fill_kind(bool(sim.fill_side[i] > 0), REASONS[sim.fill_reason[i]]),
            f"{REASONS[sim.fill_reason[i]]}: {sim.fill_amount[i]:.8g} at {sim.fill_price[i]:.8g}",
        )
        for i in mine
    )
    return PriceMarks(sim.symbols[symbol], pd.Series(close, index=sim.index), fills)


def fill_kind(buy: bool, reason: str) -> TradeKind:
    """How a fill is marked: a buy, a sell triggered inside a bar (`EXIT_REASONS`), or another sell."""
    if buy:
        return "buy"
    return "exit" if reason in EXIT_REASONS else "sell"


# -------------------------------------------------------------------------------------------- figures


def overview_figure(ov: Overview, title: str = "") -> go.Figure:
    """Equity (with the initial cash), drawdown from the running peak (%) and exposure (%), on one time
    axis."""
    rows = 3 if ov.exposure else 2
    heights = [0.55, 0.25, 0.2] if ov.exposure else [0.7, 0.3]
    names = ["equity", "drawdown %", "exposure %"][:rows]
    fig = make_subplots(
        rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=heights, figure=_figure()
    )
    thinned = 1
    for i, line in enumerate(ov.equity):
        color = _COLORS[i % len(_COLORS)]
        thinned = max(thinned, _add(fig, line.name, line.values, color, 1, group=line.name))
        dd = pd.Series(drawdown_pct(line.values, ov.initial_cash), index=line.values.index)
        _add(fig, line.name, dd, color, 2, group=line.name, legend=False)
    if ov.equity:
        index = ov.equity[0].values.index
        flat = pd.Series(np.full(2, ov.initial_cash), index=index[[0, -1]]) if len(index) else None
        if flat is not None:
            _add(fig, "cash", flat, "black", 1, group="cash", dash="dot")
    for i, line in enumerate(ov.exposure):
        color = _COLORS[i % len(_COLORS)]
        _add(fig, line.name, 100.0 * line.values, color, 3, group=line.name, legend=False, fill="tozeroy")
    for row, name in enumerate(names, start=1):
        fig.update_yaxes(title_text=name, row=row, col=1)
    fig.update_xaxes(title_text="UTC", row=rows, col=1)
    _layout(fig, title, thinned, height=620 if ov.exposure else 520)
    fig.update_layout(hovermode="x unified")
    return fig


def trades_figure(marks: PriceMarks, title: str = "") -> go.Figure:
    """A symbol's closes with its fills as markers (hover: the fill's note)."""
    fig = _figure()
    thinned = _add(fig, marks.symbol, marks.close, "black", None, width=1.0)
    for kind, (name, symbol, color) in _MARKERS.items():
        mine = [f for f in marks.fills if f.kind == kind]
        if not mine:
            continue
        fig.add_trace(
            go.Scatter(
                x=_x(pd.DatetimeIndex([f.time for f in mine])),
                y=np.array([f.price for f in mine], dtype=float),
                mode="markers",
                name=name,
                marker={"symbol": symbol, "color": color, "size": 9},
                hovertext=[hover_text(f.note) for f in mine],
                hoverinfo="x+y+text+name",
            )
        )
    fig.update_yaxes(title_text="price")
    fig.update_xaxes(title_text="UTC")
    _layout(fig, title, thinned, height=380)
    return fig


def _add(
    fig: go.Figure,
    name: str,
    values: pd.Series,
    color: str,
    row: int | None,
    *,
    group: str = "",
    legend: bool = True,
    dash: str = "solid",
    width: float = 1.4,
    fill: str = "none",
) -> int:
    """Add one line (thinned past `MAX_POINTS`); returns the thinning factor (1: every bar drawn)."""
    keep, factor = thin(values.to_numpy(dtype=float))
    trace = go.Scatter(
        x=_x(pd.DatetimeIndex(values.index[keep])),
        y=values.to_numpy(dtype=float)[keep],
        mode="lines",
        name=for_html(name),
        legendgroup=for_html(group),
        showlegend=legend,
        line={"color": color, "dash": dash, "width": width},
        fill=fill,
    )
    fig.add_trace(trace, row=row, col=1 if row is not None else None)
    return factor


_GRID = "#EBF0F8"
_STYLE: dict[str, Any] = {
    "layout": {
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "hovermode": "closest",
        "xaxis": {"gridcolor": _GRID, "linecolor": _GRID, "zerolinecolor": _GRID, "automargin": True},
        "yaxis": {"gridcolor": _GRID, "linecolor": _GRID, "zerolinecolor": _GRID, "automargin": True},
    }
}
"""plotly_white's look in a few keys: a figure made with this small template skips building plotly's full
default template, which cost more than the rest of a figure (tens of ms per figure, a page's budget)."""


def _figure() -> go.Figure:
    """An empty figure with the white look (`_STYLE`)."""
    return go.Figure(layout={"template": _STYLE})


def _layout(fig: go.Figure, title: str, thinned: int, height: int) -> None:
    note = f" (long series: min and max of every {thinned} bars drawn)" if thinned > 1 else ""
    fig.update_layout(
        title={"text": for_html(title + note) if title or note else None},
        height=height,
        margin={"l": 60, "r": 20, "t": 50 if title or note else 20, "b": 40},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
    )


def hover_text(note: str) -> str:
    """`note` broken at spaces into lines of about 80 characters, cut to `NOTE_SHOWN` characters and
    escaped (`for_html`), the lines joined by `<br>`: the only markup in it."""
    lines = "\n".join(textwrap.wrap(note, 80, break_long_words=False))
    return for_html(lines, NOTE_SHOWN).replace("\n", "<br>")


def drawdown_pct(equity: pd.Series, initial_cash: float) -> FloatArray:
    """Percent below the running peak of `equity`, the peak never below `initial_cash` (NaN skipped)."""
    values = equity.to_numpy(dtype=float)
    peak = np.maximum(np.fmax.accumulate(values), initial_cash)
    return np.asarray(100.0 * (values / peak - 1.0), dtype=float)


def thin(values: FloatArray, max_points: int = MAX_POINTS) -> tuple[np.ndarray[Any, np.dtype[np.intp]], int]:
    """Indices of `values` to draw: all of them up to `max_points`, else the first, the minimum and the
    maximum of every bucket of `factor` consecutive points (in order); and `factor` (1 when not thinned)."""
    n = len(values)
    if n <= max_points:
        return np.arange(n), 1
    factor = math.ceil(3 * n / max_points)
    buckets = math.ceil(n / factor)
    padded = np.full(buckets * factor, np.nan)
    padded[:n] = values
    grid = padded.reshape(buckets, factor)
    starts = np.arange(buckets) * factor
    low = np.argmin(np.where(np.isnan(grid), np.inf, grid), axis=1)
    high = np.argmax(np.where(np.isnan(grid), -np.inf, grid), axis=1)
    keep = np.unique(np.concatenate([starts, starts + low, starts + high, [n - 1]]))
    return keep[keep < n], factor


def _x(index: pd.DatetimeIndex) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    """Times as naive UTC datetime64 (plotly serialises these fast; tz-aware stamps are slow)."""
    return (index.tz_convert(None) if index.tz is not None else index).to_numpy()


# ------------------------------------------------------------------------------------------ embedding


def script() -> str:
    """plotly.js from the installed package in one inline `<script>` element (put it once per page)."""
    return f"<script type='text/javascript'>{get_plotlyjs()}</script>"


def div(fig: go.Figure, element_id: str) -> str:
    """The figure as a `<div id=element_id>` and the inline call that draws it (needs `script()` first)."""
    html = to_html(fig, full_html=False, include_plotlyjs=False, div_id=element_id, config=_CONFIG)
    return str(html)


def noscript(png_name: str) -> str:
    """A `<noscript>` note showing the PNG fallback file `png_name` (next to the page) to readers
    without JavaScript."""
    name = for_html(png_name)
    return (
        f"<noscript><p>The charts need JavaScript; {name} (next to this file) has the equity chart."
        f"</p><img alt='equity' src='{name}'></noscript>"
    )


# --------------------------------------------------------------------------------------- PNG fallback


def overview_png(ov: Overview, dpi: int = 90) -> bytes:
    """The overview's equity and drawdown panels as PNG (matplotlib; the fallback without JavaScript)."""
    return png_bytes(overview_mpl(ov), dpi)


def overview_mpl(ov: Overview) -> Figure:
    """The overview's equity (with the initial cash) and drawdown panels as a matplotlib figure."""
    fig = Figure(figsize=(11, 5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for i, line in enumerate(ov.equity):
        color = _COLORS[i % len(_COLORS)]
        ax1.plot(line.values.index, line.values.to_numpy(dtype=float), label=line.name, color=color, lw=1.1)
        ax2.plot(line.values.index, drawdown_pct(line.values, ov.initial_cash), color=color, linewidth=0.9)
    ax1.axhline(ov.initial_cash, color="black", linewidth=0.8, linestyle=":", label="cash")
    ax1.legend(loc="upper left")
    ax1.set_ylabel("equity")
    ax2.set_ylabel("drawdown %")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def price_png(marks: PriceMarks, dpi: int = 90) -> bytes:
    """A symbol's closes with its fills (buys up, sells down, exits as crosses) as PNG (matplotlib)."""
    fig = Figure(figsize=(11, 4))
    ax = fig.subplots()
    ax.plot(marks.close.index, marks.close.to_numpy(dtype=float), color="black", linewidth=1.0)
    for kind, (name, _, color) in _MARKERS.items():
        shown = [f for f in marks.fills if f.kind == kind]
        if shown:
            symbol = {"buy": "^", "sell": "v", "exit": "x"}[kind]
            times = pd.DatetimeIndex([f.time for f in shown]).to_numpy()
            ax.scatter(times, [f.price for f in shown], marker=symbol, color=color, label=name)
    if marks.fills:
        ax.legend(loc="upper left")
    ax.set_ylabel(marks.symbol)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return png_bytes(fig, dpi)


def equity_figure(sim: SimResult, hold: SimResult | None, label: str) -> Figure:
    """A simulation's equity against buy-and-hold and cash, with its drawdown (matplotlib)."""
    return overview_mpl(sim_overview(sim, hold, label))


def png_bytes(fig: Figure, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
