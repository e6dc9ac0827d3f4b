"""Rich tables of recorded runs: the run list, and runs side by side (`tradegraph runs list|show|compare`).

Contracts:
- Pure builders (rows in, `rich.table.Table` out); printing is the caller's job. Figures are read through
  `agent.runs.metrics.RunMetrics.from_json`, so every run kind shows the same metric set, and rows written
  before that layout are read too.
- Free text (run ids, strategy names, parameters, errors, warnings, report paths) goes in as
  `agent.textsafe.for_terminal` cells, never read as Rich markup.
- Display: a figure that is undefined or left out (a window too short to annualise) prints as "-",
  infinity as "inf"; percentages with two decimals.
- `compare_table` shows, for each run, what it is (kind, strategy, parameters, symbols, window, status),
  every field of the metric set, buy & hold's and cash's return over the same bars, the return in excess
  of buy & hold, and the warnings. `show_table` adds each run kind's own figures (LLM usage, engine
  counters) and the report path.
- `runs_table` is one row per run; a sweep is one row (`SweepGroup`): its id, its trial count and the
  figures of its best trial. It fits 120 columns without cutting a cell: light borders, the kind (and a
  status other than `done`) under the id, the timeframe beside the strategy, one symbol a line, the
  window's first and last day on two lines; words longer than their column fold (never `strate…`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from agent.db.models import Run
from agent.runs.catalog import SweepGroup
from agent.runs.metrics import LABELS, METRIC_KEYS, Display, MetricSet, RunMetrics
from agent.textsafe import for_terminal

LIST_FIGURES = ("total_return", "sharpe", "max_drawdown", "trades")
"""The headline figures of `runs_table`."""
_HEADERS = {"total_return": "return", "sharpe": "Sharpe", "max_drawdown": "max DD", "trades": "trades"}


def cell(value: Any, kind: Display) -> str:
    """A figure for display (see the module contract)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "days":
        return f"{value:.1f} d"
    return f"{int(value):d}"


def _day(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def _figure(metrics: RunMetrics | None, key: str) -> str:
    return "-" if metrics is None else cell(getattr(metrics.strategy, key), LABELS[key][1])


def runs_table(entries: Sequence[Run | SweepGroup]) -> Table:
    """One row per run or sweep: id, kind, strategy, symbols, window, status, headline figures."""
    table = Table(
        title=f"{len(entries)} most recent runs", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False
    )
    table.add_column("id / kind", no_wrap=True)
    table.add_column("strategy", overflow="fold")
    table.add_column("symbols", overflow="fold", max_width=9)  # one a line, e.g. `BTC/USDT,`
    table.add_column("window", overflow="fold")
    for key in LIST_FIGURES:
        table.add_column(_HEADERS[key], justify="right", no_wrap=True)
    table.add_column("buy & hold", justify="right", overflow="fold")
    for entry in entries:
        run = entry.best if isinstance(entry, SweepGroup) else entry
        ident, kind = run.id, run.kind
        if isinstance(entry, SweepGroup):
            ident, kind = entry.sweep_id, f"sweep: {entry.trials} trials, best shown"
        if run.status != "done":
            kind = f"{kind} ({run.status})"
        metrics = RunMetrics.from_json(run.metrics)
        hold = metrics.buy_and_hold if metrics is not None else None
        table.add_row(
            Text.assemble(for_terminal(ident), "\n", for_terminal(kind, "dim")),
            for_terminal(f"{run.strategy} {run.timeframe}"),
            for_terminal(", ".join(run.symbols or [])),
            f"{_day(run.start_ts)}\n{_day(run.end_ts)}",
            *(_figure(metrics, key) for key in LIST_FIGURES),
            cell(hold.total_return if hold is not None else None, "pct"),
        )
    if any(isinstance(e, SweepGroup) for e in entries):
        table.caption = "a sweep is one row, with its best trial's figures: tradegraph runs list --sweep ID"
    return table


def compare_table(runs: Sequence[Run], title: str = "run comparison") -> Table:
    """Runs side by side: what each is, then the same metric set for every one (module contract)."""
    table = Table(title=title)
    table.add_column("")
    for r in runs:  # long ids and windows fold rather than end in "…" when many runs share the width
        table.add_column(for_terminal(r.id), justify="right", overflow="fold")
    metrics = [RunMetrics.from_json(r.metrics) for r in runs]
    for name, values in _identity(runs):
        table.add_row(name, *(for_terminal(v) for v in values))
    for key in METRIC_KEYS:
        label, kind = LABELS[key]
        table.add_row(label, *(_figure(m, key) for m in metrics))
    hold = [m.buy_and_hold if m is not None else None for m in metrics]
    cash = [m.cash if m is not None else None for m in metrics]
    table.add_row("buy & hold return", *(_return(h) for h in hold))
    table.add_row("cash return", *(_return(c) for c in cash))
    table.add_row("excess over buy & hold", *(_excess(m, h) for m, h in zip(metrics, hold, strict=True)))
    table.add_row(
        "warnings", *(for_terminal("; ".join(m.warnings) if m and m.warnings else "-") for m in metrics)
    )
    return table


def show_table(runs: Sequence[Run]) -> Table:
    """`compare_table` plus each run kind's own figures and the report path."""
    table = compare_table(runs, title="runs")
    metrics = [RunMetrics.from_json(r.metrics) for r in runs]
    extras = list(dict.fromkeys(k for m in metrics if m is not None for k in m.extra))
    for key in extras:
        table.add_row(key.replace("_", " "), *(_extra(m, key) for m in metrics))
    table.add_row("report", *(for_terminal(r.report_path or "-") for r in runs))
    return table


def _identity(runs: Sequence[Run]) -> list[tuple[str, list[str]]]:
    return [
        ("kind", [r.kind for r in runs]),
        ("strategy", [r.strategy for r in runs]),
        (
            "params",
            [", ".join(f"{k}={v}" for k, v in (r.params or {}).items() if v is not None) for r in runs],
        ),
        ("symbols", [", ".join(r.symbols or []) for r in runs]),
        ("timeframe", [r.timeframe for r in runs]),
        ("window", [f"{_day(r.start_ts)} → {_day(r.end_ts)}" for r in runs]),
        ("status", [r.status + (f": {r.error}" if r.error else "") for r in runs]),
    ]


def _return(ms: MetricSet | None) -> str:
    return cell(ms.total_return if ms is not None else None, "pct")


def _excess(metrics: RunMetrics | None, hold: MetricSet | None) -> str:
    if metrics is None or hold is None:
        return "-"
    return cell(metrics.strategy.total_return - hold.total_return, "pct")


def _extra(metrics: RunMetrics | None, key: str) -> str:
    value = metrics.extra.get(key) if metrics is not None else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.4g}" if isinstance(value, float) and not value.is_integer() else f"{int(value):,d}"
