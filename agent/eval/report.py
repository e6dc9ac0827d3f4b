"""A campaign's report: the terminal tables, `report.html` (tables and interactive charts), `table.csv` and
`campaign.json`.

Contracts:
- `COLUMNS` is the one list of a window table's columns (label, how a row gives the value, display kind);
  the terminal, HTML and CSV forms all read it.
- Text from the campaign file (names, titles, sources) is data: escaped for HTML (`agent.textsafe.for_html`),
  inert in the terminal (`for_terminal`) and neutralised for spreadsheets in the CSV (`csv_cell`).
- Charts: per window and symbol group, every strategy's equity against buy & hold, drawdown, one figure
  (`agent.backtest.charts.overview_figure`), plotly's JavaScript inline once: the file opens offline.
- `campaign.json` holds every row's figures (NaN as null), the groups' tests and the cutoff rows, for
  notebooks and later tooling.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Group as RichGroup
from rich.table import Table

from agent.backtest import charts
from agent.backtest.formatting import fmt
from agent.eval.campaign import Campaign, llm_conventions_note
from agent.eval.runner import CellResult
from agent.eval.table import CutoffRow, Group, Row
from agent.runs.lifecycle import json_safe
from agent.textsafe import csv_cell, for_html, for_terminal


@dataclass(frozen=True)
class Column:
    """A column of a window table."""

    label: str
    value: Callable[[Row], Any]
    kind: str


def _ci(lo: float, hi: float, kind: str) -> str:
    return "-" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{fmt(lo, kind)}, {fmt(hi, kind)}]"


COLUMNS: tuple[Column, ...] = (
    Column("return", lambda r: r.metrics.total_return, "pct"),
    Column("return CI", lambda r: _ci(*r.return_ci, "pct"), "text"),
    Column("Sharpe", lambda r: r.metrics.sharpe, "ratio"),
    Column("Sharpe CI", lambda r: _ci(*r.sharpe_ci, "ratio"), "text"),
    Column("Sortino", lambda r: r.metrics.sortino, "ratio"),
    Column("max DD", lambda r: r.metrics.max_drawdown, "pct"),
    Column("turnover", lambda r: r.metrics.turnover, "ratio"),
    Column("fees", lambda r: r.metrics.fees_paid, "money"),
    Column("exposure", lambda r: r.metrics.exposure, "pct"),
    Column("win rate", lambda r: r.metrics.win_rate, "pct"),
    Column("abstentions", lambda r: r.metrics.abstentions, "int"),
    Column("Brier", lambda r: r.brier, "ratio"),
    Column("p vs B&H", lambda r: r.p_vs_hold, "ratio"),
    Column("p vs best rule", lambda r: r.p_vs_best_rule, "ratio"),
    Column("deflated Sharpe", lambda r: r.deflated_sharpe, "ratio"),
)
"""The window table's columns (module contract)."""
TERMINAL = (
    "return",
    "return CI",
    "Sharpe",
    "max DD",
    "fees",
    "exposure",
    "abstentions",
    "Brier",
    "p vs B&H",
    "p vs best rule",
    "deflated Sharpe",
)
"""The columns the terminal shows (the report and the CSV have them all)."""


def cell_text(column: Column, row: Row) -> str:
    """A cell as text."""
    value = column.value(row)
    return str(value) if column.kind == "text" else fmt(value, column.kind)


def terminal(campaign: Campaign, groups: Sequence[Group], cutoffs: Sequence[CutoffRow]) -> RichGroup:
    """The window tables and the cutoff table for the terminal."""
    parts: list[Any] = []
    for g in groups:
        title = f"{g.window} ({g.regime or 'window'}) · {g.group} · {g.bars} bars"
        table = Table(title=for_terminal(title), title_justify="left")
        shown = [c for c in COLUMNS if c.label in TERMINAL]
        table.add_column("strategy", overflow="fold")
        for c in shown:
            table.add_column(c.label, justify="right", overflow="fold")
        for row in g.rows:
            table.add_row(for_terminal(row.name), *(cell_text(c, row) for c in shown))
        parts.append(table)
        parts.append(for_terminal(_group_note(g, campaign)))
    if cutoffs:
        parts.append(_cutoff_terminal(cutoffs))
    return RichGroup(*parts)


