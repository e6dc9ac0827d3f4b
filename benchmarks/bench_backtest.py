"""Backtest engine benchmark: tradegraph against vectorbt (numba and rust engines), backtesting.py and a plain
numpy reference, end to end, on 100k and 1M bars of synthetic and real BTC/USDT 1h data.

The case is the same for every engine: SMA(20) / SMA(50) crossover, long only, all-in, signal at bar t's
close filled at bar t+1's open, 0.1% fee on each fill's notional, no slippage, no minimum size or
precision. Each engine is timed on the path a user pays for: OHLCV arrays in, signals, simulation,
metrics out (best of `--repeats` runs after one warm-up run, which is excluded). The first call of
tradegraph in a fresh process (a subprocess; numba's on-disk cache warm) is timed separately.

Run: `.venv/bin/python benchmarks/bench_backtest.py` (see benchmarks/README.md; `--quick` = 100k only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import talib
from rich.console import Console
from rich.table import Table

from agent.backtest.metrics import equity_metrics
from agent.backtest.models import EngineConfig, SizingRules
from agent.backtest.reference import all_in_equity, sma
from agent.backtest.runner import run_backtest
from agent.config import SHARED_DIR
from strategies.crossover import SmaCross

FAST, SLOW, FEE, CASH = 20, 50, 0.001, 1e12
BAR_MS = 3_600_000
PERIODS = 8760.0
RULES = np.array([[FEE, 0.0, 0.0, 0.0]])
CONFIG = EngineConfig(initial_cash=CASH, fill="next_open", slippage_bps=0.0, max_participation=0.0)
SIZING = SizingRules(mode="fixed", fraction=1.0, position_cap=1.0, gross_cap=1.0)
BTC_FILE = SHARED_DIR / "data/binance/BTC_USDT-1h.feather"

Arrays = dict[str, np.ndarray]


# ---- data ----------------------------------------------------------------------------------------------


def synthetic(n: int, seed: int = 42) -> Arrays:
    """Seeded geometric random walk with crypto-like hourly volatility (0.6% per bar, ~56% a year)."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.006, n)))
    open_ = np.concatenate(([30_000.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, 0.002, (2, n)))
    return {
        "open": open_,
        "high": np.maximum(open_, close) * (1 + wick[0]),
        "low": np.minimum(open_, close) * (1 - wick[1]),
        "close": close,
        "volume": rng.lognormal(3.0, 1.0, n),
    }


def real_btc(n: int) -> Arrays:
    """The real BTC/USDT 1h history, tiled to `n` bars with price continuity.

    Copies alternate forward and time-reversed (a reversed bar swaps open and close; high, low and volume
    stay), and each copy is rescaled so that its first open equals the previous copy's last close. Prices
    stay in the real range and every bar is a real bar's shape.
    """
    base = pd.read_feather(BTC_FILE)
    cols = {c: base[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
    parts: list[Arrays] = []
    total, last_close, forward = 0, None, True
    while total < n:
        if forward:
            part = {c: v.copy() for c, v in cols.items()}
        else:
            part = {c: v[::-1].copy() for c, v in cols.items()}
            part["open"], part["close"] = part["close"], part["open"]
        if last_close is not None:
            scale = last_close / part["open"][0]
            for c in ("open", "high", "low", "close"):
                part[c] *= scale
        parts.append(part)
        total += len(part["close"])
        last_close, forward = part["close"][-1], not forward
    return {c: np.concatenate([p[c] for p in parts])[:n] for c in cols}


def hourly_index(n: int) -> pd.DatetimeIndex:
    """Hourly UTC bar times from 2000-01-01."""
    return pd.date_range("2000-01-01", periods=n, freq="h", tz="UTC", name="date")


# ---- engines (each: arrays in -> signals -> simulation -> metrics; returns final equity) ---------------


def run_tradegraph(data: Arrays, index: pd.DatetimeIndex) -> float:
    """tradegraph's public path: candle frame -> strategy -> compiled engine -> metrics."""
    frame = pd.DataFrame(data, index=index, copy=False)
    result = run_backtest(
        {"X": frame},
        SmaCross(fast=FAST, slow=SLOW),
        timeframe="1h",
        rules=RULES,
        config=CONFIG,
        sizing=SIZING,
    )
    return result.metrics["final_equity"]


def run_numpy(data: Arrays, index: pd.DatetimeIndex) -> float:
    """Loop-free numpy: cumsum SMAs, cumulative-product equity, numpy metrics."""
    close = data["close"]
    signal = (sma(close, FAST) > sma(close, SLOW)).astype(np.float64)
    equity = all_in_equity(data["open"], close, signal, FEE, CASH)
    metrics = equity_metrics(equity, CASH, PERIODS, BAR_MS)
    return metrics["final_equity"]


def _vbt_signals(data: Arrays) -> tuple[np.ndarray, np.ndarray]:
    signal = talib.SMA(data["close"], FAST) > talib.SMA(data["close"], SLOW)
    entries = np.zeros(len(signal), dtype=bool)
    exits = np.zeros(len(signal), dtype=bool)
    entries[1:], exits[1:] = signal[:-1], ~signal[:-1]
    return entries, exits


def run_vectorbt(engine: str) -> Callable[[Arrays, pd.DatetimeIndex], float]:
    """vectorbt `Portfolio.from_signals` with the given engine, fills at the open, no minimum size."""
    import vectorbt as vbt

    def run(data: Arrays, index: pd.DatetimeIndex) -> float:
        entries, exits = _vbt_signals(data)
        pf = vbt.Portfolio.from_signals(
            data["close"],
            entries,
            exits,
            price=data["open"],
            fees=FEE,
            init_cash=CASH,
            min_size=0.0,
            size_granularity=np.nan,
            engine=engine,
            freq="1h",
        )
        for metric in (
            pf.total_return,
            pf.annualized_volatility,
            pf.sharpe_ratio,
            pf.sortino_ratio,
            pf.max_drawdown,
            pf.trades.win_rate,
            pf.trades.profit_factor,
        ):
            metric()
        return float(pf.value().to_numpy()[-1])

    return run


def run_backtesting_py(data: Arrays, index: pd.DatetimeIndex) -> float:
    """backtesting.py `FractionalBacktest` (whole satoshis) with TA-Lib SMAs; its stats are its metrics."""
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest

    class SmaCrossBt(Strategy):
        def init(self) -> None:
            close = np.asarray(self.data.Close, dtype=np.float64)
            self.fast = self.I(talib.SMA, close, FAST)
            self.slow = self.I(talib.SMA, close, SLOW)

        def next(self) -> None:
            if self.fast[-1] > self.slow[-1]:
                if not self.position:
                    self.buy()
            elif self.position:
                self.position.close()

    frame = pd.DataFrame({k.capitalize(): v for k, v in data.items()}, index=index.tz_localize(None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = FractionalBacktest(
            frame,
            SmaCrossBt,
            cash=CASH,
            commission=FEE,
            trade_on_close=False,
            finalize_trades=False,
            fractional_unit=1e-8,
        )
        stats = bt.run()
    return float(stats["Equity Final [$]"])


# ---- timing --------------------------------------------------------------------------------------------


def timed_round_robin(
    engines: dict[str, Callable[[Arrays, pd.DatetimeIndex], float]],
    data: Arrays,
    index: pd.DatetimeIndex,
    repeats: int,
) -> dict[str, tuple[float, float]]:
    """{engine: (best wall seconds, final equity)}: one untimed warm-up each, then `repeats` rounds in which
    every engine runs once, so load from other processes hits all engines alike."""
    equity = {name: fn(data, index) for name, fn in engines.items()}
    best = dict.fromkeys(engines, float("inf"))
    for _ in range(repeats):
        for name, fn in engines.items():
            t0 = time.perf_counter()
            equity[name] = fn(data, index)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: (best[name], equity[name]) for name in engines}


FRESH = """
import json, os, time
t0 = time.perf_counter()
from {module} import synthetic, hourly_index, run_tradegraph
t1 = time.perf_counter()
data, index = synthetic({n}), hourly_index({n})
t2, c2 = time.perf_counter(), time.process_time()
equity = run_tradegraph(data, index)
t3, c3 = time.perf_counter(), time.process_time()
out = {{"import_s": t1 - t0, "first_call_s": t3 - t2, "first_call_cpu_s": c3 - c2, "equity": equity}}
print(json.dumps(out | {{"load": os.getloadavg()[0]}}))
"""

NUMBA_INIT = """
t = time.perf_counter()
from numba.core.registry import cpu_target
cpu_target.target_context.refresh()
numba_init_s = time.perf_counter() - t
"""


def fresh_process(n: int, numba_first: bool = False) -> dict[str, float]:
    """Import and first-call time of tradegraph in a new interpreter (numba cache already on disk).

    With `numba_first`, numba's one-time initialisation (its compiler registries, which import scipy.linalg
    to probe BLAS) runs before the timed call, to show how much of the first call is numba's fixed cost.
    """
    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here), str(here.parent)]))
    code = FRESH.format(n=n, module=Path(__file__).stem)
    if numba_first:
        code = code.replace("t2, c2 =", NUMBA_INIT + "t2, c2 =")
        code = code.replace('"load":', '"numba_init_s": numba_init_s, "load":')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- main ----------------------------------------------------------------------------------------------


