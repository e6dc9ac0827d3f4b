"""Dashboard page latency with a large ledger: p50 / p95 per page and overall, served by uvicorn.

Seeds a SQLite database (or `--db-url`, e.g. PostgreSQL) quickly with bulk inserts: `--runs` runs (default
1,000, with stored metric sets), `--decisions` decisions (default 100,000: half of them the daemon run's,
the rest spread over the other runs, each tenth with an order, each fifth an LLM decision with its call),
and the daemon run's `--bars` balance snapshots over the bundled BTC and ETH 1h candles (the equity chart
against buy & hold reads them). Then serves `tradegraph serve`'s app with uvicorn on 127.0.0.1 and asks
each page `--rounds` times over HTTP (one client, keep-alive), after one untimed warm-up of each:
overview, runs list, run detail (charts kept; and redrawn, as after every new bar), compare, decisions
timeline (first page and a page 50,000 back), one decision, LLM, and the JSON API of runs and decisions.

    .venv/bin/python benchmarks/bench_dashboard.py                 # ~1 minute
    .venv/bin/python benchmarks/bench_dashboard.py --rounds 20
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import insert

from agent.config import DEFAULT_DATA_DIR, Settings
from agent.db.models import BalanceSnapshot, Decision, LLMCall, LLMPrompt, Order, Run
from agent.db.prompts import prompt_digest
from agent.db.session import open_db
from agent.web import close, create_app

HOUR = 3_600_000
LAST_BAR = 1758322800000 - HOUR  # the last bundled 1h bar (2025-09-19 22:00 UTC)
DAEMON = "daemon-bench"
TARGET_P95_MS = 200.0


def seed(url: str, runs: int, decisions: int, bars: int) -> None:
    """Bulk-insert the ledger described in the module docstring."""
    engine, factory = open_db(url)
    rng = random.Random(7)
    now = datetime.now(UTC)
    first_bar = LAST_BAR - (bars - 1) * HOUR
    metrics = {
        "strategy": {"total_return": 0.1, "sharpe": 1.2, "max_drawdown": -0.1, "trades": 12, "bars": bars},
        "warnings": [],
    }
    run_rows = [
        {
            "id": DAEMON,
            "kind": "daemon",
            "strategy": "sma_cross",
            "params": {},
            "symbols": ["BTC/USDT", "ETH/USDT"],
            "timeframe": "1h",
            "start_ts": first_bar,
            "end_ts": None,
            "status": "running",
            "config": {},
            "metrics": metrics,
            "created_at": now,
        }
    ] + [
        {
            "id": f"bt-{i:05d}",
            "kind": "backtest",
            "strategy": rng.choice(["sma_cross", "rsi", "llm"]),
            "params": {"fast": 5},
            "symbols": ["BTC/USDT"],
            "timeframe": "1h",
            "start_ts": first_bar,
            "end_ts": LAST_BAR,
            "status": "done",
            "config": {},
            "metrics": metrics,
            "created_at": now - timedelta(minutes=i + 1),
        }
        for i in range(runs - 1)
    ]
    messages = [{"role": "system", "content": "bench"}, {"role": "user", "content": "x" * 2000}]
    digest = prompt_digest(messages)
    with engine.begin() as conn:
        conn.execute(insert(Run), run_rows)
        conn.execute(insert(LLMPrompt), [{"prompt_hash": digest, "messages": messages, "created_at": now}])
        equity = 10_000.0
        snaps = []
        for b in range(bars):
            equity *= 1 + rng.gauss(0, 0.004)
            snaps.append(
                {
                    "run_id": DAEMON,
                    "bar_ts": first_bar + b * HOUR,
                    "cash": equity / 2,
                    "equity": equity,
                    "fees_paid": 0.0,
                    "created_at": now,
                }
            )
        conn.execute(insert(BalanceSnapshot), snaps)
        calls = []
        rows = []
        orders = []
        for i in range(decisions):
            daemon = i % 2 == 0
            run_id = DAEMON if daemon else run_rows[1 + i % (runs - 1)]["id"]
            symbol = "BTC/USDT" if i % 4 < 2 else "ETH/USDT"
            bar = first_bar + (i // 4) * HOUR if daemon else first_bar + (i // (2 * runs)) * HOUR
            llm = i % 5 == 0
            if llm:
                calls.append(
                    {
                        "id": len(calls) + 1,
                        "run_id": run_id,
                        "request_hash": f"{i:064d}",
                        "prompt_hash": digest,
                        "endpoint": "http://bench",
                        "profile": "vllm",
                        "model": "nemotron",
                        "request": {},
                        "messages_hash": digest,
                        "response_text": "{}",
                        "reasoning": "r",
                        "finish_reason": "stop",
                        "prompt_tokens": 900,
                        "completion_tokens": 60,
                        "cached_tokens": 700,
                        "latency_ms": rng.uniform(150, 900),
                        "error": None,
                        "from_cache": i % 3 == 0,
                        "created_at": now - timedelta(seconds=i),
                    }
                )
            rows.append(
                {
                    "id": i + 1,
                    "run_id": run_id,
                    "symbol": symbol,
                    "bar_ts": bar + (i % 2) * 0,
                    "source": "llm" if llm else "rule",
                    "action": "hold",
                    "target_exposure": 0.0,
                    "final_exposure": 0.0,
                    "confidence": 0.5,
                    "rationale": "<b>bench</b> rationale " * 5,
                    "abstained": i % 50 == 0,
                    "abstain_reason": "timeout" if i % 50 == 0 else None,
                    "llm_call_id": len(calls) if llm else None,
                    "clamps": [{"kind": "exposure_cap", "detail": "d"}],
                    "created_at": now,
                }
            )
            if i % 10 == 0:
                orders.append(
                    {
                        "run_id": run_id,
                        "client_order_id": f"o-{i}",
                        "decision_id": i + 1,
                        "symbol": symbol,
                        "bar_ts": bar,
                        "side": "buy",
                        "type": "market",
                        "amount": 0.01,
                        "price": 50_000.0,
                        "status": "filled",
                        "reason": "entry",
                        "created_at": now,
                    }
                )
        # unique (run, symbol, bar): the daemon's rows are 2 symbols x 2 per bar offset by id parity
        seen: set[tuple[str, str, int]] = set()
        for r in rows:
            key = (r["run_id"], r["symbol"], r["bar_ts"])
            while key in seen:
                r["bar_ts"] += HOUR * 100_000
                key = (r["run_id"], r["symbol"], r["bar_ts"])
            seen.add(key)
        conn.execute(insert(LLMCall), calls)
        conn.execute(insert(Decision), rows)
        conn.execute(insert(Order), orders)
    engine.dispose()


def serve(url: str) -> tuple[uvicorn.Server, threading.Thread, str, object]:
    """The dashboard under uvicorn on a free loopback port."""
    settings = Settings(database_url=url, symbols=["BTC/USDT", "ETH/USDT"], data_dir=DEFAULT_DATA_DIR)
    app = create_app(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}", app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db-url", default=None)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--bars", type=int, default=8760)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    url = args.db_url or f"sqlite:///{folder / 'bench.db'}"
    started = time.perf_counter()
    seed(url, args.runs, args.decisions, args.bars)
    print(
        f"seeded {args.runs:,} runs, {args.decisions:,} decisions, {args.bars:,} bars in "
        f"{time.perf_counter() - started:.1f} s ({url.split(':')[0]})"
    )
    server, thread, base, app = serve(url)
    middle = args.decisions // 2
    pages = {
        "overview /": "/",
        "runs list": "/runs",
        "run detail (charts)": f"/runs/{DAEMON}",
        "run detail (redrawn)": f"/runs/{DAEMON}",
        "compare 3 runs": f"/runs/compare?ids={DAEMON}&ids=bt-00001&ids=bt-00002",
        "decisions (newest)": "/decisions",
        "decisions (50k back)": f"/decisions?before={middle}",
        "decision page": "/decisions/1",
        "LLM": "/llm",
        "api runs": "/api/v1/runs?limit=50&offset=500",
        "api decisions": f"/api/v1/decisions?limit=100&before={middle}",
        "api overview": "/api/v1/overview",
    }
    times: dict[str, list[float]] = {name: [] for name in pages}
    with httpx.Client(base_url=base, timeout=60) as client:
        for path in pages.values():
            assert client.get(path).status_code == 200, path
        for _ in range(args.rounds):
            for name, path in pages.items():
                if name.endswith("redrawn)"):
                    app.state.web.charts.clear()  # type: ignore[attr-defined]  # as after a new bar
                t0 = time.perf_counter()
                response = client.get(path)
                times[name].append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, path
    server.should_exit = True
    thread.join(10)
    close(app)  # type: ignore[arg-type]
    everything = sorted(t for ts in times.values() for t in ts)
    print(f"\n{'page':<24}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for name, ts in times.items():
        ts.sort()
        print(f"{name:<24}{statistics.median(ts):>10.1f}{_p95(ts):>10.1f}{ts[-1]:>10.1f}")
    overall = _p95(everything)
    print(f"{'all pages':<24}{statistics.median(everything):>10.1f}{overall:>10.1f}{everything[-1]:>10.1f}")
    worst = max(_p95(sorted(ts)) for ts in times.values())
    verdict = "meets" if worst <= TARGET_P95_MS else "misses"
    print(f"\nworst page p95 {worst:.1f} ms: {verdict} the {TARGET_P95_MS:.0f} ms target")
    print(json.dumps({"p95_all_ms": round(overall, 1), "p95_worst_page_ms": round(worst, 1)}))
    return 0


def _p95(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered) + 0.5) - 1)]


if __name__ == "__main__":
    sys.exit(main())
