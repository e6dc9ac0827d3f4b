"""Daemon tick overhead, excluding the LLM: p50/p95 per tick over a few hundred ticks, 5 symbols, warm data,
SQLite ledger (target: p50 <= 100 ms).

Data: BTC, ETH, SOL 1h from the bundled sample (`data/binance`), BNB and XRP 1h from the shared full history
(`agent.config.SHARED_DIR / data/binance`), cut to the bundled year so all five have the same 8,761 bars.
Every frame is in memory before timing starts ("warm"); the first `--warmup` ticks are not timed.

Rows (each on its own fresh SQLite file, checkpoints on, as the daemon runs):
1. `runner.tick` with the rule strategy `sma_cross` (5/20): graph, paper broker, risk layer, one ledger
   transaction, LangGraph checkpoints.
2. the same with the `llm` strategy and a fake gateway that answers at once (`agent.testing.fakes`): adds the
   allowance screen and prompt building for every symbol with a choice; model time is zero by construction.
3. one whole daemon wake-up per bar, as live: `TickJob` refreshing the candle store through the replay
   exchange (one new bar per symbol: download, validate, atomic Feather write), the point-in-time reload,
   due-bar selection, the rule tick, the journal row and the lease heartbeat.

Run: `.venv/bin/python benchmarks/bench_tick.py [--ticks 300] [--profile]`; `--profile` prints a
pyinstrument profile of row 1 (`pip install pyinstrument`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agent.config import DEFAULT_DATA_DIR, SHARED_DIR, Settings  # noqa: E402
from agent.market.candles import file_name, read_feather  # noqa: E402

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT"]
PARAMS = {"fast": 5, "slow": 20}
HOUR = 3_600_000
TARGET_P50_MS = 100.0
console = Console()


def load_frames() -> dict[str, pd.DataFrame]:
    """The five 1h frames over the bundled year (see the module docstring)."""
    frames = {}
    for symbol in SYMBOLS:
        bundled = DEFAULT_DATA_DIR / "binance" / file_name(symbol, "1h")
        frames[symbol] = read_feather(
            bundled if bundled.exists() else SHARED_DIR / "data" / "binance" / file_name(symbol, "1h")
        )
    first = frames["BTC/USDT"].index[0]
    last = frames["BTC/USDT"].index[-1]
    return {s: f[(f.index >= first) & (f.index <= last)] for s, f in frames.items()}


def bench_settings(folder: Path, strategy: str) -> Settings:
    """A fresh SQLite ledger in `folder`, the five symbols, offline replay rules."""
    return Settings(
        symbols=SYMBOLS,
        strategy=strategy,
        data_dir=folder,
        database_url=f"sqlite:///{folder / 'bench.db'}",
        llm={"context_tokens": 4096},
    )


def percentiles(seconds: list[float]) -> tuple[float, float, float]:
    """p50, p95 and mean in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))], statistics.fmean(ms)


def timed(step: Callable[[int], Any], bars: list[int], warmup: int) -> list[float]:
    """Run `step` over `bars`; the durations after the first `warmup`."""
    out = []
    for i, bar in enumerate(bars):
        began = time.perf_counter()
        step(bar)
        if i >= warmup:
            out.append(time.perf_counter() - began)
    return out


@contextmanager
def rule_runner(folder: Path, frames: dict[str, pd.DataFrame]) -> Iterator[Any]:
    """`open_agent` with `sma_cross` over in-memory frames."""
    from agent.graph.factory import open_agent
    from agent.market.source import FrameSource

    with open_agent(
        bench_settings(folder, "sma_cross"),
        run_id="bench-rule",
        kind="daemon",
        params=PARAMS,
        source=FrameSource(frames),
    ) as runner:
        yield runner


@contextmanager
def llm_runner(folder: Path, frames: dict[str, pd.DataFrame]) -> Iterator[Any]:
    """The `llm` strategy with an instant fake gateway and the real context builder."""
    from agent.graph.runner import open_runner, replay_rules
    from agent.llm.context import MarketContextBuilder
    from agent.llm.tokens import EstimateTokenCounter
    from agent.market.source import FrameSource
    from agent.testing.fakes import FakeGateway

    settings = bench_settings(folder, "llm")
    builder = MarketContextBuilder.from_settings(settings, counter=EstimateTokenCounter())
    with open_runner(
        settings,
        run_id="bench-llm",
        kind="daemon",
        strategy="llm",
        source=FrameSource(frames),
        rules=replay_rules(settings, SYMBOLS),
        gateway=FakeGateway(),
        builder=builder,
        budget_tokens=4096,
    ) as runner:
        yield runner