def bench_dataset(
    name: str, data: Arrays, repeats: int, bt_max: int, console: Console
) -> list[dict[str, Any]]:
    """Time every engine on one dataset; rows for the table."""
    from vectorbt._engine import is_rust_available

    n = len(data["close"])
    index = hourly_index(n)
    engines: dict[str, Callable[[Arrays, pd.DatetimeIndex], float]] = {
        "tradegraph": run_tradegraph,
        "numpy reference": run_numpy,
        "vectorbt (numba)": run_vectorbt("numba"),
    }
    if is_rust_available():
        engines["vectorbt (rust)"] = run_vectorbt("rust")
    else:
        console.print(
            "[yellow]vectorbt-rust not installed (pip install 'vectorbt[rust]'): rust engine skipped[/]"
        )
    timings = timed_round_robin(engines, data, index, repeats)
    if n <= bt_max:
        t0 = time.perf_counter()
        equity = run_backtesting_py(data, index)
        timings["backtesting.py"] = (time.perf_counter() - t0, equity)
    for engine, (seconds, _) in timings.items():
        console.print(f"  {name} {engine}: {seconds:.4f} s")
    return [
        {"dataset": name, "bars": n, "engine": e, "seconds": s, "equity": q} for e, (s, q) in timings.items()
    ]


