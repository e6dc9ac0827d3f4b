"""The `tradegraph backtest` job: validate the request, load data, simulate, compare, report, record.

Contracts:
- `prepare` checks every input (strategy and parameters, symbols, options, date range, data) and raises a
  `TradegraphError` with one line on the first problem — before anything is written.
- `run_request` then records the run (`runs` table, kind `backtest`, status running), simulates the
  strategy and the buy-and-hold reference, writes the report under `<reports_dir>/<run id>/` and marks
  the run done with its metrics (`agent.runs.metrics.RunMetrics`, the stored form of every run kind:
  `strategy`, `buy_and_hold`, `cash` and, when the per-symbol cap binds, `buy_and_hold_capped`, plus the
  window's `warnings`, which also join the outcome's and the report's notes) and report path; any failure
  after the run row exists marks it failed and re-raises.
- Settings supply the defaults (cash, fees, slippage, participation cap, fixed fee, initial position, risk
  caps and limits); request fields that are not None override them and are stored in the run's `config`.
- Conventions (`agent.execution.conventions`): the fill timing is the request's `fill`, else the strategy's
  declared `fill_timing`; the order style is the strategy's. `initial_position` names symbols of the run
  (fractions of the initial equity, summing to at most 1); `exchange_rules = False` drops the amount step
  and the minimums (only the fee applies), as protocols that model neither.
- History: the strategy's indicators are computed from `agent.market.history.history_bars` bar times before
  the first traded bar (1000, more when the strategy declares a longer warm-up; `warmup` overrides it), the
  history the daemon reads by default (`tradegraph run --history-bars`), so a backtest and a daemon over the
  same window compute the same indicators, bit for bit (recursive ones such as EMA, RSI and ATR depend on
  where they start).
- Buy & hold is `agent.backtest.baseline`: fully invested from the first bar with the same costs (the
  benchmark of every report), plus the same held within the per-symbol cap as a second, labelled column
  (`buy_and_hold_capped`) when that cap binds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from agent.backtest.data import Window, epoch_ms, load_window
from agent.backtest.market import engine_config, plain_rules, rules_for, sizing_rules, unknown_rules
from agent.backtest.models import EngineConfig, FillMode, SizingRules
from agent.backtest.plan import check_conventions
from agent.backtest.runner import BacktestResult, compare, run_backtest
from agent.config import Settings
from agent.errors import ConfigError
from agent.execution.conventions import FILL_MODES
from agent.market.candles import timeframe_ms
from agent.market.exchange import MarketRules
from agent.market.history import history_bars
from strategies.base import Strategy
from strategies.registry import build_strategy

if TYPE_CHECKING:
    from agent.runs.lifecycle import RunSpec

"""Bars of indicator history before the first traded bar: the daemon's default `--history-bars`."""


@dataclass(frozen=True)
class BacktestRequest:
    """What the user asked for; None means: from the configuration."""

    strategy: str
    params: dict[str, Any] = field(default_factory=dict)
    """Raw parameter values (strings from the command line, numbers from a campaign file)."""
    symbols: list[str] = field(default_factory=list)
    timeframe: str | None = None
    start: str | None = None
    end: str | None = None
    fill: str | None = None
    """next_open, same_open or same_close; None = the strategy's declared timing."""
    sizing: str = "fixed"
    fraction: float = 1.0
    max_position: float | None = None
    cash: float | None = None
    fee: float | None = None
    slippage_bps: float | None = None
    max_participation: float | None = None
    warmup: int | None = None
    fixed_fee: float | None = None
    initial_position: dict[str, float] | None = None
    """Symbol -> fraction of the initial equity held from the first bar's open; None = `[broker]`."""
    exchange_rules: bool = True
    """False: no amount step and no minimums, only the fee."""


@dataclass(frozen=True)
class Prepared:
    """A validated request with its data loaded."""

    strategy: Strategy
    symbols: list[str]
    timeframe: str
    window: Window
    rules: list[MarketRules]
    config: EngineConfig
    sizing: SizingRules
    notes: list[str]


@dataclass(frozen=True)
class Outcome:
    """What a finished backtest produced."""

    run_id: str
    result: BacktestResult
    hold: BacktestResult
    comparison: dict[str, dict[str, float]]
    report_path: Path | None
    notes: list[str]


def parse_symbols(symbol: str | None, symbols: str | None, default: list[str]) -> list[str]:
    """`--symbol` and/or `--symbols A,B` (upper-cased, de-duplicated), else the configured symbols."""
    raw = [s for part in (symbol, symbols) if part for s in part.split(",")]
    chosen = [s.strip().upper() for s in raw if s.strip()] or list(default)
    for s in chosen:
        if "/" not in s:
            raise ConfigError(f"symbol {s!r} must look like BASE/QUOTE, e.g. BTC/USDT")
    return sorted(set(chosen))


