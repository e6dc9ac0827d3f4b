"""A backtest's files under `reports/<run id>/`: `report.html`, `equity.png`, `trades.csv`, `fills.csv`.

Contracts:
- The HTML is self-contained: inline CSS, interactive charts (`agent.backtest.charts`: plotly.js inline
  once, the figures as JSON), no CDN or network resource; it opens offline in any browser. Without
  JavaScript it shows `equity.png` (equity and drawdown, the same figures drawn by matplotlib) instead.
- It shows the run's settings, the metrics of the strategy next to buy-and-hold and cash (same window,
  same costs), one chart of equity against buy-and-hold and cash, drawdown and exposure over time (zoom
  and hover), each symbol's trades on its price chart (the first `MAX_SYMBOL_CHARTS` symbols), and the
  trades table (the first `MAX_TRADE_ROWS`; all of them are in trades.csv).
- Files are written into a temporary folder that is renamed into place at the end, so a failure never
  leaves a half-written report.
- Text is data (`agent.textsafe`): every text in the HTML goes through `for_html`; in the CSVs a text cell
  that a spreadsheet would run as a formula gets a leading `'` (numbers are left alone).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agent.backtest import charts
from agent.backtest.formatting import COLUMNS, METRICS, fmt
from agent.backtest.runner import BacktestResult
from agent.textsafe import csv_frame, for_html

MAX_TRADE_ROWS = 500
MAX_SYMBOL_CHARTS = 8

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1150px; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.7rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
.js-plotly-plot { margin-bottom: 1rem; }
.note { color: #8a5a00; }
"""


def write_report(
    out_dir: Path,
    result: BacktestResult,
    hold: BacktestResult | None,
    comparison: Mapping[str, Mapping[str, Any]],
    meta: Mapping[str, Any],
    notes: list[str] | None = None,
) -> Path:
    """Write the report files into `out_dir` (created); returns the HTML file's path."""
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        overview = charts.sim_overview(result.sim, hold.sim if hold else None, result.strategy)
        (tmp / "equity.png").write_bytes(charts.overview_png(overview))
        csv_frame(result.sim.trades_frame()).to_csv(tmp / "trades.csv", index=False)
        csv_frame(result.sim.fills_frame()).to_csv(tmp / "fills.csv", index=False)
        body = _body(result, comparison, meta, notes or [], overview)
        (tmp / "report.html").write_text(body, encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir / "report.html"


def _body(
    result: BacktestResult,
    comparison: Mapping[str, Mapping[str, Any]],
    meta: Mapping[str, Any],
    notes: list[str],
    overview: charts.Overview,
) -> str:
    e = for_html
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(str(meta.get('title', 'backtest')))}"
        f"</title><style>{_CSS}</style>{charts.script()}</head><body>"
    ]
    parts.append(f"<h1>{e(str(meta.get('title', 'backtest')))}</h1>")
    parts.extend(f"<p class='note'>{e(n)}</p>" for n in notes)
    parts.append(_kv_table({k: v for k, v in meta.items() if k != "title"}))
    parts.append("<h2>Metrics</h2>" + _metrics_table(comparison))
    parts.append(
        "<h2>Equity, drawdown and exposure</h2>"
        + charts.div(charts.overview_figure(overview), "chart-overview")
        + charts.noscript("equity.png")
    )
    for j, symbol in enumerate(result.symbols[:MAX_SYMBOL_CHARTS]):
        fig = charts.trades_figure(charts.sim_marks(result.sim, j, result.close[:, j]))
        parts.append(f"<h2>Trades: {e(symbol)}</h2>" + charts.div(fig, f"chart-trades-{j}"))
    parts.append("<h2>Trades</h2>" + _trades_table(result))
    parts.append("</body></html>")
    return "\n".join(parts)


def _kv_table(items: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><td>{for_html(k)}</td><td>{for_html(v)}</td></tr>" for k, v in items.items())
    return f"<table>{rows}</table>"


def _metrics_table(comparison: Mapping[str, Mapping[str, Any]]) -> str:
    names = [c for c in COLUMNS if c in comparison]
    head = "<tr><th>metric</th>" + "".join(f"<th>{for_html(COLUMNS[c])}</th>" for c in names) + "</tr>"
    rows = [
        f"<tr><td>{for_html(label)}</td>"
        + "".join(f"<td>{fmt(comparison[c].get(key), kind)}</td>" for c in names)
        + "</tr>"
        for key, label, kind in METRICS
    ]
    return f"<table>{head}{''.join(rows)}</table>"


def _trades_table(result: BacktestResult) -> str:
    trades = result.sim.trades_frame()
    if trades.empty:
        return "<p>No trades.</p>"
    shown = trades.head(MAX_TRADE_ROWS).copy()
    for col in ("entry_price", "exit_price", "pnl", "fees"):
        shown[col] = shown[col].map(lambda v: "-" if not np.isfinite(v) else f"{v:,.4f}")
    shown["amount"] = shown["amount"].map(lambda v: f"{v:.8g}")
    shown["return"] = shown["return"].map(lambda v: f"{100 * v:.2f}%")
    extra = (
        f"<p>First {MAX_TRADE_ROWS} of {len(trades)} trades; all are in trades.csv.</p>"
        if len(trades) > MAX_TRADE_ROWS
        else ""
    )
    return shown.to_html(index=False, na_rep="open", border=0, escape=True) + extra
