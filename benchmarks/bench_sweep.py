"""Sweep executors side by side: 1,000 trials of a built-in strategy on a year of hourly bars with the local
process pool and with a local Ray instance, trials/s for each, and the speed-up each added worker would
bring, projected from the task timings.

The case: `sma_cross` on BTC/USDT 1h, 2024-09-20 to 2025-09-19 (8,760 bars, the bundled year), a grid of
fast x slow values cut to its first 1,000 valid combinations, the costs of `tradegraph sweep`. Both
executors run the same tasks (`agent.backtest.sweep.sweep_trial`, timed inside the task) with 2 workers;
their metrics are checked equal. Each executor gets one warm-up sweep of 20 trials first (process start,
numba's compile cache, Ray's workers), which is excluded.

Projection: with `n` tasks of mean duration `t` and a per-task dispatch cost `d` measured as
(wall - n t / w) / n on `w` workers, `w'` workers take about max(n t / w', n d): the dispatch cost is the
serial part. The table prints that time's trials/s for 1 to 16 workers.

Run: `.venv/bin/python benchmarks/bench_sweep.py` (needs the ray extra: `pip install -e '.[ray]'`).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from agent.backtest.market import rules_matrix
from agent.backtest.sweep import SweepData, sweep_trial
from agent.backtest.sweep_job import SweepRequest, prepare_sweep
from agent.config import load_settings
from agent.scale.executor import Executor, LocalExecutor, RayExecutor


def timed_trial(data: SweepData, values: dict[str, Any]) -> tuple[dict[str, float], float]:
    """`sweep_trial` and the seconds it took inside the worker."""
    started = time.perf_counter()
    metrics = sweep_trial(data, values)
    return metrics, time.perf_counter() - started


def measure(executor: Executor, data: SweepData, trials: list[dict[str, Any]]) -> dict[str, Any]:
    executor.run(timed_trial, data, trials[:20])  # warm-up
    started = time.perf_counter()
    results = executor.run(timed_trial, data, trials)
    wall = time.perf_counter() - started
    task = sum(s for _, s in results) / len(results)
    dispatch = max(0.0, (wall - len(results) * task / executor.workers) / len(results))
    return {"wall": wall, "task": task, "dispatch": dispatch, "metrics": [m for m, _ in results]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    settings = load_settings()
    request = SweepRequest(
        strategy="sma_cross",
        grid=["fast=2:61:1", "slow=20:200:3"],
        symbols=["BTC/USDT"],
        timeframe="1h",
        start="2024-09-20",
        end="2025-09-19",
        warmup=0,
    )
    job = prepare_sweep(request, settings)
    p = job.prepared
    trials = job.trials[: args.trials]
    data = SweepData(
        "sma_cross", dict(p.window.frames), p.timeframe, rules_matrix(p.rules), p.config, p.sizing,
        p.window.trade_start,
    )  # fmt: skip
    bars = len(p.window.frames["BTC/USDT"])
    console = Console()
    console.print(f"{len(trials)} trials of sma_cross on {bars} bars of BTC/USDT 1h, {args.workers} workers")

    local = measure(LocalExecutor(args.workers), data, trials)
    ray = measure(RayExecutor("auto", args.workers), data, trials)
    same = all(
        a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)
        for a, b in zip(local["metrics"], ray["metrics"], strict=True)
    )

    table = Table(title="Executors, same trials")
    for col in ("executor", "trials/s", "wall s", "task ms (mean)", "dispatch ms / task", "vs local"):
        table.add_column(col, justify="right")
    for name, m in (("local pool", local), ("ray (local)", ray)):
        table.add_row(
            name,
            f"{len(trials) / m['wall']:.0f}",
            f"{m['wall']:.2f}",
            f"{1000 * m['task']:.2f}",
            f"{1000 * m['dispatch']:.3f}",
            f"{local['wall'] / m['wall']:.2f}x",
        )
    console.print(table)
    console.print(f"metrics identical on both executors: {same}")

    proj = Table(title="Projected trials/s by workers (from the task timings)")
    proj.add_column("workers", justify="right")
    for name in ("local pool", "ray"):
        proj.add_column(name, justify="right")
    for w in (1, 2, 4, 8, 16):
        cells = []
        for m in (local, ray):
            n = len(trials)
            seconds = max(n * m["task"] / w, n * m["dispatch"])
            cells.append(f"{n / seconds:.0f}")
        proj.add_row(str(w), *cells)
    console.print(proj)


if __name__ == "__main__":
    main()
