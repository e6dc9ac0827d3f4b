"""`tradegraph backtest | sweep | check-lookahead`: the backtesting commands (`runs` is `agent.cli.runs_cmd`).

Contracts:
- Thin wrappers: validation, simulation, reports and records live in `agent.backtest`; heavy imports
  (pandas, numba, matplotlib) happen inside the commands so `--help` stays fast.
- Bad input (unknown strategy, bad parameter, empty date range, missing data) raises a `TradegraphError`
  before anything is written; `agent.cli.main` prints it as one line and exits 1.
- `check-lookahead` exits 1 when any decision changes with later bars removed, and 2 when no bar can be cut.
"""

from __future__ import annotations

from typing import Literal

import typer

from agent.cli.dates import iso_date
from agent.cli.strategies_cmd import check_strategy
from agent.cli.verbosity import quiet_native_logs

_STRATEGY = typer.Option(
    ..., "--strategy", "-s", help="built-in name (e.g. sma_cross) or path/to/file.py:Class"
)
_SYMBOL = typer.Option(None, "--symbol", help="one symbol, e.g. BTC/USDT")
_SYMBOLS = typer.Option(None, "--symbols", help="several symbols, comma-separated (shared cash)")
_TIMEFRAME = typer.Option(None, "--timeframe", "-t", help="bar size; default: the configured timeframe")
_START = typer.Option(
    None, "--start", callback=iso_date, help="first bar, inclusive: ISO date or timestamp (UTC), 2025-01-02"
)
_END = typer.Option(None, "--end", callback=iso_date, help="end of the window (exclusive), ISO like --start")
_PARAM = typer.Option(None, "--param", "-p", help="strategy parameter NAME=VALUE (repeatable)")


def register(app: typer.Typer) -> None:
    """Add the backtest, sweep and check-lookahead commands."""
    app.command("backtest")(backtest)
    app.command("sweep")(sweep)
    app.command("check-lookahead")(check_lookahead)


def backtest(
    strategy: str = _STRATEGY,
    symbol: str | None = _SYMBOL,
    symbols: str | None = _SYMBOLS,
    timeframe: str | None = _TIMEFRAME,
    start: str | None = _START,
    end: str | None = _END,
    param: list[str] | None = _PARAM,
    fill: str | None = typer.Option(
        None,
        "--fill",
        help="next_open, same_open (strategies deciding on the open) or same_close (optimistic); "
        "default: the strategy's (next_open for the built-ins)",
    ),
    sizing: str = typer.Option("fixed", "--sizing", help="fixed (signal x fraction) or vol_target (ATR)"),
    fraction: float = typer.Option(1.0, "--fraction", help="fixed sizing: exposure when fully in"),
    max_position: float | None = typer.Option(
        None, "--max-position", help="per-symbol cap; default risk config"
    ),
    cash: float | None = typer.Option(None, "--cash", help="initial cash; default broker.initial_cash"),
    fee: float | None = typer.Option(None, "--fee", help="taker fee rate, e.g. 0.001; default market/config"),
    slippage_bps: float | None = typer.Option(None, "--slippage-bps", help="default broker.slippage_bps"),
    max_participation: float | None = typer.Option(None, "--max-participation", help="cap on fill / volume"),
    warmup: int | None = typer.Option(None, "--warmup", help="bars of history before --start; default auto"),
    no_report: bool = typer.Option(False, "--no-report", help="skip the HTML/PNG/CSV report"),
    prompt_mode: Literal["stateless", "stateful"] | None = typer.Option(
        None,
        "--prompt-mode",
        help="llm/hybrid: stateless (market only; many bars in flight) or stateful (account, positions, past "
        "decisions); default llm.prompt_mode",
    ),
) -> None:
    """Backtest a strategy on stored candles; print a summary, write a report, record the run."""
    from rich.console import Console

    from agent.backtest.service import BacktestRequest, parse_symbols, run_request
    from agent.backtest.tables import summary_table
    from agent.config import load_settings
    from agent.errors import ConfigError
    from agent.graph.mode import StrategyMode
    from strategies.registry import parse_params

    check_strategy(strategy)
    settings = load_settings()
    chosen = parse_symbols(symbol, symbols, list(settings.symbols))
    if StrategyMode.of(strategy).asks_model:
        _agent_backtest(strategy, chosen, timeframe, start, end, prompt_mode)
        return
    if prompt_mode is not None:
        raise ConfigError(
            f"--prompt-mode applies to strategies that ask the model (llm, hybrid), not {strategy!r}"
        )
    request = BacktestRequest(
        strategy=strategy,
        params=parse_params(param or []),
        symbols=chosen,
        timeframe=timeframe,
        start=start,
        end=end,
        fill=fill,
        sizing=sizing,
        fraction=fraction,
        max_position=max_position,
        cash=cash,
        fee=fee,
        slippage_bps=slippage_bps,
        max_participation=max_participation,
        warmup=warmup,
    )
    outcome = run_request(request, settings, None if no_report else settings.reports_dir)
    console = Console()
    for note in outcome.notes:
        console.print(f"[yellow]note:[/] {note}")
    idx = outcome.result.sim.index
    span = f"{idx[0]:%Y-%m-%d %H:%M} to {idx[-1]:%Y-%m-%d %H:%M} UTC"  # bar open times, index in UTC
    title = f"{strategy} on {', '.join(outcome.result.symbols)} {outcome.result.timeframe}: {span}"
    console.print(summary_table(outcome.comparison, title))
    console.print(f"run id: {outcome.run_id}")
    if outcome.report_path is not None:
        print(f"report: {outcome.report_path}")


