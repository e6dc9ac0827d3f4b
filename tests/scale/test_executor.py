"""The executor seam: a sweep and a campaign give the same results on the local pool and on a local Ray
instance (2 CPUs), a trial whose worker is killed is retried and counted once, and a SQLite ledger shared
with other nodes is refused with one line."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from agent.backtest.market import rules_matrix
from agent.backtest.sweep import SweepData, run_sweep, sweep_trial
from agent.backtest.sweep_job import SweepJob, SweepRequest, finish_sweep, prepare_sweep
from agent.config import DEFAULT_DATA_DIR, load_settings
from agent.db.models import Run
from agent.db.session import open_db
from agent.errors import ConfigError
from agent.eval.campaign import load_campaign
from agent.eval.runner import run_campaign
from agent.scale.executor import LocalExecutor, RayExecutor, check_ledger, make_executor
from agent.testing.vllm_emulator import VLLMEmulator
from tests.eval.test_campaign import CAMPAIGN
from tests.graph.helpers import emulator_settings

REQUEST = SweepRequest(
    strategy="sma_cross",
    grid=["fast=5:25:5", "slow=30:60:10"],
    symbols=["BTC/USDT"],
    timeframe="1h",
    start="2025-03-01",
    end="2025-06-01",
)


def _job(tmp_path: Path, **kw: Any) -> tuple[SweepJob, Any]:
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    return prepare_sweep(REQUEST.__class__(**{**REQUEST.__dict__, **kw}), settings), settings


def _same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert [r["params"] for r in a] == [r["params"] for r in b]
    for x, y in zip(a, b, strict=True):
        assert x["metrics"].keys() == y["metrics"].keys()
        for k, v in x["metrics"].items():
            w = y["metrics"][k]
            assert (math.isnan(v) and math.isnan(w)) or v == w, (x["params"], k, v, w)


def _sweep(job: SweepJob, executor: Any) -> list[dict[str, Any]]:
    p = job.prepared
    return run_sweep(
        job.request.strategy,
        job.trials,
        p.window.frames,
        timeframe=p.timeframe,
        rules=rules_matrix(p.rules),
        config=p.config,
        sizing=p.sizing,
        start=p.window.trade_start,
        executor=executor,
    )


def test_a_sweep_gives_the_same_metrics_on_the_local_pool_and_on_ray(tmp_path: Path, ray_local: Any) -> None:
    job, _ = _job(tmp_path)
    local = _sweep(job, LocalExecutor(2))
    on_ray = _sweep(job, RayExecutor())
    assert len(local) == len(job.trials) == 20
    _same(local, on_ray)
    _same(local, _sweep(job, LocalExecutor(1)))


def test_a_sweep_on_ray_records_every_trial(tmp_path: Path, ray_local: Any) -> None:
    job, settings = _job(tmp_path, executor="ray")
    outcome = finish_sweep(job, settings)
    engine, factory = open_db(settings.db_url)
    try:
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(Run).where(Run.kind == "sweep")) == 20
    finally:
        engine.dispose()
    assert len(outcome.ranked) == 20


def dying_trial(shared: tuple[SweepData, str, dict[str, Any]], values: dict[str, Any]) -> dict[str, float]:
    """`sweep_trial`, except that the first worker to reach the victim's trial dies (the process exits)."""
    data, marker, victim = shared
    if values == victim and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return sweep_trial(data, values)


def test_a_trial_whose_worker_dies_is_retried_and_counted_once(tmp_path: Path, ray_local: Any) -> None:
    job, _ = _job(tmp_path)
    p = job.prepared
    data = SweepData(
        "sma_cross", dict(p.window.frames), p.timeframe, rules_matrix(p.rules), p.config, p.sizing,
        p.window.trade_start,
    )  # fmt: skip
    marker = tmp_path / "died"
    victim = job.trials[7]
    done: list[int] = []
    got = RayExecutor().run(dying_trial, (data, str(marker), victim), job.trials, lambda i, r: done.append(i))
    assert marker.exists(), "a worker died in the middle of the sweep"
    assert sorted(done) == list(range(len(job.trials))), "every trial reported exactly once"
    want = LocalExecutor(1).run(sweep_trial, data, job.trials)
    _same(
        [{"params": v, "metrics": m} for v, m in zip(job.trials, got, strict=True)],
        [{"params": v, "metrics": m} for v, m in zip(job.trials, want, strict=True)],
    )


