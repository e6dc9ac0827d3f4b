"""The `tradegraph sweep` job: validate the grid, load data once, run the trials, rank and record them.

Contracts:
- `prepare_sweep` validates everything (metric, grid, strategy, data) before any trial runs; without
  `--grid`, the strategy's declared sweep ranges are used. If every combination is invalid it raises
  `StrategyError` with the first reason.
- Data is loaded once with the warm-up the most demanding trial needs; all trials share the window, costs
  and sizing of an equivalent `tradegraph backtest`.
- Trials run on the executor the request or `[scale]` names (`agent.scale.executor`: the local pool by
  default, or Ray; Ray with a SQLite ledger shared across nodes is refused before any trial runs).
- `--search random|tpe --trials N` samples N trials of the grid's values with Optuna instead of running
  every combination (`agent.backtest.search`; the study is named after the sweep id).
- `finish_sweep` records every trial as a run (kind `sweep`, id `<sweep id>-NNNN`, status done) with its
  metrics and its rank, in one transaction after all trials finished. A trial stores the metric set of
  every run (`agent.runs.metrics.RunMetrics`): its own figures beside buy & hold and cash over the
  sweep's bars (computed once for all trials).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from agent.backtest.data import epoch_ms
from agent.backtest.formatting import METRICS
from agent.backtest.market import rules_matrix
from agent.backtest.metrics import periods_per_year
from agent.backtest.search import SEARCHES, run_search, study_storage
from agent.backtest.service import BacktestRequest, Prepared, prepare, run_config
from agent.backtest.sweep import (
    SweepData,
    Trial,
    luck_sharpe,
    parse_grid,
    rank,
    run_sweep,
    strategy_source,
    trials,
)
from agent.config import Settings
from agent.errors import ConfigError, StrategyError
from agent.market.history import HISTORY_BARS
from agent.runs import lifecycle as runs
from agent.scale.executor import EXECUTORS, check_ledger, make_executor
from strategies.registry import strategy_class

RANKABLE = [key for key, _, _ in METRICS]


@dataclass(frozen=True)
class SweepRequest:
    """What the user asked for; None means: from the configuration."""

    strategy: str
    grid: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    timeframe: str | None = None
    start: str | None = None
    end: str | None = None
    metric: str = "sharpe"
    workers: int | None = None
    fee: float | None = None
    max_position: float | None = None
    warmup: int | None = None
    """Bars of history before the first traded bar; None: as a backtest of the most demanding trial."""
    executor: str | None = None
    """`local` or `ray`; None: `[scale] executor`."""
    ray_address: str | None = None
    """None: `[scale] ray_address`."""
    search: str = "grid"
    """`grid` (every combination), `random` or `tpe` (Optuna, `n_trials` of them: `agent.backtest.search`)."""
    n_trials: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class SweepJob:
    """A validated sweep, ready to run."""

    request: SweepRequest
    grid: dict[str, list[Any]]
    trials: list[Trial]
    skipped: int
    skip_reason: str
    prepared: Prepared
    notes: list[str]


@dataclass(frozen=True)
class SweepOutcome:
    """Ranked results of a finished sweep."""

    sweep_id: str
    ranked: list[dict[str, Any]]
    luck_sharpe: float


def prepare_sweep(request: SweepRequest, settings: Settings) -> SweepJob:
    """Validate the sweep and load its data (see the module contract)."""
    if request.metric not in RANKABLE:
        raise ConfigError(f"unknown --metric {request.metric!r}; use one of {', '.join(RANKABLE)}")
    if request.workers is not None and request.workers < 1:
        raise ConfigError(f"--workers {request.workers}: must be >= 1")
    if request.search not in SEARCHES:
        raise ConfigError(f"--search {request.search!r}: use {', '.join(SEARCHES)}")
    if request.search != "grid" and (request.n_trials is None or request.n_trials < 1):
        raise ConfigError(f"--search {request.search} needs --trials N (N >= 1)")
    if request.executor is not None and request.executor not in EXECUTORS:
        raise ConfigError(f"--executor {request.executor!r}: use {' or '.join(EXECUTORS)}")
    cls = strategy_class(request.strategy)
    grid = parse_grid(request.grid) if request.grid else _declared_grid(cls.default_grid())
    if not grid:
        raise ConfigError(f"{cls.name} declares no sweep ranges; give --grid NAME=START:STOP:STEP")
    valid, skipped, reason = trials(request.strategy, grid)
    if not valid:
        raise StrategyError(f"all {skipped} parameter combinations are invalid, e.g. {reason}")
    warmup = request.warmup
    if warmup is None:  # as a backtest of the most demanding trial
        warmup = max([HISTORY_BARS] + [cls(cls.make_params(v)).warmup_bars() for v in valid])
    prepared = prepare(
        BacktestRequest(
            strategy=request.strategy,
            symbols=request.symbols,
            timeframe=request.timeframe,
            start=request.start,
            end=request.end,
            fee=request.fee,
            max_position=request.max_position,
            warmup=warmup,
        ),
        settings,
    )
    return SweepJob(request, grid, valid, skipped, reason, prepared, list(prepared.notes))


def _declared_grid(ranges: dict[str, tuple[float, float, float]]) -> dict[str, list[Any]]:
    def text(v: float) -> str:
        return str(int(v)) if float(v).is_integer() else str(v)

    return parse_grid([f"{k}={text(a)}:{text(b)}:{text(c)}" for k, (a, b, c) in ranges.items()])


def finish_sweep(
    job: SweepJob, settings: Settings, on_done: Callable[[], None] | None = None
) -> SweepOutcome:
    """Run every trial, rank by the metric and record the trials as runs."""
    from agent.db.session import open_db

    p = job.prepared
    r = job.request
    executor = make_executor(
        r.executor or settings.scale.executor,
        r.workers or settings.scale.workers,
        r.ray_address or settings.scale.ray_address,
    )
    check_ledger(executor, settings.db_url)
    sweep_id = runs.new_run_id(runs.RunKind.SWEEP)
    if r.search == "grid":
        results = run_sweep(
            r.strategy,
            job.trials,
            p.window.frames,
            timeframe=p.timeframe,
            rules=rules_matrix(p.rules),
            config=p.config,
            sizing=p.sizing,
            start=p.window.trade_start,
            on_done=on_done,
            executor=executor,
        )
    else:
        data = SweepData(
            r.strategy,
            dict(p.window.frames),
            p.timeframe,
            rules_matrix(p.rules),
            p.config,
            p.sizing,
            p.window.trade_start,
            strategy_source(r.strategy),
        )
        results = run_search(
            "tpe" if r.search == "tpe" else "random",
            data,
            job.grid,
            n_trials=r.n_trials or 1,
            metric=r.metric,
            executor=executor,
            storage=study_storage(settings.db_url),
            study_name=sweep_id,
            seed=r.seed,
            on_done=on_done,
        )
    ranked = rank(results, job.request.metric)
    engine, factory = open_db(settings.db_url)
    try:
        _record(job, ranked, factory, sweep_id)
    finally:
        engine.dispose()
    bars = int(ranked[0]["metrics"].get("bars", 0)) if ranked else 0
    return SweepOutcome(sweep_id, ranked, luck_sharpe(len(ranked), bars, periods_per_year(p.timeframe)))


def _record(
    job: SweepJob, ranked: list[dict[str, Any]], factory: sessionmaker[Session], sweep_id: str
) -> None:
    """Every trial as a finished run of kind `sweep` (ids `<sweep_id>-NNNN`), in one transaction."""
    from agent.runs.metrics import RunMetrics

    p = job.prepared
    cls = strategy_class(job.request.strategy)
    base = run_config(p) | {
        "sweep_id": sweep_id,
        "grid": job.grid,
        "metric": job.request.metric,
        "trials": len(ranked),
        "skipped": job.skipped,
        "strategy_spec": job.request.strategy,
        "search": job.request.search,
    }
    references = _references(p)
    trials_done = [
        (
            runs.RunSpec(
                id=runs.trial_run_id(sweep_id, i),
                kind=runs.RunKind.SWEEP,
                strategy=cls.name,
                params=cls.make_params(row["params"]).model_dump(),
                symbols=p.symbols,
                timeframe=p.timeframe,
                start_ts=epoch_ms(p.window.trade_start),
                end_ts=epoch_ms(p.window.trade_end),
                config=base | {"rank": i},
            ),
            RunMetrics.of({"strategy": row["metrics"], **references}).to_json(),
        )
        for i, row in enumerate(ranked, 1)
    ]
    runs.record_done(factory, trials_done)


def _references(p: Prepared) -> dict[str, dict[str, float]]:
    """Buy & hold (`agent.backtest.baseline`) and cash over the trials' bars: the columns every run stores
    beside its own figures."""
    from agent.backtest.baseline import hold_metrics
    from agent.backtest.metrics import cash_metrics
    from agent.backtest.plan import align

    index, ohlcv, _ = align(p.window.frames, p.symbols)
    first = int(index.searchsorted(p.window.trade_start))
    index, ohlcv = index[first:], {c: a[first:] for c, a in ohlcv.items()}
    matrix = rules_matrix(p.rules)
    _, metrics = hold_metrics(index, p.symbols, ohlcv, matrix, p.config, p.timeframe, p.sizing.position_cap)
    return metrics | {"cash": cash_metrics(index, p.config.initial_cash, p.timeframe)}
