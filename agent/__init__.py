"""tradegraph: a LangGraph agent that paper-trades crypto with a self-hosted LLM.

Data flows one way: market → context → LLM → decision → risk → broker → ledger.

The names below are the notebook API (`agent.notebook`) and the configuration entry points. They are
imported on first use (module `__getattr__`), so `import agent` stays fast and loads neither pandas nor
the engine; `python -m agent.cli.main --help` and the CLI commands import only what they need.

Example:
    >>> import agent as tg
    >>> tg.load_candles("BTC/USDT", "1d").tail()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AgentRun",
    "BacktestRun",
    "ContextView",
    "LocalModel",
    "ModelAnswer",
    "Settings",
    "TradegraphError",
    "__version__",
    "ask",
    "ask_model",
    "build_context",
    "calibration",
    "check_lookahead",
    "list_data",
    "load_candles",
    "load_settings",
    "local_model",
    "read_decisions",
    "read_equity",
    "run_agent",
    "run_backtest",
    "sweep",
]

_HOMES = {"Settings": "agent.config", "load_settings": "agent.config", "TradegraphError": "agent.errors"}
"""Where the public names that are not part of the notebook API (`agent.notebook`) live."""

if TYPE_CHECKING:
    from agent.config import Settings, load_settings
    from agent.errors import TradegraphError
    from agent.notebook import (
        AgentRun,
        BacktestRun,
        ContextView,
        LocalModel,
        ModelAnswer,
        ask,
        ask_model,
        build_context,
        calibration,
        check_lookahead,
        list_data,
        load_candles,
        local_model,
        read_decisions,
        read_equity,
        run_agent,
        run_backtest,
        sweep,
    )


def __getattr__(name: str) -> Any:
    """Import a public name from its home module on first use, and keep it."""
    if name not in __all__:
        raise AttributeError(f"module 'agent' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES.get(name, "agent.notebook")), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Module attributes plus the lazily imported public names."""
    return sorted(set(globals()) | set(__all__))