def test_a_sqlite_ledger_shared_with_other_nodes_is_refused(ray_local: Any) -> None:
    ray_executor = RayExecutor()
    with pytest.raises(ConfigError) as e:
        check_ledger(ray_executor, "sqlite:///ledger.db", nodes_here=lambda: False)
    assert "\n" not in str(e.value) and "PostgreSQL" in str(e.value)
    check_ledger(ray_executor, "sqlite:///ledger.db")  # this local instance: every node is this machine
    check_ledger(ray_executor, "postgresql+psycopg://u@db/x", nodes_here=lambda: False)
    check_ledger(LocalExecutor(2), "sqlite:///ledger.db", nodes_here=lambda: False)
    with pytest.raises(ConfigError, match="use local or ray"):
        make_executor("dask")


def test_a_campaign_gives_the_same_results_locally_and_on_ray(tmp_path: Path, ray_local: Any) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CAMPAIGN, encoding="utf-8")
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "binance").symlink_to(DEFAULT_DATA_DIR / "binance", target_is_directory=True)
    results = {}
    with VLLMEmulator(latency_s=0.0, max_model_len=65536) as emu:
        for name, executor in (("local", LocalExecutor(1)), ("ray", RayExecutor())):
            settings = emulator_settings(
                f"sqlite:///{tmp_path / f'{name}.db'}", emu.base_url, data_dir=folder
            )
            campaign = load_campaign(path, settings)
            results[name] = run_campaign(
                campaign, settings, tmp_path / name, executor=executor, show_progress=False
            )
    for a, b in zip(results["local"], results["ray"], strict=True):
        assert a.cell.key == b.cell.key and a.run_id == b.run_id
        assert a.equity.tolist() == b.equity.tolist(), a.cell.key
        assert a.metrics.strategy.numbers() == pytest.approx(b.metrics.strategy.numbers(), nan_ok=True)


def test_a_tpe_search_on_two_ray_workers_stores_every_trial_in_one_postgres_study(
    pg_url: str, ray_local: Any
) -> None:
    import optuna

    from agent.backtest.search import study_storage
    from agent.db.session import open_db as open_ledger

    settings = load_settings(database_url=pg_url)
    request = REQUEST.__class__(**{**REQUEST.__dict__, "grid": ["fast=2:40:2", "slow=30:90:5"]})
    job = prepare_sweep(
        request.__class__(**{**request.__dict__, "executor": "ray", "search": "tpe", "n_trials": 50}),
        settings,
    )
    outcome = finish_sweep(job, settings)
    assert len(outcome.ranked) == 50, "the selection-bias warning counts every trial run"
    study = optuna.load_study(study_name=outcome.sweep_id, storage=study_storage(pg_url))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 50 and study.best_value == max(t.value for t in complete)
    engine, factory = open_ledger(pg_url)  # the ledger is untouched by Optuna's tables (its own schema)
    try:
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(Run).where(Run.kind == "sweep")) == 50
    finally:
        engine.dispose()


def test_a_search_needs_a_trial_count_and_a_known_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs --trials"):
        _job(tmp_path, search="tpe")
    with pytest.raises(ConfigError, match="--search 'bayes'"):
        _job(tmp_path, search="bayes", n_trials=5)


def test_a_random_search_is_seeded_and_runs_locally(tmp_path: Path) -> None:
    job, settings = _job(tmp_path, search="random", n_trials=6, seed=3)
    a = [r["params"] for r in finish_sweep(job, settings).ranked]
    b = [r["params"] for r in finish_sweep(job, settings).ranked]
    assert len(a) == 6 and a == b


def test_a_strategy_file_travels_with_the_sweep_data_to_a_worker_without_it(tmp_path: Path) -> None:
    from agent.backtest.sweep import strategy_source

    source = tmp_path / "mine.py"
    source.write_text(
        "from strategies.crossover import SmaCross\n\n\nclass Mine(SmaCross):\n    name = 'mine'\n",
        encoding="utf-8",
    )
    job, _ = _job(tmp_path)
    p = job.prepared
    shipped = strategy_source(f"{source}:Mine")
    assert shipped == ("mine.py", source.read_text(encoding="utf-8"))
    gone = tmp_path / "elsewhere" / "mine.py"  # the spec names a path that the worker does not have
    data = SweepData(
        f"{gone}:Mine", dict(p.window.frames), p.timeframe, rules_matrix(p.rules), p.config, p.sizing,
        p.window.trade_start, shipped,
    )  # fmt: skip
    values = job.trials[0]
    reference = SweepData(
        "sma_cross",
        *[getattr(data, f) for f in ("frames", "timeframe", "rules", "config", "sizing", "start")],
    )
    assert sweep_trial(data, values) == sweep_trial(reference, values)
