"""Searches beyond grids: `tradegraph sweep --search random|tpe --trials N` samples a sweep's parameter
values with Optuna (random, or its Tree-structured Parzen Estimator), the study stored beside the ledger.

Contracts:
- The search space is the sweep's grid (`--grid`, or the strategy's declared ranges): each parameter takes
  one of its grid values. Combinations the strategy's `Params` refuse are told to the study as failed and
  not run; they do not count as trials. At most `MAX_ASKS_PER_TRIAL` x N suggestions are asked in all.
- Trials are asked in batches of the executor's workers and run as executor tasks (`sweep_trial`, the same
  task as a grid sweep's), so the study lives in one place while any number of workers, local or on Ray,
  compute it; each result is told to the study as it finishes. The metric's direction follows
  `LOWER_IS_BETTER`; an undefined metric is a failed trial.
- Seeded: the same request, data and seed ask the same suggestions on one worker; with several workers the
  batches keep that true (a batch's suggestions are asked before any of its results is told).
- The study is named after the sweep and stored with Optuna's RDB storage in the ledger's database:
  on PostgreSQL in a schema of its own (`optuna`), so its tables and its Alembic version never meet the
  ledger's; on SQLite in a file beside the ledger (`<ledger>.optuna.db`) for the same reason.
- Every trial actually run is returned (and recorded by the sweep), so the selection-bias warning counts
  them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from agent.backtest.sweep import LOWER_IS_BETTER, SweepData, Trial, sweep_trial
from agent.errors import ConfigError, StrategyError
from agent.scale.executor import Executor
from strategies.registry import strategy_class

SearchKind = Literal["grid", "random", "tpe"]
SEARCHES: tuple[SearchKind, ...] = ("grid", "random", "tpe")
MAX_ASKS_PER_TRIAL = 20
SCHEMA = "optuna"


def study_storage(db_url: str) -> str:
    """The Optuna storage URL for the ledger `db_url` (module contract); creates the PostgreSQL schema."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:"):
            raise ConfigError(
                "a search needs a database file or PostgreSQL for its study, not in-memory SQLite"
            )
        return url.set(database=f"{path}.optuna.db").render_as_string(hide_password=False)
    if url.get_backend_name() == "postgresql":
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        finally:
            engine.dispose()
        query = dict(url.query) | {"options": f"-csearch_path={SCHEMA}"}
        return url.set(query=query).render_as_string(hide_password=False)
    raise ConfigError(f"searches store their study in SQLite or PostgreSQL, not {url.get_backend_name()}")


def run_search(
    kind: SearchKind,
    data: SweepData,
    grid: Mapping[str, list[Any]],
    *,
    n_trials: int,
    metric: str,
    executor: Executor,
    storage: str,
    study_name: str,
    seed: int = 0,
    on_done: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Run `n_trials` trials suggested by `kind` (module contract); [{"params", "metrics"}] in the order
    they were asked."""
    import optuna
    from optuna.trial import TrialState

    if kind not in ("random", "tpe"):
        raise ConfigError(f"--search {kind!r}: use {', '.join(SEARCHES)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed) if kind == "tpe" else optuna.samplers.RandomSampler(seed)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        sampler=sampler,
        direction="minimize" if metric in LOWER_IS_BETTER else "maximize",
    )
    cls = strategy_class(data.spec)
    names = list(grid)
    done: list[dict[str, Any]] = []
    asks = 0
    while len(done) < n_trials:
        batch: list[tuple[Any, Trial]] = []
        while len(batch) < min(executor.workers, n_trials - len(done)):
            if asks >= MAX_ASKS_PER_TRIAL * n_trials:
                raise StrategyError(f"the search found too few valid parameter combinations in {asks} tries")
            asks += 1
            trial = study.ask()
            values = {n: trial.suggest_categorical(n, grid[n]) for n in names}
            try:
                cls.make_params(values)
            except StrategyError:
                study.tell(trial, state=TrialState.FAIL)
                continue
            batch.append((trial, values))
        results = executor.run(sweep_trial, data, [v for _, v in batch])
        for (trial, values), metrics in zip(batch, results, strict=True):
            value = metrics.get(metric, math.nan)
            if math.isfinite(value):
                study.tell(trial, value)
            else:
                study.tell(trial, state=TrialState.FAIL)
            done.append({"params": dict(values), "metrics": metrics})
            if on_done is not None:
                on_done()
    return done