def report(rows: list[dict[str, Any]], extrapolated: dict[str, float], console: Console) -> None:
    """One Rich table per dataset: speed, tradegraph's ratio, final equity and agreement."""
    for name in dict.fromkeys(r["dataset"] for r in rows):
        subset = [r for r in rows if r["dataset"] == name]
        tg = next(r for r in subset if r["engine"] == "tradegraph")
        ref = next(r for r in subset if r["engine"] == "numpy reference")
        table = Table(title=f"{name}: SMA(20/50), 0.1% fee, all-in, next-bar-open fills, {tg['bars']:,} bars")
        for col in (
            "engine",
            "seconds",
            "bars/s",
            "tradegraph speed-up",
            "final equity",
            "rel. diff vs numpy",
        ):
            table.add_column(col, justify="left" if col == "engine" else "right")
        for r in subset:
            ratio = r["seconds"] / tg["seconds"]
            diff = abs(r["equity"] / ref["equity"] - 1.0)
            table.add_row(
                r["engine"],
                f"{r['seconds']:.4f}",
                f"{r['bars'] / r['seconds']:,.0f}",
                f"{ratio:.2f}x",
                f"{r['equity']:.10g}",
                f"{diff:.1e}",
            )
        key = f"{name}:backtesting.py"
        if key in extrapolated:
            seconds = extrapolated[key]
            table.add_row(
                "backtesting.py (extrapolated)",
                f"{seconds:.1f}",
                f"{tg['bars'] / seconds:,.0f}",
                f"{seconds / tg['seconds']:.0f}x",
                "-",
                "-",
            )
        console.print(table)


