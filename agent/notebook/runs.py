"""Agent runs for notebooks: a short agent backtest, and reading any run back from the ledger.

Contracts:
- `run_agent` is `agent.graph.backtest.run_agent_backtest` (what `tradegraph demo` and agent backtests run):
  the graph over `bars` bars of `symbols` on a simulated clock, recorded as a run of kind
  `agent_backtest`, with its report under `reports_dir/<run id>/` (default `<data_dir>/reports/`). Answers
  are served from the response cache when the same request was answered before (a rerun makes no model
  call).
- History (`history_bars=None`) is what the command-line twin reads for the same window. A rule strategy
  (a name, `file.py:Class`, or a `Strategy` class or instance, with its parameters as keywords) sees the
  bars from `HISTORY_BARS` before the first bar on (more when it declares a longer warm-up): the history of
  `tradegraph backtest` (`agent.backtest.service`) and of `tradegraph run --replay` (`--history-bars`), so
  the three fill alike bar for bar. `llm` and `hybrid` see every stored bar, as `tradegraph backtest
  --strategy llm` and `tradegraph demo` do. A number keeps that many bars before the first bar.
- `read_decisions` / `read_equity` are `agent.evaluation.frames.decisions_frame` / `equity_frame` of a run
  (default: the most recent run in the database).
- `calibration` is the run report's table (`agent.evaluation.agent_report.calibration`): active decisions
  (buy, sell, close; not abstained) bucketed by confidence against the next bar's return in the decision's
  direction; `per_decision=True` gives the rows behind it. Realised returns are read from the full data
  after the run; the model never saw them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from agent.errors import ConfigError
from agent.notebook.common import (
    SettingsLike,
    When,
    cut_history,
    database,
    parse_symbols,
    resolve_settings,
    run_or_latest,
    strategy_spec,
    text,
    to_ms,
    to_ts,
)

if TYPE_CHECKING:
    from strategies.base import Strategy

    StrategyLike = str | Strategy | type[Strategy]

MODEL_STRATEGIES = ("llm", "hybrid")
"""The strategies that ask the model; any other is a rule strategy."""

PER_DECISION = ["date", "symbol", "action", "confidence", "next_return", "directional_return"]


@dataclass(frozen=True)
class AgentRun:
    """A recorded agent backtest."""

    run_id: str
    metrics: pd.DataFrame
    """One row per metric; columns agent, buy_and_hold, cash (LLM usage and behaviour in `agent` only)."""
    report_path: Path
    ticks: pd.DataFrame
    """One row per bar: status (done, skipped, ...), reason, orders, fills, equity."""


def run_agent(
    symbols: str | Sequence[str],
    bars: int,
    strategy: StrategyLike = "llm",
    *,
    start: When = None,
    end: When = None,
    history_bars: int | None = None,
    settings: SettingsLike = None,
    reports_dir: Path | str | None = None,
    **params: Any,
) -> AgentRun:
    """A short agent backtest: `bars` bars from `start`, or the last `bars` bars before `end` (default: the
    end of the data).

    Args:
        symbols: The symbols the agent trades (they share the cash).
        bars: How many bars to tick.
        strategy: `llm`, `hybrid`, or a rule strategy (run through the same graph): a built-in name,
            `path/to/file.py:Class`, or a `Strategy` class or instance defined at module level.
        start: First bar (inclusive); give `start` or `end`, not both.
        end: End of the window (exclusive).
        history_bars: Bars of history kept before the first bar, as the daemon's `--history-bars`; None =
            what the command-line twin reads (see the module contract): the backtest's history for a rule
            strategy, every stored bar for `llm` and `hybrid`. Fewer bars build prompts faster.
        settings: Configuration (see the package docstring).
        reports_dir: Folder for the run report; None = `<data_dir>/reports/`, where the CLI writes them.
        **params: A rule strategy's parameters (exit plan included: `stop_atr`, `trailing_atr`, ...).

    Example:
        >>> run = tg.run_agent("BTC/USDT", bars=3, end="2025-09-18 15:00")  # doctest: +SKIP
        >>> run.metrics.loc[["total_return", "llm_calls", "cache_hits"], "agent"]  # doctest: +SKIP
    """
    from agent.errors import DataError
    from agent.graph.backtest import run_agent_backtest
    from agent.graph.factory import load_source
    from agent.market.candles import timeframe_ms

    if bars < 1:
        raise ConfigError(f"bars={bars}: must be >= 1")
    if start is not None and end is not None:
        raise ConfigError("give start or end, not both: bars count forward from start or back from end")
    spec, values, needed = _strategy(strategy, params)
    s = resolve_settings(settings, symbols=parse_symbols(symbols))
    if start is not None:
        end = to_ts(to_ms(start) + bars * timeframe_ms(s.timeframe))
    full = load_source(s)
    times = full.bar_times(None if start is None else to_ms(start), None if end is None else to_ms(end))
    if not times:
        raise DataError(f"no {s.timeframe} bars for {', '.join(s.symbols)} in [{start}, {end})")
    source = cut_history(full, s, needed if history_bars is None else history_bars, times[-bars:][0])
    out = run_agent_backtest(
        s,
        strategy=spec,
        start=text(start),
        end=text(end),
        last_bars=bars,
        reports_dir=None if reports_dir is None else Path(reports_dir),
        show_progress=False,
        source=source,
        params=values or None,
        history=history_bars,
    )
    m = out.metrics
    metrics = pd.DataFrame(
        {"agent": m.get("strategy", {}), "buy_and_hold": m.get("buy_and_hold", {}), "cash": m.get("cash", {})}
    )
    ticks = pd.DataFrame(
        [
            {
                "bar": to_ts(o.bar_ts),
                "status": o.status,
                "reason": o.reason,
                "orders": o.orders,
                "fills": o.fills,
                "equity": o.equity,
            }
            for o in out.outcomes
        ]
    )
    return AgentRun(out.run_id, metrics, out.report, ticks)


def _strategy(strategy: StrategyLike, params: Mapping[str, Any]) -> tuple[str, dict[str, Any], int | None]:
    """(registry spec, parameter values, default history bars) of a run's strategy; a rule strategy is built
    here, so an unknown one or a bad parameter fails before anything is recorded."""
    if isinstance(strategy, str) and strategy in MODEL_STRATEGIES:
        if params:
            raise ConfigError(f"parameters {sorted(params)} apply to a rule strategy, not to {strategy!r}")
        return strategy, {}, None
    from agent.market.history import history_bars
    from strategies.registry import build_strategy

    spec, values = strategy_spec(strategy, params)
    return spec, values, history_bars(False, build_strategy(spec, values).warmup_bars())


def read_decisions(run_id: str | None = None, *, settings: SettingsLike = None) -> pd.DataFrame:
    """Every decision of a run with its proposal, the risk layer's verdict and clamps, and the LLM fields.

    Example:
        >>> tg.read_decisions(run.run_id)[["date", "symbol", "action", "final_exposure", "rationale"]]
        ... # doctest: +SKIP
    """
    from agent.evaluation.frames import decisions_frame

    with database(resolve_settings(settings)) as factory:
        return decisions_frame(factory, run_or_latest(factory, run_id))


def read_equity(run_id: str | None = None, *, settings: SettingsLike = None) -> pd.DataFrame:
    """Cash, equity and cumulative fees after each bar an agent run processed (index: bar open time).

    Example:
        >>> tg.read_equity(run.run_id)["equity"].plot()  # doctest: +SKIP
    """
    from agent.evaluation.frames import equity_frame

    with database(resolve_settings(settings)) as factory:
        return equity_frame(factory, run_or_latest(factory, run_id))


def calibration(
    run_id: str | None = None, buckets: int = 5, *, per_decision: bool = False, settings: SettingsLike = None
) -> pd.DataFrame:
    """Confidence against the next bar's return in each decision's direction.

    Example:
        >>> tg.calibration(run.run_id)  # decisions, mean_directional_return, hit_rate  # doctest: +SKIP
        >>> tg.calibration(run.run_id, per_decision=True).plot.scatter("confidence", "directional_return")
        ... # doctest: +SKIP
    """
    from agent.db.models import Run
    from agent.evaluation.agent_report import calibration as bucketed
    from agent.evaluation.frames import decisions_frame
    from agent.graph.factory import load_source

    if buckets < 1:
        raise ConfigError(f"buckets={buckets}: must be >= 1")
    s = resolve_settings(settings)
    with database(s) as factory:
        rid = run_or_latest(factory, run_id)
        with factory() as session:
            run = session.get_one(Run, rid)
            symbols, timeframe = list(run.symbols), run.timeframe
        decisions = decisions_frame(factory, rid)
    source = load_source(s.model_copy(update={"symbols": symbols, "timeframe": timeframe}))
    if not per_decision:
        return bucketed(decisions, source, buckets)
    acted = decisions["action"].isin(["buy", "sell", "close"]) & ~decisions["abstained"].astype(bool)
    active = decisions[acted]
    rows = []
    columns = (active[c] for c in ("date", "symbol", "action", "confidence"))
    for date, symbol, action, confidence in zip(*columns, strict=True):
        close = source.history(str(symbol), 1 << 62)["close"]
        i = int(close.index.searchsorted(date))
        if i + 1 >= len(close) or close.index[i] != date:
            continue
        ret = float(close.iloc[i + 1] / close.iloc[i] - 1.0)
        sign = 1.0 if action == "buy" else -1.0
        rows.append((date, symbol, action, float(confidence or 0.0), ret, sign * ret))
    return pd.DataFrame(rows, columns=PER_DECISION)
