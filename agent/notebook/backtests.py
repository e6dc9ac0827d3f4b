"""Rule-strategy backtests for notebooks: one run, a parameter sweep, the look-ahead check.

Contracts:
- `run_backtest` is `tradegraph backtest`: `agent.backtest.service.run_request` validates, simulates the
  strategy and buy-and-hold with the same costs, records the run (kind `backtest`) and writes a report only
  when `reports_dir` is given. The result holds the metrics of strategy, buy-and-hold and cash side by side,
  their equity curves and the trades.
- `sweep` is `tradegraph sweep` (`agent.backtest.sweep_job`): every valid combination of `grid` is run and
  recorded as a `sweep` run; the table is best first by `metric`. `workers=1` runs in this process.
- `check_lookahead` is `tradegraph check-lookahead` (`agent.backtest.lookahead`) for several strategies at
  once: one row per strategy and symbol; `lookahead` is True when any decision (target or exit plan) at a
  bar up to a cut changed once the later bars were cut off; no usable cut point raises `NoCutPoint`.
- A strategy is a built-in name, `path/to/file.py:Class`, or a `Strategy` class or instance defined at module
  level (a notebook cell counts: it lives in `__main__`); see `common.strategy_spec`.
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
    exchange_folder,
    parse_symbols,
    resolve_settings,
    strategy_spec,
    text,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from agent.backtest.runner import BacktestResult
    from strategies.base import Strategy

    StrategyLike = str | Strategy | type[Strategy]

COLUMNS = ["strategy", "buy_and_hold", "cash"]


@dataclass(frozen=True)
class BacktestRun:
    """A recorded rule backtest: metrics next to buy-and-hold and cash, equity curves and trades."""

    run_id: str
    metrics: pd.DataFrame
    """One row per metric (`total_return`, `sharpe`, ...); columns strategy, buy_and_hold, cash."""
    equity: pd.DataFrame
    """Equity after each bar (index: bar open time, UTC); columns strategy, buy_and_hold, cash."""
    trades: pd.DataFrame
    """One row per round trip of the strategy."""
    report_path: Path | None
    notes: list[str]
    """Warnings of the run (e.g. data shorter than the window asked for)."""
    result: BacktestResult
    hold: BacktestResult

    def figure(self) -> Figure:
        """Equity against buy-and-hold and cash, as in the report."""
        from agent.backtest.charts import equity_figure

        return equity_figure(self.result.sim, self.hold.sim, self.result.strategy)


def run_backtest(
    strategy: StrategyLike,
    symbols: str | Sequence[str],
    timeframe: str = "1h",
    start: When = None,
    end: When = None,
    *,
    settings: SettingsLike = None,
    reports_dir: Path | str | None = None,
    **params: Any,
) -> BacktestRun:
    """Backtest a rule strategy exactly as `tradegraph backtest` does, and record the run.

    Args:
        strategy: A built-in name, `path/to/file.py:Class`, or a `Strategy` class or instance.
        symbols: One symbol, a comma-separated string or a list (several symbols share the cash).
        timeframe: Bar size of the stored candles.
        start: First bar (inclusive); None = the first stored bar (after the warm-up).
        end: End of the window (exclusive); None = the last stored bar.
        settings: Configuration (see the package docstring).
        reports_dir: Where to write the HTML report; None = no report.
        **params: The strategy's parameters (with a name or class).

    Example:
        >>> bt = tg.run_backtest("sma_cross", "BTC/USDT", "1h", fast=20, slow=100)  # doctest: +SKIP
        >>> bt.metrics.loc[["total_return", "sharpe", "max_drawdown"]]  # doctest: +SKIP
    """
    from agent.backtest.service import BacktestRequest, run_request

    spec, values = strategy_spec(strategy, params)
    request = BacktestRequest(
        strategy=spec,
        params=values,
        symbols=parse_symbols(symbols),
        timeframe=timeframe,
        start=text(start),
        end=text(end),
    )
    reports = Path(reports_dir) if reports_dir is not None else None
    out = run_request(request, resolve_settings(settings), reports)
    res, hold = out.result, out.hold
    cash = out.comparison["cash"].get("final_equity", res.config.initial_cash)
    equity = pd.DataFrame(
        {"strategy": res.sim.equity, "buy_and_hold": hold.sim.equity, "cash": cash}, index=res.sim.index
    )
    metrics = pd.DataFrame(out.comparison).reindex(columns=COLUMNS)
    trades = res.sim.trades_frame()
    return BacktestRun(out.run_id, metrics, equity, trades, out.report_path, list(out.notes), res, hold)


def sweep(
    strategy: StrategyLike,
    grid: Mapping[str, Sequence[Any]],
    symbols: str | Sequence[str],
    timeframe: str = "1h",
    start: When = None,
    end: When = None,
    *,
    metric: str = "sharpe",
    workers: int = 1,
    settings: SettingsLike = None,
) -> pd.DataFrame:
    """Backtest every combination of `grid` like `tradegraph sweep`; one row per trial, best first.

    The table's `attrs` hold `sweep_id`, `trials`, `skipped` (invalid combinations) and `luck_sharpe`: the
    Sharpe ratio the best of this many zero-skill trials reaches by chance.

    Example:
        >>> res = tg.sweep("sma_cross", {"fast": [10, 20], "slow": [50, 100]}, "BTC/USDT")  # doctest: +SKIP
        >>> res.pivot(index="fast", columns="slow", values="sharpe")  # doctest: +SKIP
    """
    from agent.backtest.sweep_job import SweepRequest, finish_sweep, prepare_sweep

    spec, _ = strategy_spec(strategy, {})
    if not grid:
        raise ConfigError("the grid is empty; give e.g. {'fast': [10, 20], 'slow': [50, 100]}")
    items = [f"{name}={','.join(str(v) for v in values)}" for name, values in grid.items()]
    s = resolve_settings(settings)
    request = SweepRequest(
        strategy=spec,
        grid=items,
        symbols=parse_symbols(symbols),
        timeframe=timeframe,
        start=text(start),
        end=text(end),
        metric=metric,
        workers=workers,
    )
    job = prepare_sweep(request, s)
    out = finish_sweep(job, s)
    table = pd.DataFrame([{"rank": i, **r["params"], **r["metrics"]} for i, r in enumerate(out.ranked, 1)])
    table.attrs.update(
        sweep_id=out.sweep_id, trials=len(out.ranked), skipped=job.skipped, luck_sharpe=out.luck_sharpe
    )
    return table


def check_lookahead(
    strategies: StrategyLike | Sequence[StrategyLike],
    symbols: str | Sequence[str],
    timeframe: str = "1h",
    start: When = None,
    end: When = None,
    *,
    samples: int | None = None,
    warmup: int | None = None,
    settings: SettingsLike = None,
) -> pd.DataFrame:
    """The truncation test for each strategy and symbol; any finding means the strategy sees the future.

    Args:
        samples: Most cut points per symbol; None = every bar after the warm-up, up to
            `agent.backtest.lookahead.DEFAULT_CUTS`.
        warmup: Bars of history loaded before `start`; None = the longest warm-up the strategies declare,
            so the check cuts from the window's first bar.

    One row per strategy and symbol: `cuts` checked of `usable`, `findings`, `lookahead`, and the first
    finding's `first_cut`, `first_bar` and `first_decision` (target, stop_loss, take_profit or trailing).
    A symbol without a usable cut point raises `agent.backtest.lookahead.NoCutPoint` (a `DataError`).

    Example:
        >>> tg.check_lookahead(["sma_cross", "macd"], "BTC/USDT")  # doctest: +SKIP
    """
    from agent.backtest.data import load_window
    from agent.backtest.lookahead import check_window, history_bars
    from strategies.base import Strategy
    from strategies.registry import build_strategy

    if samples is not None and samples < 1:
        raise ConfigError(f"samples={samples}: must be >= 1")
    s = resolve_settings(settings)
    listed = [strategies] if isinstance(strategies, str | Strategy | type) else list(strategies)
    built = [s if isinstance(s, Strategy) else build_strategy(*strategy_spec(s, {})) for s in listed]
    history = history_bars(built, warmup, option="warmup")
    chosen = parse_symbols(symbols)
    window = load_window(chosen, timeframe, s.data_dir, text(start), text(end), history, exchange_folder(s))
    rows = []
    for strat in built:
        for check in check_window(strat, window, samples):
            first = check.findings[0] if check.findings else None
            rows.append(
                {
                    "strategy": strat.describe(),
                    "symbol": check.symbol,
                    "cuts": check.cuts,
                    "usable": check.usable,
                    "findings": len(check.findings),
                    "lookahead": bool(check.findings),
                    "first_cut": first.cut if first else None,
                    "first_bar": first.bar if first else None,
                    "first_decision": first.decision if first else None,
                }
            )
    return pd.DataFrame(rows)
