"""Run a campaign's cells, each a recorded run, and continue an interrupted campaign where it stopped.

Contracts:
- Everything is checked before the first run is recorded: every rule cell is prepared (strategy,
  parameters, data, conventions; `agent.backtest.service.prepare`), every LLM cell's window has bars for its
  symbols and a hybrid's rule exists. A bad campaign fails with one line and records nothing.
- Rule cells: simulated by the compiled engine and recorded whole or not at all
  (`agent.backtest.service.record_simulated`): kind `backtest`, the campaign id and cell key in its config,
  a report under `<reports>/<campaign id>/<run id>/`. On resume a recorded rule cell is simulated again
  without recording (the engine is deterministic, so its curve is the recorded one; milliseconds).
- LLM cells: `agent.graph.backtest.run_agent_backtest` with the cell's settings
  (without `llm.base_url`, the embedded model's server is started once for all of them)
  (`agent.eval.campaign.llm_settings`), the same graph as the daemon. A cell recorded `done` is read back from
  the ledger (its equity after each bar and its metrics); one left `running` or `failed` by an interrupted
  campaign is run again under the same run id, which resumes it: the answers it had come from the response
  cache, so it ends with the ledger an uninterrupted run writes.
- Cells are tasks of an executor (`agent.scale.executor`; default: one after another in this process, in
  the campaign's order): the rule cells first, then the LLM cells, of which `llm_parallel` run at once so
  that the requests in flight stay within the campaign-wide cap (`[scale] llm_in_flight`, default
  `llm.concurrency`). Within an LLM cell the stateless prompt mode keeps the variant's concurrency of
  requests in flight (`agent.graph.stream`), which is what fills a vLLM server. Each task opens the ledger
  itself; with Ray on several nodes the ledger must be PostgreSQL (`check_ledger`) and LLM cells need an
  `llm.base_url` the workers can reach. Results are the same on any executor, in any order of completion.
- `on_start` is called once the checks pass, `on_cell` after each cell (resumed or run): progress lines.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from agent.backtest.preset import cell_request, preset_settings
from agent.backtest.service import Prepared, prepare, record_simulated, simulate_prepared
from agent.config import Settings
from agent.db.models import Run
from agent.db.session import open_db
from agent.errors import ConfigError, DataError
from agent.eval.campaign import Campaign, EvalCell, llm_settings
from agent.evaluation.agent_report import buy_and_hold, directional_outcomes
from agent.evaluation.frames import decisions_frame, equity_frame
from agent.graph.backtest import run_agent_backtest
from agent.graph.factory import load_source, rule_strategy, trading_rules
from agent.llm.local_server import resolve_endpoint
from agent.market.candles import utc_timestamp
from agent.runs.lifecycle import RunStatus
from agent.runs.metrics import RunMetrics
from agent.scale.executor import Executor, LocalExecutor, check_ledger


@dataclass(frozen=True)
class Calibration:
    """How an LLM cell's confidence matched what followed: its buy/sell/close decisions (not abstentions),
    whether the next bar moved their way (hit rate) and the Brier score of confidence as the probability
    of that (0 is perfect, 0.25 is a coin stated at 0.5)."""

    decisions: int
    hit_rate: float
    mean_confidence: float
    brier: float


@dataclass(frozen=True)
class CellResult:
    """A finished cell: its run, stored metrics, equity after each bar's close and buy & hold's over the
    same bars (both from `initial`), and for LLM cells the calibration."""

    cell: EvalCell
    run_id: str
    metrics: RunMetrics
    equity: pd.Series
    hold: pd.Series
    initial: float
    calibration: Calibration | None
    resumed: bool
    report: str | None


@dataclass(frozen=True)
class CampaignJob:
    """What every cell task shares (sent to each worker once): the campaign, the settings its cells run
    with (the embedded model's URL filled in) and the reports folder."""

    campaign: Campaign
    settings: Settings
    folder: Path
    show_progress: bool = False


def run_campaign(
    campaign: Campaign,
    settings: Settings,
    reports_dir: Path,
    *,
    executor: Executor | None = None,
    console: Console | None = None,
    show_progress: bool = True,
    on_start: Callable[[], None] | None = None,
    on_cell: Callable[[CellResult], None] | None = None,
) -> list[CellResult]:
    """Run (or resume) every cell of `campaign` (module contract) on `executor` (default: one after another
    in this process); `on_start` is called once every cell has been checked, before the first runs."""
    executor = executor or LocalExecutor(1)
    _check(campaign, settings)
    check_ledger(executor, settings.db_url)
    llm_cells = [c.index for c in campaign.cells if c.kind == "llm"]
    rule_cells = [c.index for c in campaign.cells if c.kind == "rule"]
    if llm_cells and settings.llm.base_url is None and not executor.local_only():
        raise ConfigError(
            "LLM cells on Ray workers of other nodes need llm.base_url: a server they can reach"
        )
    if on_start is not None:
        on_start()
    in_process = executor.kind == "local" and executor.workers == 1
    results: dict[int, CellResult] = {}

    def done(indices: list[int]) -> Callable[[int, CellResult], None]:
        def record(i: int, result: CellResult) -> None:
            results[indices[i]] = result
            if on_cell is not None:
                on_cell(result)

        return record

    with ExitStack() as stack:
        if llm_cells and settings.llm.base_url is None:
            url = stack.enter_context(resolve_endpoint(settings))  # the embedded model, started once
            settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"base_url": url})})
        job = CampaignJob(
            campaign, settings, reports_dir.absolute() / campaign.id, show_progress and in_process
        )
        if in_process:
            _CONSOLE["console"] = console
        try:
            executor.run(run_cell, job, rule_cells, done(rule_cells))
            executor.run(run_cell, job, llm_cells, done(llm_cells), parallel=llm_parallel(campaign, settings))
        finally:
            _CONSOLE.pop("console", None)
    return [results[c.index] for c in campaign.cells]


