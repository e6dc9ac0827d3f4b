"""Look-ahead check speed: the default 2,500 cut points on a year of hourly bars, per built-in strategy.

Run: `.venv/bin/python benchmarks/bench_lookahead.py [--rounds 3] [--symbol BTC/USDT]`. Prints a Rich table:
for every built-in strategy (default parameters, then with an ATR exit plan, which adds the stop-loss,
take-profit and trailing rows to every comparison), the usable cut points, the cuts checked, the best wall
time of `--rounds` runs of `agent.backtest.lookahead.check_lookahead` at its default, the process CPU time of
that run (what the wall time is on an idle core: other jobs on the machine inflate the wall time, not this)
and the wall time per cut. The acceptance bound of issue 13 is 2 s for 2,500 cuts; tests never time anything,
this script does.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agent.backtest.lookahead import DEFAULT_CUTS, check_lookahead
from agent.config import DEFAULT_DATA_DIR
from agent.market.candles import read_feather
from strategies import BUILTINS, build_strategy

EXIT_PLAN = {"stop_atr": 2.0, "take_profit_atr": 4.0, "trailing_atr": 3.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per strategy (best is shown)")
    parser.add_argument("--symbol", default="BTC/USDT", help="bundled 1h symbol")
    args = parser.parse_args()
    path = Path(DEFAULT_DATA_DIR) / "binance" / f"{args.symbol.replace('/', '_')}-1h.feather"
    candles = read_feather(path)
    console = Console(width=120)
    table = Table(
        title=f"check_lookahead at its default ({DEFAULT_CUTS} cuts) on {args.symbol} 1h, {len(candles)} bars"
    )
    for col in ("strategy", "usable", "cuts", "wall s", "CPU s", "µs / cut", "findings"):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    worst, worst_cpu = 0.0, 0.0
    for name in sorted(BUILTINS):
        for plan in ({}, EXIT_PLAN):
            strategy = build_strategy(name, plan)
            best, cpu = float("inf"), float("inf")
            for _ in range(args.rounds):
                t0, c0 = time.perf_counter(), time.process_time()
                result = check_lookahead(strategy, candles, args.symbol)
                wall = time.perf_counter() - t0
                if wall < best:
                    best, cpu = wall, time.process_time() - c0
            worst, worst_cpu = max(worst, best), max(worst_cpu, cpu)
            table.add_row(
                strategy.describe(),
                str(result.usable),
                str(result.cuts),
                f"{best:.3f}",
                f"{cpu:.3f}",
                f"{best / result.cuts * 1e6:.0f}",
                str(len(result.findings)),
            )
    console.print(table)
    console.print(
        f"slowest built-in: {worst:.3f} s wall, {worst_cpu:.3f} s CPU for {DEFAULT_CUTS} cuts (bound: 2 s); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