def bench_wakes(folder: Path, frames: dict[str, pd.DataFrame], bars: list[int], warmup: int) -> list[float]:
    """Whole daemon wake-ups, one new bar each (row 3)."""
    from agent.daemon.clock import ManualClock
    from agent.daemon.feed import CachedStore, CandleFeed
    from agent.daemon.lease import Holder, Lease
    from agent.daemon.plan import Window
    from agent.daemon.signals import StopSignal
    from agent.daemon.tick_job import TickJob
    from agent.db.session import open_db
    from agent.graph.factory import open_agent
    from agent.market.replay import ReplayExchange
    from agent.market.retry import RetryPolicy
    from agent.market.service import MarketDataService

    settings = bench_settings(folder, "sma_cross")
    engine, factory = open_db(settings.db_url)
    exchange = ReplayExchange(folder, frames={(s, "1h"): f for s, f in frames.items()})
    service = MarketDataService(exchange, CachedStore(folder), RetryPolicy(max_retries=0))
    feed = CandleFeed(service, SYMBOLS, "1h", bars[0] - 2000 * HOUR, set_exchange_clock=True)
    clock = ManualClock(bars[0])
    lease = Lease(factory, Holder.current(), 60)
    lease.acquire("bench-wake", "replay")
    try:
        with open_agent(
            settings, run_id="bench-wake", kind="daemon", params=PARAMS, source=feed.source, factory=factory
        ) as runner:
            job = TickJob(
                runner,
                feed,
                clock,
                Window(bars[0]),
                factory=factory,
                stale_after_bars=2,
                max_bars=1,
                stop=StopSignal(),
                lease=lease,
            )
            job()  # back-fills the store (not timed)

            def wake(bar: int) -> None:
                clock.set(bar + HOUR)
                report = job()
                assert report.ticked == 1 and report.skipped is None, report

            return timed(wake, bars, warmup)
    finally:
        lease.release()
        engine.dispose()


def main() -> None:
    """Measure and print the table (and the profile with `--profile`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=300, help="timed ticks per row")
    parser.add_argument("--warmup", type=int, default=20, help="untimed ticks first")
    parser.add_argument("--profile", action="store_true", help="pyinstrument profile of the rule tick")
    parser.add_argument("--skip-llm", action="store_true", help="skip row 2")
    parser.add_argument("--skip-wake", action="store_true", help="skip row 3")
    args = parser.parse_args()

    frames = load_frames()
    times = [int(t.value // 1_000_000) for t in frames["BTC/USDT"].index]
    bars = times[-(args.ticks + args.warmup) :]
    console.print(
        f"{len(SYMBOLS)} symbols x {len(times)} 1h bars in memory; {args.warmup} warm-up + "
        f"{args.ticks} timed ticks per row; SQLite ledger with checkpoints"
    )
    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        with rule_runner(Path(tmp) / "rule", frames) as runner:
            if args.profile:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005)
                profiler.start()
            rows.append(("runner.tick, sma_cross", timed(runner.tick, bars, args.warmup)))
            if args.profile:
                profiler.stop()
        if not args.skip_llm:
            with llm_runner(Path(tmp) / "llm", frames) as runner:
                llm_ticks = timed(runner.tick, bars, args.warmup)
            rows.append(("runner.tick, llm + instant fake gateway", llm_ticks))
        if not args.skip_wake:
            rows.append(
                (
                    "daemon wake-up (refresh + tick + journal + heartbeat)",
                    bench_wakes(Path(tmp) / "wake", frames, bars, args.warmup),
                )
            )

    table = Table(title="Per-tick overhead, LLM excluded (ms)")
    for col in ("path", "p50", "p95", "mean", "ticks"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for name, seconds in rows:
        p50, p95, mean = percentiles(seconds)
        table.add_row(name, f"{p50:.1f}", f"{p95:.1f}", f"{mean:.1f}", str(len(seconds)))
    console.print(table)
    p50 = percentiles(rows[0][1])[0]
    verdict = "[green]meets[/]" if p50 <= TARGET_P50_MS else "[red]misses[/]"
    console.print(f"target p50 <= {TARGET_P50_MS:.0f} ms for the rule tick: {verdict} ({p50:.1f} ms)")
    if args.profile:
        console.print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
