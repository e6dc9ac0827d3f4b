"""The notebook API: tradegraph's stages as a few functions that return pandas objects and matplotlib figures.

Role: the Jupyter front door, re-exported from `agent` (`import agent as tg; tg.load_candles(...)`). Every
function is a thin wrapper over the code the CLI, the backtest and the daemon run (principle 1): backtests
and sweeps go through `agent.backtest.service` / `agent.backtest.sweep_job`, the agent through
`agent.graph.factory.open_agent` and `agent.graph.backtest.run_agent_backtest`, ledger reads through
`agent.evaluation.frames`.

    market      list_data, load_candles
    backtests   run_backtest, sweep, check_lookahead (rule strategies)
    analytics   ask (the analytics agent over read-only tools)
    model       build_context, ask_model (one bar, one symbol); local_model (the embedded server, kept up)
    runs        run_agent, read_decisions, read_equity, calibration
    common      settings, symbols, times, the database

Contracts shared by all functions:
- `settings` is a `Settings`, a dict of overrides for `load_settings`, e.g. `{"llm": {"max_tokens": 160}}`,
  or None: tradegraph.toml, then `TRADEGRAPH_*` variables, then defaults.
- Backtests, sweeps, decisions and agent runs are recorded in the configured database like their CLI twins
  (principle 4). Reports go to `reports_dir` (relative paths are relative to the working directory);
  `run_agent` without one writes where the CLI does, `<data_dir>/reports/`.
- `at`, `start`, `end` are UTC dates or timestamps (naive = UTC).
- Bad input raises a `TradegraphError` subclass with a one-line message, before anything is recorded.
- Figures stay inline: the report code draws on `matplotlib.figure.Figure` objects and never switches the
  session's backend (no `matplotlib.use`, no pyplot).
"""

from agent.notebook.analytics import ask
from agent.notebook.backtests import BacktestRun, check_lookahead, run_backtest, sweep
from agent.notebook.market import list_data, load_candles
from agent.notebook.model import ContextView, LocalModel, ModelAnswer, ask_model, build_context, local_model
from agent.notebook.runs import AgentRun, calibration, read_decisions, read_equity, run_agent

__all__ = [
    "AgentRun",
    "BacktestRun",
    "ContextView",
    "LocalModel",
    "ModelAnswer",
    "ask",
    "ask_model",
    "build_context",
    "calibration",
    "check_lookahead",
    "list_data",
    "load_candles",
    "local_model",
    "read_decisions",
    "read_equity",
    "run_agent",
    "run_backtest",
    "sweep",
]