def _group_note(g: Group, campaign: Campaign) -> str:
    best = g.best_rule or "-"
    tried = sum(r.kind in ("rule", "llm") for r in g.rows)
    return (
        f"best rule baseline: {best}; p(best of {tried} strategies beats "
        f"buy & hold, corrected) = {fmt(g.family_p, 'ratio')}; bootstrap blocks of {g.block} bars, "
        f"{campaign.preset.statistics.samples} samples; trials counted: {campaign.trials}"
    )


def _cutoff_terminal(rows: Sequence[CutoffRow]) -> Table:
    table = Table(
        title="Before and after the training cutoff (excess return over buy & hold)", title_justify="left"
    )
    for h in CUTOFF_HEADERS:
        table.add_column(h, justify="right", overflow="fold")
    for r in rows:
        table.add_row(*(for_terminal(x) for x in cutoff_cells(r)))
    return table


CUTOFF_HEADERS = (
    "variant",
    "cutoff",
    "windows before",
    "before",
    "windows after",
    "after",
    "change",
    "best rule before",
    "best rule after",
    "best rule change",
)


def cutoff_cells(r: CutoffRow) -> list[str]:
    """A cutoff row as text."""
    return [
        r.variant,
        r.cutoff or "not declared",
        str(r.windows_before),
        fmt(r.excess_before, "pct"),
        str(r.windows_after),
        fmt(r.excess_after, "pct"),
        fmt(r.change, "pct"),
        fmt(r.rule_excess_before, "pct"),
        fmt(r.rule_excess_after, "pct"),
        fmt(r.rule_change, "pct"),
    ]


def write(
    folder: Path,
    campaign: Campaign,
    results: Sequence[CellResult],
    groups: Sequence[Group],
    cutoffs: Sequence[CutoffRow],
) -> Path:
    """Write report.html, table.csv and campaign.json into `folder`; the HTML report's path."""
    folder.mkdir(parents=True, exist_ok=True)
    _write_csv(folder / "table.csv", groups)
    (folder / "campaign.json").write_text(
        json.dumps(json_safe(_as_json(campaign, results, groups, cutoffs)), indent=1, sort_keys=True),
        encoding="utf-8",
    )
    path = folder / "report.html"
    path.write_text(_html(campaign, results, groups, cutoffs), encoding="utf-8")
    return path


def _write_csv(path: Path, groups: Sequence[Group]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["window", "symbols", "strategy", "kind", "run_id", *(c.label for c in COLUMNS)])
        for g in groups:
            for row in g.rows:
                out.writerow(
                    [
                        csv_cell(g.window),
                        csv_cell(g.group),
                        csv_cell(row.name),
                        row.kind,
                        row.run_id or "",
                        *(csv_cell(cell_text(c, row)) for c in COLUMNS),
                    ]
                )


