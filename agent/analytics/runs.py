"""Recorded runs as tools: the newest runs (a sweep folded into its best trial) and runs compared on their
stored metric sets.

Contracts: read-only, through the query layer (`agent.runs.catalog`, `agent.runs.metrics.RunMetrics`); an
unknown run id is a `ConfigError` naming it; figures that are undefined are None.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import Field

from agent.analytics.context import ToolContext
from agent.analytics.models import ToolInput, ToolOutput, num, stamp


class RunsInput(ToolInput):
    """Recorded runs, newest first."""

    kind: str | None = Field(None, description="backtest, sweep, agent_backtest, demo, paper, daemon")
    limit: int = Field(20, ge=1, le=200)


class RunRow(ToolOutput):
    """One run and its headline figures."""

    id: str
    kind: str
    strategy: str
    symbols: list[str]
    timeframe: str
    status: str
    start: str | None
    end: str | None
    total_return: float | None
    sharpe: float | None
    max_drawdown: float | None
    trades: int | None
    sweep_trials: int | None = None


class RunsResult(ToolOutput):
    """The runs found."""

    runs: list[RunRow]


def _ms(ms: int | None) -> str | None:
    return None if ms is None else stamp(pd.Timestamp(ms, unit="ms", tz="UTC"))


def _row(run: Any, trials: int | None = None) -> RunRow:
    from agent.runs.metrics import RunMetrics

    m = RunMetrics.from_json(run.metrics)
    s = m.strategy if m else None
    return RunRow(
        id=run.id,
        kind=run.kind,
        strategy=run.strategy,
        symbols=[str(x) for x in run.symbols],
        timeframe=run.timeframe,
        status=run.status,
        start=_ms(run.start_ts),
        end=_ms(run.end_ts),
        total_return=num(s.total_return) if s else None,
        sharpe=num(s.sharpe) if s else None,
        max_drawdown=num(s.max_drawdown) if s else None,
        trades=s.trades if s else None,
        sweep_trials=trials,
    )


def runs_tool(ctx: ToolContext, a: RunsInput) -> RunsResult:
    """The newest runs (a sweep folded into its best trial), optionally of one kind."""
    from agent.runs.catalog import SweepGroup, list_entries

    rows = []
    for entry in list_entries(ctx.factory, a.kind, a.limit):
        rows.append(_row(entry.best, entry.trials) if isinstance(entry, SweepGroup) else _row(entry))
    return RunsResult(runs=rows)


class CompareInput(ToolInput):
    """Runs to compare."""

    ids: list[str] = Field(min_length=1, max_length=10)


class RunFigures(ToolOutput):
    """One run's stored metric set, and buy & hold's over its window."""

    id: str
    kind: str
    strategy: str
    metrics: dict[str, float | None]
    buy_and_hold: dict[str, float | None]
    warnings: list[str]


class CompareResult(ToolOutput):
    """The same figures for every run, in the order asked."""

    runs: list[RunFigures]


def compare_tool(ctx: ToolContext, a: CompareInput) -> CompareResult:
    """Every stored figure of the runs, side by side (the set `tradegraph runs compare` shows)."""
    from agent.runs.catalog import get_runs
    from agent.runs.metrics import RunMetrics

    out = []
    for run in get_runs(ctx.factory, a.ids):
        m = RunMetrics.from_json(run.metrics)
        figures = {k: num(v) for k, v in m.strategy.numbers().items()} if m else {}
        hold = m.buy_and_hold if m else None
        out.append(
            RunFigures(
                id=run.id,
                kind=run.kind,
                strategy=run.strategy,
                metrics=figures,
                buy_and_hold={k: num(v) for k, v in hold.numbers().items()} if hold else {},
                warnings=list(m.warnings) if m else ["no metrics stored (run not finished?)"],
            )
        )
    return CompareResult(runs=out)
