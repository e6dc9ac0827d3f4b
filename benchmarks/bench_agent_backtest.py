"""The LLM agent backtest at the server's speed: decisions/s against the endpoint's capacity, per prompt mode.

Case. `run_agent_backtest` with strategy `llm` on BTC/USDT and ETH/USDT, 1h bars, the last `--bars` bars
(2,000 by default; 200 with `--quick`) of the bundled year, with the year before the first bar that every
LLM run reads (`agent.market.history`); `--history 5y`: the last 5 years of the shared Binance data beside
the checkout (`bench_context.five_year_history`), all of it readable (`history=`), so the prompts can draw
on up to 5 years. Every row
runs in a fresh process with a fresh SQLite database and `llm.cache_mode = "write"`, so every decision is a
real call; `llm.concurrency` is set to `--seqs`; the drawdown and daily-loss breakers and the cooldown are
off (`NEVER_HALT`), so the emulator's random answers never leave HOLD as the only action (which asks no
model). The prompt budget is the run's own: from the endpoint's `max_model_len` (the emulator reports
`--max-model-len`, 32,768) unless `--context-tokens` sets `llm.context_tokens`. The drive loop (first bar
to last: prompts built, answers settled through risk, broker and ledger) is what the rates are measured
on; setup and the report are not.

Endpoint. By default the vLLM emulator (`agent.testing.vllm_emulator`), started in a process of its own for
each row (so its CPU does not share the client's GIL, and each row starts with a cold prefix cache):
`--latency` seconds per request (0.2) with at most `--seqs` running at once (16), so its capacity is
seqs / latency = 80 decisions/s; then the same rows against an instant emulator (latency 0), where the rate
is the client's own limit. With `--base-url` (and `--model`, `--profile`, default vllm) the rows run against
that endpoint instead, e.g. Nemotron on vLLM started with `--max-num-seqs` equal to `--seqs`; its capacity
is estimated as seqs / the measured p50 latency.

Rows: stateless (prompts show the market only; the requests of the next bars are kept in flight) and
stateful (prompts show the portfolio, so only the symbols of one bar are in flight: its bound is
symbols / latency = 2 / 0.2 = 10 decisions/s). Printed per row: decisions/s against capacity (and, for
stateful, against its bound), client overhead per decision (wall / decisions, at latency 0), latency
p50/p95, mean requests in flight (decisions/s x mean latency), prefix-cache hit rate (the server's
`cached_tokens`), prompt + completion tokens/s, the client's CPU per decision, peak RSS, and the acceptance
targets of issue 12 beside each figure (PASS/MISS; on the emulator only):

- latency 0.2 s / 16 seqs: stateless >= 90% of capacity (72/s); stateful >= 90% of its bound (9/s);
- instant: stateless >= 300/s and overhead <= 3 ms; stateful >= 150/s and overhead <= 7 ms;
- `--rss` (`--rss-only`): a stateless row over 8,760 bars x 5 symbols at latency 0 with 5 years of
  history (the last 8,760 of them traded), peak RSS <= 1.5 GB;
- `--context-only`: only the context build per prompt at 5 years of hourly history on 5 symbols, p50 <= 5 ms
  and p99 <= 20 ms (`bench_context.py`'s incremental tick-by-tick measurement, in its own process).

Run:
    .venv/bin/python benchmarks/bench_agent_backtest.py --quick            # 200 bars, about 3 minutes
    .venv/bin/python benchmarks/bench_agent_backtest.py                    # 2,000 bars, about 20 minutes
    .venv/bin/python benchmarks/bench_agent_backtest.py --history 5y       # prompts reach back 5 years
    .venv/bin/python benchmarks/bench_agent_backtest.py --rss-only         # the memory row, about 35 minutes
    .venv/bin/python benchmarks/bench_agent_backtest.py --context-only
    .venv/bin/python benchmarks/bench_agent_backtest.py --base-url http://gpu-host:8000/v1 --model nemotron \
        --seqs 16                                                          # a real server

Exit code 0, or 1 with `--strict` when a target is missed. Timings depend on the machine's load: the header
prints the load average and the core count, and the CPU per decision is printed beside the wall figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
PAIR = ("BTC/USDT", "ETH/USDT")
FIVE = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "LTC/USDT")
"""The memory row's symbols: those with replay trading rules (LTC has no 1h data: the BTC year, tiled)."""
RSS_BARS = 8_760
FIVE_YEARS = 5 * 8_760
RSS_LIMIT_MB = 1536.0
NEVER_HALT = {"max_drawdown": 1.0, "daily_loss_limit": 1.0, "cooldown_bars": 0}
"""Risk limits under which the emulator's random answers never stop the model being asked: with the
defaults a drawdown or daily-loss breaker trips after a few hundred bars, the book goes flat with BUY
blocked, HOLD is the only action and no model is asked for the rest of the run."""
COLUMNS = (
    "row",
    "bars x symbols",
    "decisions (calls; unused)",
    "dec/s",
    "vs capacity",
    "overhead ms/dec",
    "CPU ms/dec client / server",
    "latency p50/p95 ms",
    "in flight",
    "prefix hits",
    "tokens/s",
    "peak RSS MB",
    "drive / total s",
    "targets (issue 12)",
)
LEGEND = " ".join(
    (
        "vs capacity: decisions/s against the emulator's seqs / latency (for a real endpoint: seqs / the",
        "measured p50); stateful also against its bound, symbols per bar / latency.",
        "overhead: drive wall time per decision against the instant emulator (the client's own limit).",
        "CPU: the client's CPU in the drive loop (every thread: prompts, HTTP, graph, ledger) per decision /",
        "the emulator's CPU per call (the whole row, /tokenize included).",
        "decisions: answers the run used; calls: requests the endpoint answered (context-length retries",
        "included); unused: answers requested ahead that no bar used (stateless mode asks before the risk",
        "layer knows whether a symbol has a choice; llm_unused_calls). in flight: decisions/s x p50 latency.",
        "tokens/s: prompt + completion tokens (the server's counts) over the drive time.",
        "drive: first bar to last; total: with setup and the report.",
    )
)
console = Console(width=None if sys.stdout.isatty() else 220)


