"""The closed sets of the run lifecycle: what produced a run (`RunKind`) and where it is (`RunStatus`).

A leaf module (no database, no third-party import) so the CLI can offer the kinds as choices without
loading the lifecycle; `agent.runs.lifecycle` documents them and re-exports both.
"""

from __future__ import annotations

from enum import StrEnum


class RunKind(StrEnum):
    """What produced a run (the `runs.kind` column)."""

    BACKTEST = "backtest"
    SWEEP = "sweep"
    AGENT_BACKTEST = "agent_backtest"
    DEMO = "demo"
    PAPER = "paper"
    DAEMON = "daemon"
    NOTEBOOK = "notebook"

    @property
    def prefix(self) -> str:
        """The first part of this kind's fresh ids."""
        return _PREFIXES[self]


_PREFIXES = {
    RunKind.BACKTEST: "bt",
    RunKind.SWEEP: "sw",
    RunKind.AGENT_BACKTEST: "agent",
    RunKind.DEMO: "demo",
    RunKind.PAPER: "paper",
    RunKind.DAEMON: "daemon",
    RunKind.NOTEBOOK: "ask",
}


class RunStatus(StrEnum):
    """Where a run is in its lifecycle (the `runs.status` column)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