def main() -> None:
    """Run the benchmark and print its tables (and optionally write JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k bars only")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bt-max", type=int, default=1_000_000, help="largest size to run backtesting.py on")
    parser.add_argument("--json", type=Path, help="also write the raw rows here")
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar
    console = Console()
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    rows: list[dict[str, Any]] = []
    for n in sizes:
        for name, data in (
            (f"synthetic {n // 1000}k", synthetic(n)),
            (f"BTC/USDT 1h tiled {n // 1000}k", real_btc(n)),
        ):
            rows += bench_dataset(name, data, args.repeats, args.bt_max, console)
    extrapolated = {}
    for r in rows:
        if r["engine"] == "backtesting.py" and r["bars"] < max(sizes):
            big = r["dataset"].replace(f"{r['bars'] // 1000}k", f"{max(sizes) // 1000}k")
            if not any(x["dataset"] == big and x["engine"] == "backtesting.py" for x in rows):
                extrapolated[f"{big}:backtesting.py"] = r["seconds"] * max(sizes) / r["bars"]
    report(rows, extrapolated, console)
    fresh = [fresh_process(100_000) for _ in range(3)]
    primed = [fresh_process(100_000, numba_first=True) for _ in range(3)]
    table = Table(title="tradegraph in a fresh process, 100k bars (numba cache on disk)")
    for col in ("process", "import (s)", "numba init (s)", "first call (s)", "its CPU (s)", "load avg"):
        table.add_column(col, justify="right")
    for i, f in enumerate(fresh + primed):
        init = f"{f['numba_init_s']:.3f}" if "numba_init_s" in f else "in the call"
        times = (f["import_s"], f["first_call_s"], f["first_call_cpu_s"])
        table.add_row(
            str(i + 1), f"{times[0]:.3f}", init, *(f"{t:.3f}" for t in times[1:]), f"{f['load']:.1f}"
        )
    console.print(table)
    console.print(acceptance(rows, extrapolated, fresh, max(sizes)))
    if args.json:
        args.json.write_text(
            json.dumps({"rows": rows, "extrapolated": extrapolated, "fresh": fresh}, indent=2)
        )


def acceptance(
    rows: list[dict[str, Any]], extrapolated: dict[str, float], fresh: list[dict[str, float]], size: int
) -> Table:
    """The issue's acceptance points, measured: speed ratios at the largest size, agreement, first call."""
    table = Table(title="acceptance")
    for col in ("check", "measured", "needed", "ok"):
        table.add_column(col)

    def add(check: str, value: float, needed: str, ok: bool, fmt: str = "{:.2f}") -> None:
        table.add_row(check, fmt.format(value), needed, "yes" if ok else "[red]NO[/]")

    for name in dict.fromkeys(r["dataset"] for r in rows):
        subset = {r["engine"]: r for r in rows if r["dataset"] == name}
        tg, ref = subset["tradegraph"], subset["numpy reference"]
        diff = abs(tg["equity"] / ref["equity"] - 1.0)
        add(f"{name}: final equity vs numpy (rel.)", diff, "<= 1e-9", diff <= 1e-9, "{:.1e}")
        if tg["bars"] != size:
            continue
        vbt = min(r["seconds"] for e, r in subset.items() if e.startswith("vectorbt"))
        add(
            f"{name}: speed vs fastest vectorbt",
            vbt / tg["seconds"],
            ">= 1.0x",
            vbt >= tg["seconds"],
            "{:.2f}x",
        )
        bt = (
            subset["backtesting.py"]["seconds"]
            if "backtesting.py" in subset
            else extrapolated[f"{name}:backtesting.py"]
        )
        add(
            f"{name}: speed vs backtesting.py",
            bt / tg["seconds"],
            ">= 50x",
            bt >= 50 * tg["seconds"],
            "{:.0f}x",
        )
    worst = max(f["first_call_s"] for f in fresh)
    add("first call, fresh process, 100k bars (worst of 3, wall)", worst, "<= 1 s", worst <= 1.0, "{:.3f} s")
    cpu = max(f["first_call_cpu_s"] for f in fresh)
    add("first call, fresh process, 100k bars (worst of 3, CPU)", cpu, "<= 1 s", cpu <= 1.0, "{:.3f} s")
    return table


if __name__ == "__main__":
    main()