@dataclass(frozen=True)
class RowSpec:
    """One measured row: a prompt mode against one endpoint, in its own process."""

    name: str
    mode: str
    """`llm.prompt_mode`: stateless or stateful."""
    latency_s: float | None
    """The emulator's latency per request; None for a real endpoint."""
    seqs: int
    bars: int
    symbols: tuple[str, ...]
    history: str
    """bundled (the bundled year) or 5y (the last 5 years of the shared data)."""
    base_url: str = ""
    model: str = "nemotron"
    profile: str = "vllm"
    context_tokens: int | None = None
    rss_target: bool = False


@dataclass(frozen=True)
class Check:
    """One acceptance target and whether the figure meets it."""

    label: str
    ok: bool

    def cell(self) -> str:
        return f"{self.label} [{'green]PASS' if self.ok else 'red]MISS'}[/]"


# ---------------------------------------------------------------- one row, in a child process


def _history_source(spec: RowSpec, settings: Any) -> Any:
    """The candles the run reads: the bundled year, or 5 years per symbol (bench_context's helper)."""
    from agent.graph.factory import load_source
    from agent.market.source import FrameSource

    if spec.history == "bundled":
        return load_source(settings)
    sys.path.insert(0, str(HERE))
    from bench_context import five_year_history

    return FrameSource({s: five_year_history(s)[0] for s in spec.symbols})


