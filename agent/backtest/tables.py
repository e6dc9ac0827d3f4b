"""Rich tables for the backtest commands: summary, run list and comparison, sweep results, look-ahead.

Contracts: pure builders (data in, `rich.table.Table` out); printing is the caller's job. Free text (run
ids, strategy names, parameters, error messages, report paths) goes in as `agent.textsafe.for_terminal`
cells, never read as Rich markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.table import Table

from agent.backtest.formatting import COLUMNS, METRICS, fmt, kind_of, label
from agent.db.models import Run
from agent.textsafe import for_terminal

RUN_LIST_METRICS = ("total_return", "sharpe", "max_drawdown", "trades")
RUN_LIST_HEADERS = {
    "total_return": "return",
    "sharpe": "Sharpe",
    "max_drawdown": "max DD",
    "trades": "trades",
}


def summary_table(comparison: Mapping[str, Mapping[str, Any]], title: str) -> Table:
    """Metrics of the strategy beside buy-and-hold and cash."""
    table = Table(title=title)
    table.add_column("metric")
    names = [c for c in COLUMNS if c in comparison]
    for c in names:
        table.add_column(COLUMNS[c], justify="right")
    for key, lab, kind in METRICS:
        table.add_row(lab, *(fmt(comparison[c].get(key), kind) for c in names))
    return table


def _ts(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def runs_table(runs: Sequence[Run]) -> Table:
    """One row per run: id, kind, strategy, symbols, window, status and headline metrics."""
    table = Table(title=f"{len(runs)} most recent runs")
    table.add_column("id", no_wrap=True)
    for col in ("kind", "strategy", "symbols", "tf", "window", "status"):
        table.add_column(col)
    for key in RUN_LIST_METRICS:
        table.add_column(RUN_LIST_HEADERS[key], justify="right", no_wrap=True)
    for r in runs:
        table.add_row(
            for_terminal(r.id),
            for_terminal(r.kind),
            for_terminal(r.strategy),
            for_terminal(",".join(r.symbols or [])),
            r.timeframe,
            f"{_ts(r.start_ts)}..{_ts(r.end_ts)}",
            for_terminal(r.status),
            *(fmt((r.metrics or {}).get(k), kind_of(k)) for k in RUN_LIST_METRICS),
        )
    return table


def compare_runs_table(runs: Sequence[Run]) -> Table:
    """Runs side by side: settings, then every metric, one column per run."""
    table = Table(title="run comparison")
    table.add_column("")
    for r in runs:
        table.add_column(for_terminal(r.id), justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("kind", [r.kind for r in runs]),
        ("strategy", [r.strategy for r in runs]),
        (
            "params",
            [", ".join(f"{k}={v}" for k, v in (r.params or {}).items() if v is not None) for r in runs],
        ),
        ("symbols", [",".join(r.symbols or []) for r in runs]),
        ("timeframe", [r.timeframe for r in runs]),
        ("window", [f"{_ts(r.start_ts)} - {_ts(r.end_ts)}" for r in runs]),
        ("status", [r.status + (f": {r.error}" if r.error else "") for r in runs]),
    ]
    for name, values in rows:
        table.add_row(name, *(for_terminal(v) for v in values))
    for key, lab, kind in METRICS:
        table.add_row(lab, *(fmt((r.metrics or {}).get(key), kind) for r in runs))
    hold = [(r.metrics or {}).get("buy_and_hold") or {} for r in runs]
    table.add_row("buy & hold return", *(fmt(h.get("total_return"), "pct") for h in hold))
    table.add_row("report", *(for_terminal(r.report_path or "-") for r in runs))
    return table


def sweep_table(results: Sequence[Mapping[str, Any]], metric: str, top: int) -> Table:
    """The best `top` trials by `metric` (already sorted), with their parameters and headline metrics."""
    table = Table(title=f"best {min(top, len(results))} of {len(results)} trials by {label(metric)}")
    table.add_column("#", justify="right")
    table.add_column("params")
    shown = [metric] + [k for k in ("total_return", "sharpe", "max_drawdown", "trades") if k != metric]
    for key in shown:
        table.add_column(label(key), justify="right")
    for i, row in enumerate(results[:top], 1):
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        table.add_row(str(i), for_terminal(params), *(fmt(row["metrics"].get(k), kind_of(k)) for k in shown))
    return table


def lookahead_table(findings: Sequence[Mapping[str, Any]]) -> Table:
    """Signals that changed when later bars were removed."""
    table = Table(title=f"{len(findings)} look-ahead findings")
    for col in ("symbol", "truncated at", "bar", "full data", "truncated data"):
        table.add_column(col)
    for f in findings:
        table.add_row(f["symbol"], str(f["cut"]), str(f["bar"]), f"{f['full']:.6g}", f"{f['truncated']:.6g}")
    return table
