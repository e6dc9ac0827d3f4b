"""The scheduled paper-trading daemon: one tick per closed candle, live or on a replayed clock.

    service   Daemon: plan → lease → feed + agent runner → scheduler → watch → shutdown
    tick_job  one wake-up: refresh data → due bars → ticks → heartbeat (the same code live and in replay)
    feed      candles through the market-data service, served point in time to the graph
    clock     system, simulated and manual clocks; which bars are closed
    scheduler APScheduler 3 with its job store in the ledger database; cron and replay triggers
    lease     one daemon per database (compare-and-swap lease row with heartbeat)
    journal   the daemon_ticks audit rows (done, skipped with reason, error)
    plan      stable run id, replay and live windows, history start
    signals   SIGTERM/SIGINT → a stop request the main thread waits on
    logging   text or JSON logs, rotating file, secret redaction
    status    what `tradegraph status` reads and renders
    alerts    the fills, breaker trips, kill switch, health and daily summary to notify (agent.notify)

The names below are imported on first use, so `tradegraph status` does not pay for the graph's imports.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Clock": "agent.daemon.clock",
    "ManualClock": "agent.daemon.clock",
    "SimulatedClock": "agent.daemon.clock",
    "SystemClock": "agent.daemon.clock",
    "Holder": "agent.daemon.lease",
    "Lease": "agent.daemon.lease",
    "LeaseHeld": "agent.daemon.lease",
    "LeaseLost": "agent.daemon.lease",
    "Daemon": "agent.daemon.service",
    "DaemonOptions": "agent.daemon.service",
    "DaemonResult": "agent.daemon.service",
    "StopSignal": "agent.daemon.signals",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agent.daemon' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
