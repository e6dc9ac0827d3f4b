"""Parameter sweeps: a grid of strategy parameters, each combination backtested, across all cores.

Contracts:
- Grid syntax per parameter: `name=start:stop:step` (stop inclusive), `name=a,b,c` or `name=value`.
  Integers stay integers; anything malformed raises `ConfigError` naming the item.
- Every combination is validated by the strategy's `Params` first; invalid ones (e.g. fast >= slow) are
  skipped and counted, never run.
- Trials run on an executor (`agent.scale.executor`): the local process pool (`workers` processes; 1 = in
  this process) or Ray. Each worker receives the strategy *spec* and the data once and rebuilds the class,
  so user strategies from files work too (their source travels with the data, for workers on other
  machines). The same trial gives the same metrics whichever worker runs it, in any order.
- Results are sorted best first by the chosen metric (descending, except metrics where lower is better);
  undefined values sort last. `luck_sharpe` is the Sharpe ratio the best of N trials reaches by chance
  alone (about sqrt(2 ln N) / sqrt(years)), shown with the selection-bias warning.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agent.backtest.models import EngineConfig, FloatArray, SizingRules
from agent.backtest.runner import run_backtest
from agent.errors import ConfigError, StrategyError
from agent.scale.executor import Executor, LocalExecutor
from strategies.base import Strategy
from strategies.registry import strategy_class

LOWER_IS_BETTER = {"volatility", "max_drawdown_days", "fees_paid", "turnover", "dust_orders"}

Trial = dict[str, Any]


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """`["fast=10:50:10", "slow=100,200"]` -> {"fast": [10, 20, 30, 40, 50], "slow": [100, 200]}."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        name, spec = name.strip(), spec.strip()
        if not sep or not name or not spec:
            raise ConfigError(f"bad --grid {item!r}; use NAME=START:STOP:STEP or NAME=A,B,C")
        if name in grid:
            raise ConfigError(f"--grid {name} given twice")
        try:
            grid[name] = _values(spec)
        except ValueError as e:
            raise ConfigError(f"bad --grid {item!r}: {e}") from None
    return grid


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _values(spec: str) -> list[Any]:
    if ":" not in spec:
        return [_number(v.strip()) for v in spec.split(",") if v.strip()]
    parts = spec.split(":")
    if len(parts) != 3:
        raise ValueError("a range is START:STOP:STEP")
    start, stop, step = (_number(p.strip()) for p in parts)
    if step <= 0 or stop < start:
        raise ValueError("need STEP > 0 and STOP >= START")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    if count > 10_000:
        raise ValueError(f"{count} values; at most 10000 per parameter")
    if all(isinstance(v, int) for v in (start, stop, step)):
        return [int(start + i * step) for i in range(count)]
    return [round(float(start + i * step), 10) for i in range(count)]


def trials(spec: str, grid: Mapping[str, list[Any]]) -> tuple[list[Trial], int, str]:
    """Valid parameter combinations, the number skipped as invalid, and the first reason for skipping."""
    cls = strategy_class(spec)
    unknown = sorted(set(grid) - set(cls.Params.model_fields))
    if unknown:
        raise StrategyError(
            f"unknown parameter {unknown[0]!r} for {cls.name}; known: {', '.join(cls.Params.model_fields)}"
        )
    names = list(grid)
    valid: list[Trial] = []
    skipped, reason = 0, ""
    for combo in itertools.product(*(grid[n] for n in names)):
        values = dict(zip(names, combo, strict=True))
        try:
            cls.make_params(values)
        except StrategyError as e:
            skipped += 1
            reason = reason or str(e)
            continue
        valid.append(values)
    return valid, skipped, reason


@dataclass(frozen=True)
class SweepData:
    """What every trial shares, sent to each worker once: the strategy spec (and a strategy file's source,
    for workers on machines without the file), the candles, costs and sizing."""

    spec: str
    frames: Mapping[str, pd.DataFrame]
    timeframe: str
    rules: FloatArray
    config: EngineConfig
    sizing: SizingRules
    start: pd.Timestamp | None
    source: tuple[str, str] | None = None
    """(file name, text) of a user strategy file, or None for a built-in or an importable module."""


_CLASSES: dict[tuple[str, str | None], type[Strategy]] = {}


def _strategy(data: SweepData) -> type[Strategy]:
    """The strategy class in this worker (loaded once per worker): from the spec, or from the shipped
    source when the file is not on this machine."""
    key = (data.spec, data.source[1] if data.source else None)
    if key not in _CLASSES:
        spec = data.spec
        path, _, name = spec.rpartition(":") if ":" in spec else (spec, "", "")
        if data.source is not None and not Path(path).exists():
            folder = Path(tempfile.mkdtemp(prefix="tradegraph-strategy-"))
            (folder / data.source[0]).write_text(data.source[1], encoding="utf-8")
            spec = f"{folder / data.source[0]}:{name}" if name else str(folder / data.source[0])
        _CLASSES[key] = strategy_class(spec)
    return _CLASSES[key]


def sweep_trial(data: SweepData, values: Trial) -> dict[str, float]:
    """One trial's metrics (the executor's task: pure given its inputs)."""
    cls = _strategy(data)
    result = run_backtest(
        data.frames,
        cls(cls.make_params(values)),
        timeframe=data.timeframe,
        rules=data.rules,
        config=data.config,
        sizing=data.sizing,
        start=data.start,
    )
    return result.metrics


def strategy_source(spec: str) -> tuple[str, str] | None:
    """A user strategy file's (name, text), shipped to workers; None for built-ins and modules."""
    path = spec.rpartition(":")[0] if ":" in spec else spec
    if path.endswith(".py") and Path(path).exists():
        return Path(path).name, Path(path).read_text(encoding="utf-8")
    return None


def run_sweep(
    spec: str,
    values: Sequence[Trial],
    frames: Mapping[str, pd.DataFrame],
    *,
    timeframe: str,
    rules: FloatArray,
    config: EngineConfig,
    sizing: SizingRules,
    start: pd.Timestamp | None,
    workers: int | None = None,
    on_done: Callable[[], None] | None = None,
    executor: Executor | None = None,
) -> list[dict[str, Any]]:
    """Backtest every trial on `executor` (default: the local pool of `workers` processes); returns
    [{"params": ..., "metrics": ...}] in trial order."""
    data = SweepData(spec, dict(frames), timeframe, rules, config, sizing, start, strategy_source(spec))
    runner = executor or LocalExecutor(workers or os.cpu_count() or 1)
    out = runner.run(sweep_trial, data, list(values), None if on_done is None else lambda i, r: on_done())
    return [{"params": dict(v), "metrics": m} for v, m in zip(values, out, strict=True)]


def rank(results: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Results best first by `metric`; NaN or missing values last."""
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0

    def key(row: dict[str, Any]) -> tuple[int, float]:
        value = row["metrics"].get(metric)
        if value is None or math.isnan(float(value)):
            return (1, 0.0)
        return (0, sign * float(value))

    return sorted(results, key=key)


def luck_sharpe(n_trials: int, n_bars: int, periods_per_year: float) -> float:
    """Annualised Sharpe the best of `n_trials` zero-skill trials reaches by chance (approximation)."""
    years = n_bars / periods_per_year
    if n_trials < 2 or years <= 0:
        return 0.0
    return float(np.sqrt(2.0 * np.log(n_trials)) / np.sqrt(years))
