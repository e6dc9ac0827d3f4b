"""Rich tables for the backtest commands: summary, sweep results, look-ahead (the run tables are
`agent.runs.tables`).

Contracts: pure builders (data in, `rich.table.Table` out); printing is the caller's job. Free text (run
ids, strategy names, parameters, error messages, report paths) goes in as `agent.textsafe.for_terminal`
cells, never read as Rich markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from agent.backtest.formatting import COLUMNS, METRICS, fmt, kind_of, label
from agent.db.models import Run
from agent.textsafe import for_terminal


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


def compare_runs_table(runs: Sequence[Run]) -> Table:
    """Runs side by side (`tradegraph runs show`): now `agent.runs.tables.show_table`, where the run tables
    live."""
    from agent.runs.tables import show_table

    return show_table(runs)


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
