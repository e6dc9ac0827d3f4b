"""Charts as a tool: a backtest's equity against buy & hold, a recorded run's equity, or a symbol's closes,
saved as PNG (and interactive HTML) under `<data_dir>/reports/ask/` and referenced by path in the answer.

Contracts:
- Every figure comes from the one chart module, `agent.backtest.charts` (plotly offline HTML with
  plotly.js inline; the matplotlib PNG fallback); nothing here draws.
- `backtest` simulates like the `backtest` tool (not recorded); `run` reads the run's equity from the
  ledger (`agent.evaluation.frames`); `price` draws closes only (HTML; no PNG: the PNG fallback draws equity
  and drawdown panels, not prices).
- File names are derived from the arguments (same call, same file), so repeated calls overwrite.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import pandas as pd
import plotly.graph_objects as go
from pydantic import Field

from agent.analytics.backtests import BacktestInput, prepared_for
from agent.analytics.context import ToolContext
from agent.analytics.ledger import require
from agent.analytics.market_data import frame
from agent.analytics.models import Timeframe, ToolOutput, Window
from agent.backtest import charts

ChartKind = Literal["backtest", "run", "price"]


class ChartInput(BacktestInput):
    """What to draw: `backtest` (strategy, symbols, window, costs), `run` (run_id) or `price` (symbols[0])."""

    kind: ChartKind = "backtest"
    strategy: str = Field("buy_and_hold", description="backtest: the strategy")
    run_id: str | None = Field(None, description="run: the recorded run")
    timeframe: Timeframe = "1h"


class ChartResult(ToolOutput):
    """Where the chart files are."""

    kind: ChartKind
    png: str | None
    html: str
    title: str


def chart_tool(ctx: ToolContext, a: ChartInput) -> ChartResult:
    """Save a chart (PNG and interactive HTML) of a backtest, a recorded run or a symbol's closes."""
    digest = hashlib.sha256(a.model_dump_json().encode()).hexdigest()[:10]
    folder = ctx.charts_dir
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / f"{a.kind}-{digest}"
    if a.kind == "price":
        w = Window(symbol=a.symbols[0], timeframe=a.timeframe, start=a.start, end=a.end)
        close = frame(ctx, w)["close"]
        title = f"{w.symbol} {w.timeframe} close"
        marks = charts.PriceMarks(w.symbol, close, ())
        png = base.with_suffix(".png")
        png.write_bytes(charts.price_png(marks))
        figure = charts.trades_figure(marks, title)
        return ChartResult(kind=a.kind, png=str(png), html=_html(base, title, [figure]), title=title)
    if a.kind == "run":
        overview, title = _run_overview(ctx, a)
        figures = [charts.overview_figure(overview, title)]
    else:
        from agent.backtest.service import simulate_prepared

        prepared = prepared_for(ctx, a)
        result, hold, _ = simulate_prepared(prepared)
        title = f"{prepared.strategy.describe()} on {', '.join(prepared.symbols)} {prepared.timeframe}"
        overview = charts.sim_overview(result.sim, hold.sim, result.strategy)
        figures = [charts.overview_figure(overview, title)]
        figures += [
            charts.trades_figure(charts.sim_marks(result.sim, j, result.close[:, j]), s)
            for j, s in enumerate(result.sim.symbols)
        ]
    png = base.with_suffix(".png")
    png.write_bytes(charts.overview_png(overview))
    return ChartResult(kind=a.kind, png=str(png), html=_html(base, title, figures), title=title)


def _run_overview(ctx: ToolContext, a: ChartInput) -> tuple[charts.Overview, str]:
    from agent.evaluation.frames import equity_frame
    from agent.runs.catalog import get_runs

    require(a.run_id is not None, "kind 'run' needs run_id (see list_runs)")
    run = get_runs(ctx.factory, [str(a.run_id)])[0]
    eq = equity_frame(ctx.factory, run.id)["equity"]
    require(len(eq) > 0, f"run {run.id} recorded no equity")
    line = charts.Line(run.id, pd.Series(eq.to_numpy(dtype=float), index=eq.index))
    return charts.Overview((line,), float(eq.iloc[0])), f"{run.kind} {run.id}: {run.strategy}"


def _html(base: Path, title: str, figures: list[go.Figure]) -> str:
    from agent.textsafe import for_html

    body = "".join(charts.div(f, f"chart-{i}") for i, f in enumerate(figures))
    path = base.with_suffix(".html")
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{for_html(title)}</title>"
        f"{charts.script()}</head><body>{body}</body></html>",
        encoding="utf-8",
    )
    return str(path)