_CONSOLE: dict[str, Console | None] = {}
"""The caller's console, for LLM cells run in this process (a console cannot travel to a worker)."""


def llm_parallel(campaign: Campaign, settings: Settings) -> int:
    """How many LLM cells run at once: the campaign-wide cap on requests in flight (`[scale] llm_in_flight`,
    default `llm.concurrency`) over the largest concurrency of a variant, at least 1."""
    cap = settings.scale.llm_in_flight or settings.llm.concurrency
    widest = max([v.concurrency or settings.llm.concurrency for v in campaign.preset.llm] or [1])
    return max(1, cap // widest)


def run_cell(job: CampaignJob, index: int) -> CellResult:
    """Run (or read back) one cell; the executor's task, on any worker that can reach the ledger."""
    campaign, settings = job.campaign, job.settings
    cell = campaign.cells[index]
    run_id = campaign.run_id(cell)
    engine, factory = open_db(settings.db_url)
    try:
        status = _status(factory, run_id)
        if cell.kind == "rule":
            prepared = prepare(
                cell_request(campaign.preset, cell.as_rule_cell()), preset_settings(campaign.preset, settings)
            )
            return _rule_cell(campaign, cell, prepared, factory, job.folder, run_id, status)
        console = _CONSOLE.get("console")
        return _llm_cell(
            campaign, cell, settings, factory, job.folder, run_id, status, console, job.show_progress
        )
    finally:
        engine.dispose()


def _check(campaign: Campaign, settings: Settings) -> None:
    """Every cell's inputs, checked before anything runs."""
    preset = campaign.preset
    merged = preset_settings(preset, settings)
    for cell in campaign.cells:
        if cell.kind == "rule":
            prepare(cell_request(preset, cell.as_rule_cell()), merged)
            continue
        cs = llm_settings(campaign, cell, settings)
        rule_strategy(cs, cs.strategy)
        source = load_source(cs)
        times = source.bar_times(_ms(cell.window.start), _ms(cell.window.end))
        if not times:
            raise DataError(
                f"campaign cell {cell.key}: no {cs.timeframe} bars for {cell.group} in "
                f"[{cell.window.start}, {cell.window.end})"
            )


def _status(factory: sessionmaker[Session], run_id: str) -> RunStatus | None:
    with factory() as session:
        row = session.get(Run, run_id)
        return None if row is None else RunStatus(row.status)


def _stored(factory: sessionmaker[Session], run_id: str) -> tuple[RunMetrics, str | None]:
    with factory() as session:
        row = session.get_one(Run, run_id)
        metrics = RunMetrics.from_json(row.metrics)
        if metrics is None:
            raise DataError(f"run {run_id} has no metrics")
        return metrics, row.report_path


def _rule_cell(
    campaign: Campaign,
    cell: EvalCell,
    prepared: Prepared,
    factory: sessionmaker[Session],
    folder: Path,
    run_id: str,
    status: RunStatus | None,
) -> CellResult:
    if status is RunStatus.DONE:
        result, hold, _ = simulate_prepared(prepared)
        metrics, report = _stored(factory, run_id)
        resumed = True
    else:
        config = {"campaign": campaign.id, "cell": cell.key}
        spec = cell.rule.spec if cell.rule is not None else cell.strategy
        outcome = record_simulated(prepared, spec, factory, folder, run_id, config)
        result, hold = outcome.result, outcome.hold
        metrics, report = _stored(factory, run_id)
        resumed = False
    index = result.sim.index
    initial = float(prepared.config.initial_cash)
    equity = pd.Series(result.sim.equity, index=index, name=cell.strategy)
    return CellResult(
        cell, run_id, metrics, equity, pd.Series(hold.sim.equity, index=index), initial, None, resumed, report
    )


def _llm_cell(
    campaign: Campaign,
    cell: EvalCell,
    settings: Settings,
    factory: sessionmaker[Session],
    folder: Path,
    run_id: str,
    status: RunStatus | None,
    console: Console | None,
    show_progress: bool,
) -> CellResult:
    cs = llm_settings(campaign, cell, settings)
    source = load_source(cs)  # read once: the run, its buy-and-hold baseline and its outcomes share it
    resumed = status is RunStatus.DONE
    if not resumed:
        run_agent_backtest(
            cs,
            strategy=cs.strategy,
            start=cell.window.start,
            end=cell.window.end,
            run_id=run_id,
            reports_dir=folder,
            console=console,
            show_progress=show_progress,
            source=source,
        )
    metrics, report = _stored(factory, run_id)
    eq = equity_frame(factory, run_id)
    index = pd.DatetimeIndex(eq.index)
    hold, _ = buy_and_hold(source, list(cell.symbols), index, trading_rules(cs), cs)
    outcomes = directional_outcomes(decisions_frame(factory, run_id), source)
    initial = float(cs.broker.initial_cash)
    equity = pd.Series(eq["equity"].to_numpy(dtype=float), index=index, name=cell.strategy)
    return CellResult(cell, run_id, metrics, equity, hold, initial, _calibration(outcomes), resumed, report)


def _calibration(outcomes: pd.DataFrame) -> Calibration:
    if outcomes.empty:
        return Calibration(0, math.nan, math.nan, math.nan)
    confidence = outcomes["confidence"].to_numpy(dtype=float)
    hit = (outcomes["ret"].to_numpy(dtype=float) > 0).astype(float)
    return Calibration(
        len(outcomes),
        float(hit.mean()),
        float(confidence.mean()),
        float(np.mean((confidence - hit) ** 2)),
    )


def _ms(value: str) -> int:
    return int(utc_timestamp(value).value // 1_000_000)