def sweep(
    strategy: str = _STRATEGY,
    grid: list[str] | None = typer.Option(None, "--grid", "-g", help="NAME=START:STOP:STEP or NAME=A,B,C"),
    symbol: str | None = _SYMBOL,
    symbols: str | None = _SYMBOLS,
    timeframe: str | None = _TIMEFRAME,
    start: str | None = _START,
    end: str | None = _END,
    metric: str = typer.Option("sharpe", "--metric", help="metric to rank by"),
    workers: int | None = typer.Option(None, "--workers", help="processes; default: all cores"),
    top: int = typer.Option(10, "--top", help="rows to show"),
    fee: float | None = typer.Option(None, "--fee", help="taker fee rate; default market/config"),
    max_position: float | None = typer.Option(
        None, "--max-position", help="per-symbol cap; default risk config"
    ),
    warmup: int | None = typer.Option(None, "--warmup", help="bars of history before --start; default auto"),
    executor: str | None = typer.Option(None, "--executor", help="local or ray; default [scale] executor"),
    ray_address: str | None = typer.Option(None, "--ray-address", help="auto or ray://host:10001"),
    search: str = typer.Option("grid", "--search", help="grid (every combination), random or tpe (Optuna)"),
    n_trials: int | None = typer.Option(None, "--trials", help="trials of a random or tpe search"),
    seed: int = typer.Option(0, "--seed", help="the search's seed"),
) -> None:
    """Backtest a parameter grid (every combination, or a random or TPE search) and rank the trials.

    Trials run on every core, or on a Ray cluster with --executor ray."""
    from rich.console import Console
    from rich.progress import Progress

    from agent.backtest.formatting import fmt, kind_of, label
    from agent.backtest.service import parse_symbols
    from agent.backtest.sweep_job import SweepRequest, finish_sweep, prepare_sweep
    from agent.backtest.tables import sweep_table
    from agent.config import load_settings

    check_strategy(strategy)
    settings = load_settings()
    request = SweepRequest(
        strategy=strategy,
        grid=list(grid or []),
        symbols=parse_symbols(symbol, symbols, list(settings.symbols)),
        timeframe=timeframe,
        start=start,
        end=end,
        metric=metric,
        workers=workers,
        fee=fee,
        max_position=max_position,
        warmup=warmup,
        executor=executor,
        ray_address=ray_address,
        search=search,
        n_trials=n_trials,
        seed=seed,
    )
    job = prepare_sweep(request, settings)
    console = Console()
    for note in job.notes:
        console.print(f"[yellow]note:[/] {note}")
    planned = len(job.trials) if search == "grid" else (n_trials or 0)
    console.print(
        f"{planned} trials ({search}), {job.skipped} invalid grid combinations skipped"
        + (f" (e.g. {job.skip_reason})" if job.skipped else "")
    )
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("backtesting", total=planned)
        outcome = finish_sweep(job, settings, on_done=lambda: progress.advance(task))
    console.print(sweep_table(outcome.ranked, metric, top))
    best = outcome.ranked[0]
    console.print(
        f"best {label(metric)}: {fmt(best['metrics'].get(metric), kind_of(metric))} with "
        f"{', '.join(f'{k}={v}' for k, v in best['params'].items())} — best of {len(outcome.ranked)} trials "
        f"({job.skipped} invalid combinations skipped)."
    )
    console.print(
        f"[yellow]warning:[/] selection bias: the best of {len(outcome.ranked)} trials overstates what to "
        f"expect out of sample; a Sharpe of about {outcome.luck_sharpe:.2f} is reachable by luck alone here. "
        "Check the winner on a later, unseen window."
    )
    console.print(f"sweep id: {outcome.sweep_id} (trials recorded as runs {outcome.sweep_id}-NNNN)")