def run_row(spec: RowSpec) -> dict[str, Any]:
    """Run one agent backtest (see the module docstring) and return its figures."""
    import shutil

    import agent.graph.backtest as backtest
    from agent.config import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    config = tmp / "tradegraph.toml"
    config.write_text("")
    os.environ["TRADEGRAPH_CONFIG"] = str(config)  # no user configuration leaks into the row
    llm: dict[str, Any] = {
        "profile": spec.profile,
        "base_url": spec.base_url,
        "model": spec.model,
        "concurrency": spec.seqs,
        "cache_mode": "write",
        "prompt_mode": spec.mode,
    }
    if spec.context_tokens is not None:
        llm["context_tokens"] = spec.context_tokens
    settings = load_settings(
        data_dir=tmp,
        database_url=f"sqlite:///{tmp / 'bench.db'}",
        symbols=list(spec.symbols),
        llm=llm,
        risk=NEVER_HALT,
    )
    source = _history_source(spec, settings)
    drive_cpu: list[float] = []
    drive = backtest.drive

    def timed_drive(*args: Any, **kwargs: Any) -> Any:  # the CPU of the drive loop (every thread)
        began = time.process_time()
        try:
            return drive(*args, **kwargs)
        finally:
            drive_cpu.append(time.process_time() - began)

    backtest.drive = timed_drive
    started = time.perf_counter()
    try:
        result = backtest.run_agent_backtest(
            settings,
            strategy="llm",
            start=None,
            end=None,
            last_bars=spec.bars,
            reports_dir=tmp / "reports",
            show_progress=sys.stderr.isatty(),
            source=source,
            history=FIVE_YEARS if spec.history == "5y" else None,
        )
    finally:
        backtest.drive = drive
        shutil.rmtree(tmp, ignore_errors=True)
    total_s = time.perf_counter() - started
    m = result.metrics
    decisions = int(m.get("llm_decisions") or 0)
    rate = float(m.get("llm_decisions_per_s") or 0.0)
    return {
        "bars": len(result.outcomes),
        "decisions": decisions,
        "calls": int((m.get("strategy") or {}).get("llm_calls") or 0),
        "unused": int(m.get("llm_unused_calls") or 0),
        "rate": rate,
        "drive_s": (decisions + int(m.get("llm_cache_hits") or 0)) / rate if rate else float("nan"),
        "drive_cpu_s": drive_cpu[0] if drive_cpu else float("nan"),
        "total_s": total_s,
        "p50_ms": m.get("llm_latency_p50_ms"),
        "p95_ms": m.get("llm_latency_p95_ms"),
        "prompt_tokens": int(m.get("llm_prompt_tokens") or 0),
        "completion_tokens": int(m.get("llm_completion_tokens") or 0),
        "hit_rate": m.get("llm_prefix_cache_hit_rate"),
        "prompt_mode": m.get("llm_prompt_mode"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# ---------------------------------------------------------------- the parent: endpoints, rows, table


class Emulator:
    """`python -m agent.testing.vllm_emulator` in a process of its own; stops when its stdin closes."""

    def __init__(self, latency_s: float, seqs: int, max_model_len: int) -> None:
        cmd = [sys.executable, "-m", "agent.testing.vllm_emulator", "--latency", str(latency_s)]
        cmd += ["--seqs", str(seqs), "--max-model-len", str(max_model_len)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.close()
            raise RuntimeError("the vLLM emulator did not start")

    def cpu_s(self) -> float:
        """The emulator process's CPU time so far (Linux /proc), in seconds."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def _child_env() -> dict[str, str]:
    """This environment without TRADEGRAPH_* settings (the row sets its own), except the API key."""
    keep = {"TRADEGRAPH_LLM__API_KEY", "TRADEGRAPH_SHARED_DIR"}
    return {k: v for k, v in os.environ.items() if not k.startswith("TRADEGRAPH_") or k in keep}


def measure(spec: RowSpec, max_model_len: int) -> dict[str, Any]:
    """Run `spec` in a child process, against a fresh emulator unless it names an endpoint."""
    emulator = None
    if not spec.base_url:
        assert spec.latency_s is not None
        emulator = Emulator(spec.latency_s, spec.seqs, max_model_len)
        spec = RowSpec(**{**asdict(spec), "base_url": emulator.base_url})
    cpu = emulator.cpu_s() if emulator is not None else float("nan")
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--row", json.dumps(asdict(spec))],
            stdout=subprocess.PIPE,
            text=True,
            env=_child_env(),
            check=True,
        ).stdout
        if emulator is not None:
            cpu = emulator.cpu_s() - cpu
    finally:
        if emulator is not None:
            emulator.close()
    figures: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return {**figures, "server_cpu_s": cpu}


def capacity(spec: RowSpec, row: dict[str, Any]) -> tuple[float, str]:
    """The endpoint's capacity in decisions/s, and how it was obtained."""
    if spec.latency_s is not None and spec.latency_s > 0:
        return spec.seqs / spec.latency_s, "seqs / latency"
    if spec.latency_s is None and row["p50_ms"]:
        return spec.seqs / (row["p50_ms"] / 1000), "seqs / p50 (estimate)"
    return float("inf"), "instant"


def checks(spec: RowSpec, row: dict[str, Any]) -> list[Check]:
    """The issue's acceptance targets for this row (emulator rows only)."""
    if spec.latency_s is None:
        return []
    rate, out = row["rate"], []
    overhead_ms = 1000 / rate if rate else float("inf")
    if spec.rss_target:
        out.append(
            Check(f"RSS {row['peak_rss_mb']:,.0f} MB <= {RSS_LIMIT_MB:,.0f}", row["peak_rss_mb"] <= 1536)
        )
        return out
    if spec.latency_s > 0:
        cap = spec.seqs / spec.latency_s
        if spec.mode == "stateless":
            out.append(Check(f">= {0.9 * cap:.0f}/s (90% of capacity)", rate >= 0.9 * cap))
        else:
            bound = min(spec.seqs, len(spec.symbols)) / spec.latency_s
            out.append(Check(f">= {0.9 * bound:.0f}/s (90% of the bound)", rate >= 0.9 * bound))
        return out
    want_rate, want_ms = (300, 3.0) if spec.mode == "stateless" else (150, 7.0)
    out.append(Check(f">= {want_rate}/s", rate >= want_rate))
    out.append(Check(f"overhead <= {want_ms:.0f} ms", overhead_ms <= want_ms))
    return out


def _fmt(value: Any, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def row_line(spec: RowSpec, row: dict[str, Any]) -> list[str]:
    """The table cells of one measured row."""
    cap, _ = capacity(spec, row)
    rate = row["rate"]
    against = f"{rate / cap:.0%} of {cap:.0f}" if cap != float("inf") else "-"
    if spec.mode == "stateful" and spec.latency_s != 0 and row["p50_ms"]:
        latency = spec.latency_s if spec.latency_s is not None else row["p50_ms"] / 1000
        bound = min(spec.seqs, len(spec.symbols)) / latency
        against += f"; {rate / bound:.0%} of bound {bound:.0f}"
    tokens = (row["prompt_tokens"] + row["completion_tokens"]) / row["drive_s"] if row["drive_s"] else 0
    p50, p95 = row["p50_ms"], row["p95_ms"]
    in_flight = rate * p50 / 1000 if p50 else None  # Little's law with the median standing in for the mean
    overhead = f"{1000 / rate:.1f}" if rate and spec.latency_s == 0 else "-"
    server_cpu = (
        "-" if math.isnan(row["server_cpu_s"]) else f"{row['server_cpu_s'] * 1000 / max(row['calls'], 1):.1f}"
    )
    checks_ = checks(spec, row)
    return [
        spec.name,
        f"{row['bars']:,} x {len(spec.symbols)}",
        f"{row['decisions']:,} ({row['calls']:,}; {row['unused']:,})",
        f"{rate:.1f}",
        against,
        overhead,
        f"{row['drive_cpu_s'] * 1000 / max(row['decisions'], 1):.1f} / {server_cpu}",
        f"{_fmt(p50, '.0f')} / {_fmt(p95, '.0f')}",
        _fmt(in_flight, ".1f"),
        _fmt(row["hit_rate"], ".1%"),
        f"{tokens:,.0f}",
        f"{row['peak_rss_mb']:,.0f}",
        f"{row['drive_s']:.0f} / {row['total_s']:.0f}",
        "\n".join(c.cell() for c in checks_) or "-",
    ]


def plan(args: argparse.Namespace) -> list[RowSpec]:
    """The rows to measure, in order."""
    bars = args.bars if args.bars is not None else (200 if args.quick else 2000)
    modes = args.modes.split(",")
    common = {
        "seqs": args.seqs,
        "history": args.history,
        "context_tokens": args.context_tokens,
        "model": args.model,
        "profile": args.profile,
    }
    rows: list[RowSpec] = []
    if args.base_url:
        for mode in modes:
            rows.append(RowSpec(mode, mode, None, bars=bars, symbols=PAIR, base_url=args.base_url, **common))
        return rows
    latencies = [args.latency] + ([0.0] if args.latency > 0 and not args.no_instant else [])
    for latency in [] if args.rss_only else latencies:
        for mode in modes:
            name = f"{mode} @ {latency * 1000:.0f} ms"
            rows.append(RowSpec(name, mode, latency, bars=bars, symbols=PAIR, **common))
    if args.rss or args.rss_only:
        name = f"stateless @ 0 ms, {len(FIVE)} symbols"
        rss = {**common, "history": "5y"}  # bundled 1h data has 3 symbols; bench_context tiles the rest
        rows.append(RowSpec(name, "stateless", 0.0, bars=RSS_BARS, symbols=FIVE, rss_target=True, **rss))
    return rows


def run_rows(args: argparse.Namespace) -> bool:
    """Measure and print every planned row; True when every target is met."""
    rows = plan(args)
    load = os.getloadavg()
    endpoint = args.base_url or f"vLLM emulator in its own process, {args.seqs} seqs"
    console.print(
        f"[bold]LLM agent backtest[/], 1h bars: {', '.join(sorted({s for r in rows for s in r.symbols}))}; "
        f"history {', '.join(sorted({r.history for r in rows}))}; endpoint {endpoint}; "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
    table = Table(title="Agent backtest throughput (drive loop: prompts, calls, risk, broker, ledger)")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("row", "targets (issue 12)") else "right")
    all_ok = True
    for spec in rows:
        console.print(f"running {spec.name} ({spec.bars:,} bars x {len(spec.symbols)} symbols) ...")
        row = measure(spec, args.max_model_len)
        line = row_line(spec, row)
        console.print("  " + " · ".join(f"{c}: {v}" for c, v in zip(COLUMNS, line, strict=True)))
        table.add_row(*line)
        all_ok &= all(c.ok for c in checks(spec, row))
    console.print(table)
    console.print(LEGEND)
    return all_ok


def context_only(args: argparse.Namespace) -> bool:
    """The context build per prompt at 5 years x 5 symbols (bench_context.py's measurement)."""
    sys.path.insert(0, str(HERE))
    import bench_context

    load = os.getloadavg()[0]
    table = Table(
        title=f"Context build per prompt, {bench_context.FIVE_YEARS:,} hourly bars x "
        f"{len(bench_context.SPEED_SYMBOLS)} symbols, incremental tick by tick "
        f"(load average {load:.1f} on {os.cpu_count()} cores)"
    )
    for col in (
        "budget",
        "prompts",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "CPU p50/p99 ms",
        "peak RSS MB",
        "targets (wall)",
        "same on CPU time (information)",
    ):
        table.add_column(col, justify="left" if col.startswith(("targets", "same")) else "right")
    all_ok = True
    for budget in (int(b) for b in args.context_budgets.split(",")):
        out = subprocess.run(
            [
                sys.executable,
                bench_context.__file__,
                "--child",
                "after",
                str(budget),
                str(args.context_ticks),
            ],
            stdout=subprocess.PIPE,
            text=True,
            check=True,
        ).stdout
        row = json.loads(out.strip().splitlines()[-1])
        found = [Check("p50 <= 5 ms", row["p50"] <= 5.0), Check("p99 <= 20 ms", row["p99"] <= 20.0)]
        all_ok &= all(c.ok for c in found)
        cpu = [Check("p50 <= 5 ms", row["cpu"][0] <= 5.0), Check("p99 <= 20 ms", row["cpu"][2] <= 20.0)]
        table.add_row(
            f"{budget:,}",
            f"{row['prompts']:,}",
            f"{row['p50']:.1f}",
            f"{row['p95']:.1f}",
            f"{row['p99']:.1f}",
            f"{row['cpu'][0]:.1f} / {row['cpu'][2]:.1f}",
            f"{row['peak_mb']:,.0f}",
            "\n".join(c.cell() for c in found),
            "\n".join(c.cell() for c in cpu),
        )
    console.print(table)
    return all_ok


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--bars", type=int, default=None, help="bars settled per row (default 2000)")
    parser.add_argument("--quick", action="store_true", help="200 bars per row")
    parser.add_argument("--latency", type=float, default=0.2, help="emulator seconds per request")
    parser.add_argument("--seqs", type=int, default=16, help="emulator max-num-seqs = llm.concurrency")
    parser.add_argument("--max-model-len", type=int, default=32768, help="emulator context length")
    parser.add_argument("--no-instant", action="store_true", help="skip the latency-0 rows")
    parser.add_argument("--modes", default="stateless,stateful", help="prompt modes, comma-separated")
    parser.add_argument(
        "--history", choices=("bundled", "5y"), default="bundled", help="candles the run reads"
    )
    parser.add_argument("--context-tokens", type=int, default=None, help="prompt budget (llm.context_tokens)")
    parser.add_argument("--rss", action="store_true", help="add the 8,760 bars x 5 symbols memory row")
    parser.add_argument("--rss-only", action="store_true", help="only the memory row")
    parser.add_argument("--base-url", default="", help="a real OpenAI-compatible endpoint instead")
    parser.add_argument("--model", default="nemotron", help="model id at the endpoint")
    parser.add_argument("--profile", default="vllm", help="llm.profile for the endpoint")
    parser.add_argument("--context-only", action="store_true", help="only the context build at 5 years")
    parser.add_argument("--context-budgets", default="32000", help="prompt budgets for --context-only")
    parser.add_argument(
        "--context-ticks", type=int, default=240, help="hourly ticks per symbol, --context-only"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--row", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row:
        fields = json.loads(args.row)
        print(json.dumps(run_row(RowSpec(**{**fields, "symbols": tuple(fields["symbols"])}))))
        return
    if args.modes and not set(args.modes.split(",")) <= {"stateless", "stateful"}:
        parser.error(f"--modes {args.modes}: stateless and/or stateful")
    ok = context_only(args) if args.context_only else run_rows(args)
    console.print("all targets met" if ok else "[red]targets missed[/] (see MISS above)")
    if args.strict and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
