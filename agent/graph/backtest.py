"""The agent over history on a simulated clock: `tradegraph backtest --strategy llm|hybrid`, and the demo.

The same graph as the daemon, fed every bar of the window in order; the clock is the bar being processed.
Bars are settled strictly in order. How many requests are in flight depends on the prompt mode
(`llm.prompt_mode`, recorded with the run's config):
- stateful (default): each prompt shows the portfolio the previous bars produced, so only the symbols of
  one bar go out together (concurrently, the gateway's semaphore);
- stateless: prompts show the market only, so a `DecisionStream` keeps the requests of the next bars in
  flight (up to the gateway's concurrency) while earlier bars settle; the result does not depend on it.
Responses are cached in `llm_calls`, so a rerun of the same window makes no calls and reproduces the ledger
bit for bit. No mid-tick checkpoints: a paper tick has no effect outside its one ledger transaction, so a
killed backtest restarts the interrupted bar from scratch (the answers it had are served from the cache) and
ends with the same ledger; writing a checkpoint after every node cost a third of an agent backtest's time.
The daemon keeps them (`agent.daemon`), where a tick is rare and its interruption is the case to recover. The
progress bar shows decisions/s, requests in flight, latency p50/p95, tokens and the server's prefix-cache hit
rate, with an ETA; the same figures go into the run's metrics (`llm_*`). The run is recorded through
`agent.runs.lifecycle`: kind `agent_backtest` (or `demo`), a fresh time-sorted id unless one is given, `done`
with the report's metrics and path, or `failed` with the error (which is then raised again).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from agent.asyncutil import run_sync
from agent.config import Settings
from agent.db.session import open_db
from agent.errors import DataError
from agent.evaluation.agent_report import write_agent_report
from agent.graph.factory import load_source, open_agent, rule_strategy, trading_rules
from agent.graph.mode import StrategyMode
from agent.graph.nodes import prepare
from agent.graph.runner import AgentRunner, TickOutcome
from agent.graph.stream import DecisionStream
from agent.graph.throughput import Throughput
from agent.llm.schema import DecisionRequest, DecisionResult
from agent.market.candles import utc_timestamp
from agent.market.history import history_bars, history_start_ms
from agent.market.source import CandleSource, FrameSource, ts_ms
from agent.runs.lifecycle import RunKind, fail_run, finish_run, new_run_id


@dataclass(frozen=True)
class AgentBacktest:
    """What an agent backtest produced."""

    run_id: str
    report: Path
    metrics: dict[str, Any]
    outcomes: list[TickOutcome]


def _ms(value: str | None) -> int | None:
    return None if value is None else int(utc_timestamp(value).value // 1_000_000)


def drive(
    runner: AgentRunner, times: list[int], console: Console | None = None, show: bool = True
) -> list[TickOutcome]:
    """Tick through `times` in order. In the stateless prompt mode the next bars' requests are kept in flight
    (`attach_stream`). The progress bar shows the ETA and the model traffic (`Throughput.line`)."""
    rt = runner.rt
    prepare_history(runner, times)
    stream = attach_stream(runner, times)
    if stream is None:
        rt.next_bar = following(times)
    outcomes: list[TickOutcome] = []
    unused = rt.unused_calls
    started = time.perf_counter()
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} bars"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[llm]}"),
            console=console or Console(stderr=True),
            transient=False,
            disable=not show,
        ) as progress:
            task = progress.add_task(runner.run_id, total=len(times), llm="")
            for t in times:
                outcomes.append(runner.tick(t))
                if show:
                    stats = stream.stats() if stream is not None else None
                    rt.unused_calls = unused + (stats.unused if stats is not None else 0)
                    in_flight = stats.in_flight if stats is not None else 0
                    line = Throughput.of(rt, time.perf_counter() - started, in_flight).line()
                    progress.update(task, advance=1, llm=line)
    finally:
        if stream is not None:
            stream.close()
            rt.unused_calls = unused + stream.stats().unused
            rt.stream = None
        rt.next_bar = None
    rt.elapsed_s += time.perf_counter() - started
    return outcomes


def following(times: list[int]) -> Callable[[int], int | None]:
    """The bar after t in `times` (None after the last, or for a bar not in `times`)."""
    after = dict(zip(times, times[1:], strict=False))
    return after.get


def prepare_history(runner: AgentRunner, times: list[int]) -> None:
    """Hand the prompt builder each symbol's history up to the window's last bar once, so indicators and
    complete periods are computed once for the run, not per bar (`MarketContextBuilder.prepare`); every
    prompt still reads only the bars up to its own t."""
    rt = runner.rt
    prepare = getattr(rt.builder, "prepare", None)
    if prepare is None or not times:
        return
    for symbol in rt.symbols:
        prepare(symbol, rt.source.history(symbol, times[-1]))


def attach_stream(runner: AgentRunner, times: list[int]) -> DecisionStream | None:
    """In the stateless prompt mode, a `DecisionStream` over `times` for the runner's analyse node, keeping
    twice the gateway's concurrency of requests ahead; None otherwise (or without a model). A symbol is not
    asked ahead for a bar it has no candle at (the graph skips it there: `_has_bar`)."""
    rt = runner.rt
    if rt.gateway is None or rt.builder is None or rt.settings.llm.prompt_mode != "stateless":
        return None
    gateway = rt.gateway
    submit = getattr(gateway, "submit_many", None)
    if submit is None:  # a gateway without a background loop (test fakes): answered on submission

        def submit(requests: Sequence[DecisionRequest]) -> Future[list[DecisionResult]]:
            done: Future[list[DecisionResult]] = Future()
            done.set_result(run_sync(gateway.decide_many(requests)))
            return done

    window = max(1, math.ceil(2 * rt.settings.llm.concurrency / max(1, len(rt.symbols))))
    ahead = _has_bar(rt.source, rt.symbols, times[-1]) if times else None
    rt.stream = DecisionStream(
        times, rt.symbols, lambda s, t: prepare(rt, s, t, None)[1], submit, window, ahead=ahead
    )
    return rt.stream


def _has_bar(source: CandleSource, symbols: Sequence[str], last: int) -> Callable[[str, int], bool]:
    """Whether a symbol has a candle opening exactly at t (else the observe node skips it at t)."""
    opens = {s: ts_ms(source.history(s, last).index) for s in symbols}

    def has_bar(symbol: str, t: int) -> bool:
        times = opens[symbol]
        i = int(np.searchsorted(times, t))
        return i < len(times) and int(times[i]) == t

    return has_bar


def run_agent_backtest(
    settings: Settings,
    *,
    strategy: str,
    start: str | None,
    end: str | None,
    run_id: str | None = None,
    kind: RunKind = RunKind.AGENT_BACKTEST,
    reports_dir: Path | None = None,
    params: dict[str, Any] | None = None,
    last_bars: int | None = None,
    console: Console | None = None,
    show_progress: bool = True,
    source: FrameSource | None = None,
    history: int | None = None,
) -> AgentBacktest:
    """Run the graph over [start, end) (or the last `last_bars` bars) and write its report.

    `source` defaults to every stored or bundled candle of the configured symbols; either way it is cut to the
    history a daemon over the same window reads (`agent.market.history.history_bars` bars before the first
    bar; `history` overrides it, as the daemon's `--history-bars`), so both paths build the same prompts. The
    report goes to `<reports_dir>/<run id>/` (default `settings.reports_dir`), recorded as an absolute path.
    """
    reports_dir = Path(reports_dir or settings.reports_dir).absolute()
    source = source if source is not None else load_source(settings)
    times = source.bar_times(_ms(start), _ms(end))
    if last_bars is not None:
        times = times[-last_bars:]
    if not times:
        raise DataError(f"no {settings.timeframe} bars for {', '.join(settings.symbols)} in [{start}, {end})")
    rule = rule_strategy(settings, strategy, params)
    warmup = rule.warmup_bars() if rule is not None else 0
    bars = history_bars(StrategyMode.of(strategy).asks_model, warmup, history)
    source = source.since(history_start_ms(times[0], bars, settings.timeframe))
    kind = RunKind(kind)
    run_id = run_id or new_run_id(kind)
    engine, factory = open_db(settings.db_url)
    try:
        try:
            with open_agent(
                settings,
                run_id=run_id,
                kind=kind,
                strategy=strategy,
                params=params,
                source=source,
                factory=factory,
                start_ts=times[0],
                end_ts=times[-1],
                checkpoint=False,
            ) as runner:
                outcomes = drive(runner, times, console, show_progress)
                traffic = Throughput.of(runner.rt, runner.rt.elapsed_s) if runner.rt.gateway else None
                header = run_header(runner, strategy, times, bars)
            report, metrics = write_agent_report(
                reports_dir / run_id,
                factory,
                run_id,
                source,
                settings,
                trading_rules(settings),
                title=f"tradegraph {strategy} run {run_id}",
                header=header,
                traffic=traffic.metrics() if traffic is not None else None,
            )
        except BaseException as e:  # recorded as failed (when the run was created), then raised again
            fail_run(factory, run_id, e)
            raise
        if traffic is not None:
            metrics = {**metrics, **traffic.metrics(), "llm_prompt_mode": settings.llm.prompt_mode}
        finish_run(factory, run_id, metrics, str(report))
        return AgentBacktest(run_id, report, metrics, outcomes)
    finally:
        engine.dispose()


def run_header(runner: AgentRunner, strategy: str, times: list[int], history: int) -> dict[str, str]:
    """What an agent backtest was, for its report's header: strategy, window and history; for a model's run
    also the model, the endpoint and its profile, the prompt mode and the prompt budget."""
    rt, s = runner.rt, runner.rt.settings

    def day(ms: int) -> str:
        return str(pd.Timestamp(ms, unit="ms", tz="UTC"))[:16]

    out = {
        "strategy": strategy,
        "symbols": ", ".join(rt.symbols),
        "window": f"{day(times[0])} .. {day(times[-1])} UTC, {len(times)} {s.timeframe} bars",
        "history before the first bar": f"{history} bars",
    }
    if rt.gateway is not None:
        out |= {
            "model": str(getattr(rt.gateway, "model", None) or s.llm.model or "-"),
            "endpoint": str(getattr(rt.gateway, "endpoint", "-")),
            "profile": s.llm.profile,
            "prompt mode": s.llm.prompt_mode,
            "prompt budget": f"{rt.budget_tokens} tokens" if rt.budget_tokens else "-",
            "thinking": s.llm.thinking,
            "leakage control": "on" if s.llm.leakage_control else "off",
        }
    return out