def check_lookahead(
    strategy: str = _STRATEGY,
    symbol: str | None = _SYMBOL,
    symbols: str | None = _SYMBOLS,
    timeframe: str | None = _TIMEFRAME,
    start: str | None = _START,
    end: str | None = _END,
    param: list[str] | None = _PARAM,
    samples: int | None = typer.Option(
        None, "--samples", help="most cut points per symbol; default: every bar after the warm-up, up to 2500"
    ),
    warmup: int | None = typer.Option(
        None, "--warmup", help="bars of history before --start; default: the strategy's warm-up"
    ),
) -> None:
    """Check a strategy for look-ahead: exit 1 if cutting the data changes an earlier decision.

    Re-runs the strategy on data cut after each sampled bar and compares every earlier decision (targets
    and exit plans); exit 1 if any changes (look-ahead bias), 2 if no bar can be cut."""
    import sys

    from rich.console import Console

    from agent.backtest.data import load_window
    from agent.backtest.lookahead import NoCutPoint, check_window, history_bars
    from agent.backtest.service import parse_symbols
    from agent.backtest.tables import lookahead_table
    from agent.config import load_settings
    from agent.errors import ConfigError
    from agent.textsafe import for_plain_terminal
    from strategies.registry import build_strategy, parse_params

    if samples is not None and samples < 1:
        raise ConfigError(f"--samples {samples}: must be >= 1")
    check_strategy(strategy)
    settings = load_settings()
    strat = build_strategy(strategy, parse_params(param or []))
    history = history_bars([strat], warmup)
    chosen = parse_symbols(symbol, symbols, list(settings.symbols)[:1])
    exchange = "binance" if settings.exchange.id == "replay" else settings.exchange.id
    window = load_window(
        chosen, timeframe or settings.timeframe, settings.data_dir, start, end, history, exchange
    )
    try:
        checks = check_window(strat, window, samples)
    except NoCutPoint as e:  # the check compared nothing: not a pass (exit 2, like a usage error)
        print(f"error: {for_plain_terminal(str(e))}", file=sys.stderr)
        raise typer.Exit(2) from None
    findings = [f for check in checks for f in check.findings]
    cuts = sum(check.cuts for check in checks)
    usable = sum(check.usable for check in checks)
    coverage = (
        "every usable bar"
        if cuts == usable
        else f"{cuts} of {usable} usable bars; --samples {max(c.usable for c in checks)} checks them all"
    )
    console = Console()
    if findings:
        console.print(lookahead_table([f.row() for f in findings]))
        first = findings[0]
        console.print(
            f"[red]look-ahead detected[/]: {strat.describe()} changed its decisions at {len(findings)} of "
            f"{cuts} cut points when later bars were removed (first: {first.decision} of {first.symbol} at "
            f"{first.bar}, cut after {first.cut}; {coverage})"
        )
        raise typer.Exit(1)
    console.print(
        f"no look-ahead: {strat.describe()} made the same decisions at every bar up to each of {cuts} cut "
        f"points on {', '.join(chosen)} ({coverage})"
    )


def _agent_backtest(
    strategy: str,
    symbols: list[str],
    timeframe: str | None,
    start: str | None,
    end: str | None,
    prompt_mode: str | None = None,
) -> None:
    """`--strategy llm|hybrid`: the agent graph over history on a simulated clock (agent.graph.backtest);
    `prompt_mode` overrides `llm.prompt_mode` (recorded with the run's configuration)."""
    from rich.console import Console

    from agent.cli.agent_cmd import _summary
    from agent.config import load_settings
    from agent.graph.backtest import run_agent_backtest

    overrides: dict[str, object] = {"symbols": symbols}
    if timeframe:
        overrides["timeframe"] = timeframe
    if prompt_mode:
        overrides["llm"] = {"prompt_mode": prompt_mode}  # merged into the configured [llm] section
    settings = load_settings(**overrides)
    quiet_native_logs()
    console = Console()
    result = run_agent_backtest(settings, strategy=strategy, start=start, end=end, console=console)
    _summary(console, result.metrics)
    console.print(f"report: [bold]{result.report}[/]")