def _check_options(r: BacktestRequest) -> None:
    position = r.initial_position or {}
    checks = [
        (
            r.fill is None or r.fill in FILL_MODES,
            f"--fill {r.fill!r}: use next_open, same_open or same_close",
        ),
        (r.sizing in ("fixed", "vol_target"), f"--sizing {r.sizing!r}: use fixed or vol_target"),
        (0 < r.fraction <= 1, f"--fraction {r.fraction}: must be in (0, 1]"),
        (
            r.max_position is None or 0 < r.max_position <= 1,
            f"--max-position {r.max_position}: must be in (0, 1]",
        ),
        (r.cash is None or r.cash > 0, f"--cash {r.cash}: must be positive"),
        (r.fee is None or 0 <= r.fee <= 0.1, f"--fee {r.fee}: must be a rate in [0, 0.1], e.g. 0.001"),
        (r.slippage_bps is None or 0 <= r.slippage_bps <= 1000, f"--slippage-bps {r.slippage_bps}: 0..1000"),
        (
            r.max_participation is None or 0 < r.max_participation <= 1,
            f"--max-participation {r.max_participation}: must be in (0, 1]",
        ),
        (r.warmup is None or r.warmup >= 0, f"--warmup {r.warmup}: must be >= 0"),
        (r.fixed_fee is None or r.fixed_fee >= 0, f"fixed fee {r.fixed_fee}: must be >= 0 (quote currency)"),
        (
            all(0 <= v <= 1 for v in position.values()) and sum(position.values()) <= 1 + 1e-12,
            f"initial position {position}: fractions of equity in [0, 1], summing to at most 1",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def prepare(request: BacktestRequest, settings: Settings) -> Prepared:
    """Validate the request and load its data (see the module contract)."""
    _check_options(request)
    strategy = build_strategy(request.strategy, request.params)
    symbols = request.symbols or list(settings.symbols)
    timeframe = request.timeframe or settings.timeframe
    sizing = sizing_rules(
        settings, mode=request.sizing, fraction=request.fraction, position_cap=request.max_position
    )
    fill = _fill(request.fill or strategy.fill_timing)
    check_conventions(strategy, sizing, fill)
    position = _initial_position(request, settings, symbols)
    warmup = request.warmup
    if warmup is None:
        needed = max(strategy.warmup_bars(), sizing.atr_period + 1 if sizing.mode == "vol_target" else 0)
        warmup = history_bars(False, needed)
    exchange = "binance" if settings.exchange.id == "replay" else settings.exchange.id
    window = history_from(
        load_window(symbols, timeframe, settings.data_dir, request.start, request.end, warmup, exchange),
        warmup * timeframe_ms(timeframe),
    )
    market = rules_for if request.exchange_rules else plain_rules
    rules = [market(s, settings, request.fee) for s in sorted(symbols)]
    notes = list(window.notes)
    notes += [
        f"{s}: no exchange precision or minimums known offline; only the fee applies"
        for s in (unknown_rules(symbols) if request.exchange_rules else [])
    ]
    config = engine_config(
        settings,
        initial_cash=request.cash,
        fill=fill,
        slippage_bps=request.slippage_bps,
        max_participation=request.max_participation,
        fixed_fee=request.fixed_fee,
        initial_position=position,
    )
    config = replace(config, style=strategy.style)
    return Prepared(strategy, sorted(symbols), timeframe, window, rules, config, sizing, notes)


def history_from(window: Window, span_ms: int) -> Window:
    """The window's frames from `span_ms` before the first traded bar on (by time, as the daemon's history
    start, whatever gaps the data has)."""
    first = window.trade_start - pd.Timedelta(milliseconds=span_ms)
    frames = {s: f[f.index >= first] for s, f in window.frames.items()}
    return replace(window, frames=frames)


def _fill(value: str) -> FillMode:
    return next((mode for mode in FILL_MODES if mode == value), "next_open")


def _initial_position(request: BacktestRequest, settings: Settings, symbols: list[str]) -> dict[str, float]:
    """The request's initial position (else `[broker] initial_position`); every symbol in it is traded."""
    given = (
        request.initial_position if request.initial_position is not None else settings.broker.initial_position
    )
    position = {s.upper(): float(v) for s, v in given.items() if v > 0}
    unknown = sorted(set(position) - set(symbols))
    if unknown:
        raise ConfigError(
            f"initial position in {unknown[0]}, which this backtest does not trade ({', '.join(symbols)})"
        )
    return position


def simulate_prepared(p: Prepared) -> tuple[BacktestResult, BacktestResult, dict[str, dict[str, float]]]:
    """The strategy, its buy-and-hold reference and the metric comparison (no I/O)."""
    result = run_backtest(
        p.window.frames,
        p.strategy,
        timeframe=p.timeframe,
        rules=p.rules,
        config=p.config,
        sizing=p.sizing,
        start=p.window.trade_start,
    )
    hold, comparison = compare(p.window.frames, result, p.rules, start=p.window.trade_start)
    return result, hold, comparison


def run_config(p: Prepared) -> dict[str, Any]:
    """What a run's `config` column records: costs, sizing, rules and fill timing."""
    return {
        "engine": asdict(p.config),
        "sizing": asdict(p.sizing),
        "rules": {r.symbol: asdict(r) for r in p.rules},
        "warmup_bars": int(p.window.frames[p.symbols[0]].index.searchsorted(p.window.trade_start)),
    }


def run_request(request: BacktestRequest, settings: Settings, reports_dir: Path | None) -> Outcome:
    """Prepare, record, simulate, report (unless `reports_dir` is None), finish the run."""
    from agent.db.session import open_db

    prepared = prepare(request, settings)
    engine, factory = open_db(settings.db_url)
    try:
        return _record_and_run(prepared, request.strategy, factory, reports_dir)
    finally:
        engine.dispose()


def _record_and_run(
    prepared: Prepared, spec: str, factory: sessionmaker[Session], reports_dir: Path | None
) -> Outcome:
    from agent.backtest.report import write_report
    from agent.runs import lifecycle as runs
    from agent.runs.metrics import RunMetrics

    run_id = runs.new_run_id(runs.RunKind.BACKTEST)
    record = run_spec(prepared, spec, run_id)
    runs.create_run(factory, record)
    try:
        result, hold, comparison = simulate_prepared(prepared)
        metrics = RunMetrics.of(comparison)
        notes = [*prepared.notes, *metrics.warnings]
        report_path = None
        if reports_dir is not None:
            meta = _meta(run_id, prepared, result)
            folder = reports_dir.absolute() / run_id  # recorded absolute: valid from any working directory
            report_path = write_report(folder, result, hold, comparison, meta, notes)
        runs.finish_run(factory, run_id, metrics.to_json(), str(report_path) if report_path else None)
    except BaseException as e:
        runs.fail_run(factory, run_id, e)
        raise
    return Outcome(run_id, result, hold, comparison, report_path, notes)


def _meta(run_id: str, p: Prepared, result: BacktestResult) -> dict[str, Any]:
    idx = result.sim.index
    return {
        "title": f"{p.strategy.describe()} on {', '.join(p.symbols)} {p.timeframe}",
        "run id": run_id,
        "window": f"{idx[0]} to {idx[-1]} ({len(idx)} bars)",
        "parameters": p.strategy.describe(),
        "fills": f"{p.config.fill}, slippage {p.config.slippage_bps} bps, "
        f"participation cap {p.config.max_participation or 'none'}",
        "conventions": f"{p.strategy.style}, fixed fee {p.config.fixed_fee:g} per fill, initial position "
        f"{', '.join(f'{s} {v:g}' for s, v in p.config.initial_position.items()) or 'none'}",
        "fees (taker)": ", ".join(f"{r.symbol} {r.taker_fee:g}" for r in p.rules),
        "sizing": f"{p.sizing.mode}, fraction {p.sizing.fraction}, per-symbol cap {p.sizing.position_cap}, "
        f"gross cap {p.sizing.gross_cap}",
        "initial cash": p.config.initial_cash,
    }


def record_simulated(
    prepared: Prepared,
    spec: str,
    factory: sessionmaker[Session],
    reports_dir: Path | None,
    run_id: str,
    config: dict[str, Any] | None = None,
) -> Outcome:
    """Simulate, write the report, then record the run as done with its metrics in one transaction, so a run
    `run_id` either exists whole or not at all (a campaign cell: `agent.eval`); `config` joins the run's
    `config` column."""
    from agent.backtest.report import write_report
    from agent.runs import lifecycle as runs
    from agent.runs.metrics import RunMetrics

    record = run_spec(prepared, spec, run_id, config)
    result, hold, comparison = simulate_prepared(prepared)
    metrics = RunMetrics.of(comparison)
    notes = [*prepared.notes, *metrics.warnings]
    report_path = None
    if reports_dir is not None:
        folder = reports_dir.absolute() / run_id
        report_path = write_report(folder, result, hold, comparison, _meta(run_id, prepared, result), notes)
    done = metrics.to_json()
    runs.record_done(factory, [(record, done)], {run_id: str(report_path)} if report_path else None)
    return Outcome(run_id, result, hold, comparison, report_path, notes)


def run_spec(prepared: Prepared, spec: str, run_id: str, config: dict[str, Any] | None = None) -> RunSpec:
    """The run record of a backtest (`agent.runs.lifecycle.RunSpec`): kind `backtest`, the strategy, its
    window and `run_config` with the strategy spec (and `config`)."""
    from agent.runs import lifecycle as runs

    window = prepared.window
    return runs.RunSpec(
        id=run_id,
        kind=runs.RunKind.BACKTEST,
        strategy=prepared.strategy.name,
        params=prepared.strategy.params.model_dump(),
        symbols=prepared.symbols,
        timeframe=prepared.timeframe,
        start_ts=epoch_ms(window.trade_start),
        end_ts=epoch_ms(window.trade_end),
        config=run_config(prepared) | {"strategy_spec": spec} | (config or {}),
    )
