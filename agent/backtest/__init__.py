"""Backtesting: the compiled engine, metrics, reports, sweeps and the look-ahead check.

Modules (one job each):
    engine      the numba per-bar loop and `simulate` (per-bar semantics shared with the paper broker)
    book        the loop's state, order execution through `costs`, fill and trade records
    plan        strategy output -> sized, capped targets, exit distances, aligned bars
    runner      `run_backtest`: frames + strategy -> simulation + metrics; `compare` with buy-and-hold/cash
    metrics     performance metrics from an equity curve and its trades
    market      trading rules, fill and sizing settings from the configuration
    data        loading a backtest window with warm-up history
    reference   an independent numpy backtest of the simplest case, for cross-checks
    service     the `tradegraph backtest` job (validate, simulate, report, record)
    preset      campaign files (windows x symbols x strategies, costs, conventions) run through `service`
    sweep       grid parsing, parallel trials, ranking; sweep_job: the `tradegraph sweep` job
    lookahead   truncation test for point-in-time strategies
    report, charts, tables, formatting   HTML/PNG/CSV reports and Rich tables

Runs are recorded through `agent.runs.lifecycle`. The package imports its submodules lazily, so
`import agent.backtest.metrics` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BacktestResult",
    "EngineConfig",
    "SimResult",
    "SizingRules",
    "compare",
    "compute_metrics",
    "run_backtest",
    "simulate",
]

_HOME = {
    "BacktestResult": "agent.backtest.runner",
    "compare": "agent.backtest.runner",
    "run_backtest": "agent.backtest.runner",
    "simulate": "agent.backtest.engine",
    "compute_metrics": "agent.backtest.metrics",
    "EngineConfig": "agent.backtest.models",
    "SimResult": "agent.backtest.models",
    "SizingRules": "agent.backtest.models",
}


def __getattr__(name: str) -> Any:
    """Import the public names on first use."""
    if name not in _HOME:
        raise AttributeError(f"module 'agent.backtest' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