def _as_json(
    campaign: Campaign, results: Sequence[CellResult], groups: Sequence[Group], cutoffs: Sequence[CutoffRow]
) -> dict[str, Any]:
    return {
        "campaign": campaign.id,
        "name": campaign.preset.campaign.name,
        "file": str(campaign.path),
        "trials": campaign.trials,
        "statistics": campaign.preset.statistics.model_dump(),
        "cells": [{"key": r.cell.key, "run_id": r.run_id, "resumed": r.resumed} for r in results],
        "groups": [
            {
                "window": g.window,
                "regime": g.regime,
                "symbols": g.group,
                "bars": g.bars,
                "best_rule": g.best_rule,
                "family_p": g.family_p,
                "block_bars": g.block,
                "rows": [
                    {
                        "strategy": r.name,
                        "kind": r.kind,
                        "run_id": r.run_id,
                        "metrics": r.metrics.numbers(),
                        "warnings": list(r.metrics.warnings),
                        "return_ci": list(r.return_ci),
                        "sharpe_ci": list(r.sharpe_ci),
                        "p_vs_hold": r.p_vs_hold,
                        "p_vs_best_rule": r.p_vs_best_rule,
                        "deflated_sharpe": r.deflated_sharpe,
                        "brier": r.brier,
                        "hit_rate": r.hit_rate,
                    }
                    for r in g.rows
                ],
            }
            for g in groups
        ],
        "cutoff": [
            dict(zip(CUTOFF_HEADERS, cutoff_cells(c), strict=True))
            | {"change": c.change, "rule_change": c.rule_change}
            for c in cutoffs
        ],
    }


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1500px}
table{border-collapse:collapse;margin:0.5em 0 0.3em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;font-size:13px}
th:first-child,td:first-child{text-align:left}
tr.base td{color:#555;background:#f6f6f6}
p.note{color:#444;font-size:13px}
"""


def _html(
    campaign: Campaign, results: Sequence[CellResult], groups: Sequence[Group], cutoffs: Sequence[CutoffRow]
) -> str:
    info = campaign.preset.campaign
    opts = campaign.preset.statistics
    head = [
        ("campaign", f"{info.name} ({campaign.id})"),
        ("title", info.title),
        ("source", info.source),
        ("file", str(campaign.path)),
        ("timeframe", info.timeframe),
        ("training cutoff", info.training_cutoff or "not declared"),
        ("cells", f"{len(results)} ({sum(r.resumed for r in results)} read back from an earlier run)"),
        (
            "statistics",
            f"stationary block bootstrap, {opts.samples} samples, {opts.confidence:.0%} intervals, seed "
            f"{opts.seed}; {campaign.trials} strategies tried (deflated Sharpe)",
        ),
    ]
    note = llm_conventions_note(campaign)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; script-src 'unsafe-inline' "
        "'unsafe-eval'; style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{for_html(info.title or info.name)}</title><style>{_STYLE}</style>",
        charts.script(),
        "</head><body>",
        f"<h1>Campaign {for_html(info.name)}</h1>",
        "<table>"
        + "".join(f"<tr><th>{for_html(k)}</th><td>{for_html(v)}</td></tr>" for k, v in head)
        + "</table>",
    ]
    if note:
        parts.append(f"<p class='note'>{for_html(note)}</p>")
    parts.append(_HOW_TO_READ)
    for gi, g in enumerate(groups):
        parts.append(f"<h2>{for_html(g.window)} · {for_html(g.group)}</h2>")
        parts.append(f"<p class='note'>{for_html(g.regime)} · {g.bars} bars</p>")
        parts.append(_html_table(g))
        parts.append(f"<p class='note'>{for_html(_group_note(g, campaign))}</p>")
        warnings = sorted({w for r in g.rows for w in r.metrics.warnings})
        for w in warnings:
            parts.append(f"<p class='note'>⚠ {for_html(w)}</p>")
        overview = _overview(g, results)
        if overview is not None:
            parts.append(
                charts.div(charts.overview_figure(overview, f"{g.window} · {g.group}"), f"chart-{gi}")
            )
    if cutoffs:
        parts.append("<h2>Before and after the training cutoff</h2>")
        parts.append(
            "<p class='note'>Mean excess total return over buy &amp; hold in the windows on each side of the "
            "model's declared cutoff; the best rule baseline of the same windows is the control.</p>"
        )
        head_row = "".join(f"<th>{for_html(h)}</th>" for h in CUTOFF_HEADERS)
        body = "".join(
            "<tr>" + "".join(f"<td>{for_html(x)}</td>" for x in cutoff_cells(c)) + "</tr>" for c in cutoffs
        )
        parts.append(f"<table><tr>{head_row}</tr>{body}</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


_HOW_TO_READ = (
    "<p class='note'>Each window's table: the strategies' figures (the run's stored metric set, as "
    "<code>tradegraph runs compare</code> shows it) beside buy &amp; hold and cash. CI: bootstrap "
    "intervals of the total return and the Sharpe ratio. p vs B&amp;H and p vs best rule: one-sided "
    "bootstrap p-values that the strategy's mean return per bar beats the benchmark's (small is "
    "evidence). Deflated Sharpe: the probability that the Sharpe ratio is real after trying as many "
    "strategies as counted. Brier: an LLM's "
    "confidence against whether the next bar moved its way (lower is better; 0.25 is a coin).</p>"
)


def _html_table(g: Group) -> str:
    head = "<tr><th>strategy</th>" + "".join(f"<th>{html.escape(c.label)}</th>" for c in COLUMNS) + "</tr>"
    rows = []
    for r in g.rows:
        cls = " class='base'" if r.kind in ("buy_and_hold", "cash") else ""
        cells = "".join(f"<td>{for_html(cell_text(c, r))}</td>" for c in COLUMNS)
        rows.append(f"<tr{cls}><td>{for_html(r.name)}</td>{cells}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _overview(g: Group, results: Sequence[CellResult]) -> charts.Overview | None:
    cells = [r for r in results if (r.cell.window.name, r.cell.group) == (g.window, g.group)]
    if not cells:
        return None
    lines = [charts.Line(r.cell.strategy, r.equity) for r in cells]
    lines.append(charts.Line("buy & hold", cells[0].hold))
    return charts.Overview(tuple(lines), cells[0].initial)
