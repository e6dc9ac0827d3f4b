"""The report of an agent run (LLM, hybrid or rule strategy through the graph), read back from the ledger.

Contracts:
- Metrics are the run metric set of every run kind (`agent.runs.metrics.compute`), fed from the ledger:
  equity and exposure (1 - cash / equity) after each bar from the balance snapshots, traded notional,
  fees, fills and round trips (`agent.runs.trades`) from the filled orders, decisions and abstentions.
  Buy-and-hold is `agent.backtest.baseline.buy_and_hold` (fully invested in equal weights over the run's
  symbols from the first bar's open), the very benchmark of the rule backtest's report, and cash; both
  over the same bars with the same fees and slippage, so the three columns compare like for like. The
  daemon stores the same figures on its run row (`agent_run_metrics`).
- LLM figures come from `llm_calls`: real calls, cache hits, tokens, abstentions, latency.
- Behaviour: long bias (mean exposure), turnover, fee drag (fees / initial cash), trades. A window too
  short to annualise shows no annualised figure, and the report says so (`warnings`).
- Calibration: decisions with an action other than HOLD, bucketed by confidence, against the realised
  next-bar return in the decision's direction — computed after the run from the full data, never shown to
  the model.
- `write_agent_report` writes `report.html`, `equity.png`, `decisions.csv` and `orders.csv` into the given
  folder and returns the HTML path. The HTML is self-contained: interactive charts (`agent.backtest.charts`:
  plotly.js inline once, no CDN or network resource) of equity against buy & hold and cash, drawdown and
  exposure over time, and each symbol's fills on its closes (the first `MAX_SYMBOL_CHARTS` symbols; hover
  shows the order and the rationale of the decision behind it); without JavaScript it shows `equity.png`
  (equity and drawdown, drawn by matplotlib).
- Model text is data (`agent.textsafe`): in the CSVs a text cell starting with `=`, `+`, `-`, `@`, a tab or
  a carriage return gets a leading `'` (numbers are left alone); in the HTML every text is cut to its
  display length first, then escaped, in the tables and in the charts' hover text alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from agent.backtest import baseline, charts
from agent.backtest.market import engine_config, rules_matrix
from agent.backtest.metrics import cash_metrics, compute_metrics
from agent.config import Settings
from agent.evaluation.frames import decisions_frame, equity_frame, llm_usage, orders_frame
from agent.market.candles import timeframe_ms
from agent.market.exchange import MarketRules
from agent.market.source import CandleSource, ts_ms
from agent.runs.metrics import Activity, Curve, MetricSet, RunMetrics, compute
from agent.runs.trades import LedgerFill, round_trips
from agent.textsafe import csv_frame, for_html

RATIONALE_SHOWN = 300
"""Characters of a rationale (or abstention reason) shown in the decision timeline."""
MAX_SYMBOL_CHARTS = 8
"""Symbols whose fills are drawn on their price chart (the first, in sorted order)."""


def buy_and_hold(
    source: CandleSource,
    symbols: list[str],
    index: pd.DatetimeIndex,
    rules: Mapping[str, MarketRules],
    settings: Settings,
) -> tuple[pd.Series, dict[str, float]]:
    """Buy & hold over `index` with the run's costs: `agent.backtest.baseline.buy_and_hold`, the benchmark
    of every report (fully invested in equal weights from the first bar's open, symbols in sorted order)."""
    last = int(index[-1].value // 1_000_000)
    ordered = sorted(symbols)
    frames = {s: source.history(s, last).reindex(index) for s in ordered}
    ohlcv = {
        c: np.column_stack([frames[s][c].to_numpy() for s in ordered])
        for c in ("open", "high", "low", "close", "volume")
    }
    matrix = rules_matrix([rules[s] for s in ordered])
    sim = baseline.buy_and_hold(index, ordered, ohlcv, matrix, engine_config(settings), settings.timeframe)
    return pd.Series(sim.equity, index=index), compute_metrics(sim, settings.timeframe)


def agent_run_metrics(
    factory: sessionmaker[Session],
    run_id: str,
    source: CandleSource,
    settings: Settings,
    rules: Mapping[str, MarketRules],
) -> tuple[RunMetrics, pd.Series] | None:
    """The run's metric set from its ledger (`agent.runs.metrics.compute`), beside buy & hold and cash, and
    the buy & hold equity curve; None while the run has no bar."""
    eq = equity_frame(factory, run_id)
    if eq.empty:
        return None
    initial = settings.broker.initial_cash
    tf = settings.timeframe
    equity, cash = eq["equity"].to_numpy(dtype=float), eq["cash"].to_numpy(dtype=float)
    orders = orders_frame(factory, run_id)
    decisions = decisions_frame(factory, run_id)
    filled = orders[orders["status"] == "filled"]
    fees = float(eq["fees_paid"].iloc[-1])
    trips = round_trips(_fills(filled))
    activity = Activity(
        notional=float((filled["fill_amount"] * filled["fill_price"]).sum()) if len(filled) else 0.0,
        fees_paid=fees,
        fills=len(filled),
        trade_pnl=trips.pnl,
        open_trades=trips.open,
        decisions=len(decisions),
        abstentions=int(decisions["abstained"].astype(bool).sum()) if len(decisions) else 0,
    )
    strategy = compute(Curve(equity, initial, timeframe_ms(tf), exposure=1.0 - cash / equity), activity)
    bars = pd.DatetimeIndex(eq.index)
    hold_curve, hold = buy_and_hold(source, settings.symbols, bars, rules, settings)
    extra = {
        "fee_drag": fees / initial,
        "long_bias": strategy.exposure,
        "clamped_decisions": int(decisions["clamps"].map(bool).sum()) if len(decisions) else 0,
    }
    extra |= llm_usage(factory, run_id)
    metrics = RunMetrics(
        strategy,
        buy_and_hold=MetricSet.from_numbers(hold),
        cash=MetricSet.from_numbers(cash_metrics(bars, initial, tf)),
        extra=extra,
    )
    return metrics, hold_curve


def _fills(filled: pd.DataFrame) -> list[LedgerFill]:
    """The filled orders as the ledger's fills, in ledger order."""
    columns = ("symbol", "side", "fill_amount", "fill_price", "fee")
    return [
        LedgerFill(str(symbol), "buy" if side == "buy" else "sell", float(amount), float(price), float(fee))
        for symbol, side, amount, price, fee in zip(*(filled[c].tolist() for c in columns), strict=True)
    ]


def run_metrics(
    factory: sessionmaker[Session],
    run_id: str,
    source: CandleSource,
    settings: Settings,
    rules: Mapping[str, MarketRules],
) -> dict[str, Any]:
    """The stored form of `agent_run_metrics` (`RunMetrics.to_json`: strategy, buy_and_hold, cash,
    warnings) plus `hold_curve`, the buy & hold equity; `{"bars": 0}` for a run without bars."""
    measured = agent_run_metrics(factory, run_id, source, settings, rules)
    if measured is None:
        return {"bars": 0}
    metrics, hold_curve = measured
    return metrics.to_json() | {"hold_curve": hold_curve}


def directional_outcomes(decisions: pd.DataFrame, source: CandleSource) -> pd.DataFrame:
    """Each buy, sell or close decision (abstentions left out) with its confidence and the next bar's
    close-to-close return in its direction (`ret`: positive when the market moved the decision's way);
    decisions on the last known bar are left out."""
    active = decisions[
        decisions["action"].isin(["buy", "sell", "close"]) & ~decisions["abstained"].astype(bool)
    ]
    rows = []
    for _, d in active.iterrows():
        hist = source.history(d["symbol"], 1 << 62)
        times = ts_ms(pd.DatetimeIndex(hist.index))
        i = int(np.searchsorted(times, int(d["bar_ts"])))
        if i + 1 >= len(hist) or times[i] != d["bar_ts"]:
            continue
        ret = float(hist["close"].iloc[i + 1] / hist["close"].iloc[i] - 1.0)
        sign = 1.0 if d["action"] == "buy" else -1.0
        rows.append((float(d["confidence"] or 0.0), sign * ret))
    return pd.DataFrame(rows, columns=["confidence", "ret"])


def calibration(decisions: pd.DataFrame, source: CandleSource, buckets: int = 5) -> pd.DataFrame:
    """Confidence buckets against the realised next-bar return in each decision's direction."""
    df = directional_outcomes(decisions, source)
    if df.empty:
        return pd.DataFrame(columns=["confidence", "decisions", "mean_directional_return", "hit_rate"])
    edges = pd.Index(np.linspace(0.0, 1.0, buckets + 1))
    df["bucket"] = pd.cut(df["confidence"], edges, include_lowest=True)
    out = df.groupby("bucket", observed=True).agg(
        decisions=("ret", "size"),
        mean_directional_return=("ret", "mean"),
        hit_rate=("ret", lambda r: float((r > 0).mean())),
    )
    out.index = out.index.astype(str)
    return out.reset_index().rename(columns={"bucket": "confidence"})


def write_agent_report(
    out_dir: Path,
    factory: sessionmaker[Session],
    run_id: str,
    source: CandleSource,
    settings: Settings,
    rules: Mapping[str, MarketRules],
    title: str,
    header: Mapping[str, str] | None = None,
    traffic: Mapping[str, float | int | str | None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write the run's report files into `out_dir`; returns the HTML path and the metrics.

    `header`: what the run was (model, endpoint profile, prompt mode, budget, window …), shown under the
    title; `traffic`: the model traffic of the run (`agent.graph.throughput.Throughput.metrics`), shown with
    the model usage. Both are shown as given, escaped."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = run_metrics(factory, run_id, source, settings, rules)
    eq = equity_frame(factory, run_id)
    decisions = decisions_frame(factory, run_id)
    orders = orders_frame(factory, run_id)
    calib = calibration(decisions, source)
    csv_frame(decisions.drop(columns=["reasoning"])).to_csv(out_dir / "decisions.csv", index=False)
    csv_frame(orders).to_csv(out_dir / "orders.csv", index=False)
    overview = _overview(eq, metrics.get("hold_curve"), settings.broker.initial_cash)
    (out_dir / "equity.png").write_bytes(charts.overview_png(overview))
    figures = _charts(overview, _price_marks(eq, orders, decisions, source, settings.symbols))
    page = _html(title, run_id, metrics, calib, decisions, orders, figures, header or {}, traffic or {})
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    metrics.pop("hold_curve", None)
    return path, metrics


# ---------------------------------------------------------------------------------------------- render


def _overview(eq: pd.DataFrame, hold: pd.Series | None, initial: float) -> charts.Overview:
    """The run's equity (and buy & hold's) after each bar, and its exposure (1 - cash / equity)."""
    equity = [charts.Line("agent", eq["equity"].astype(float))]
    if hold is not None:
        equity.append(charts.Line("buy & hold", hold.astype(float)))
    exposure = charts.Line("agent", 1.0 - eq["cash"].astype(float) / eq["equity"].astype(float))
    return charts.Overview(tuple(equity), initial, (exposure,))


def _price_marks(
    eq: pd.DataFrame, orders: pd.DataFrame, decisions: pd.DataFrame, source: CandleSource, symbols: list[str]
) -> list[charts.PriceMarks]:
    """Each symbol's closes over the run's bars with its filled orders; a fill's note is the order and the
    raw rationale of the decision behind it (the chart escapes it)."""
    if eq.empty:
        return []
    last = int(eq.index[-1].value // 1_000_000)
    why = dict(zip(decisions["id"].tolist(), decisions["rationale"].tolist(), strict=True))
    filled = orders[orders["status"] == "filled"]
    marks = []
    for symbol in sorted(symbols)[:MAX_SYMBOL_CHARTS]:
        close = source.history(symbol, last)["close"].reindex(eq.index).astype(float)
        mine = filled[filled["symbol"] == symbol]
        columns = ("side", "reason", "fill_amount", "fill_price", "decision_id")
        fills = tuple(
            charts.Fill(
                when,
                float(price),
                charts.fill_kind(side == "buy", str(reason)),
                _note(str(reason), float(amount), float(price), why.get(decision)),
            )
            for when, side, reason, amount, price, decision in zip(
                pd.DatetimeIndex(mine["date"]), *(mine[c].tolist() for c in columns), strict=True
            )
        )
        marks.append(charts.PriceMarks(symbol, close, fills))
    return marks


def _note(reason: str, amount: float, price: float, rationale: object) -> str:
    """A fill's hover note: the order, then the rationale behind it (raw text, if any)."""
    order = f"{reason}: {amount:.8g} at {price:.8g}"
    return f"{order}. {rationale}" if isinstance(rationale, str) and rationale else order


def _charts(overview: charts.Overview, marks: list[charts.PriceMarks]) -> str:
    """The report's interactive charts (needs `charts.script()` on the page) with the PNG fallback note."""
    if not overview.equity or overview.equity[0].values.empty:
        return ""
    parts = [
        "<h2>Equity, drawdown and exposure</h2>",
        charts.div(charts.overview_figure(overview), "chart-overview"),
        charts.noscript("equity.png"),
    ]
    for j, m in enumerate(marks):
        parts.append(
            f"<h2>Trades: {for_html(m.symbol)}</h2>{charts.div(charts.trades_figure(m), f'chart-trades-{j}')}"
        )
    return "".join(parts)


_ROWS = [
    ("total_return", "Total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("volatility", "Volatility", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("calmar", "Calmar", "num"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_days", "Max DD duration (days)", "num"),
    ("trades", "Closed trades", "num"),
    ("win_rate", "Win rate", "pct"),
    ("exposure", "Exposure (avg)", "pct"),
    ("fees_paid", "Fees paid", "num"),
    ("turnover", "Turnover", "num"),
    ("final_equity", "Final equity", "num"),
]


def fmt(value: Any, kind: str = "num") -> str:
    """A metric for display."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if kind == "pct":
        return f"{value * 100:.2f}%"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.4g}"
    return for_html(value)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{for_html(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(
    title: str,
    run_id: str,
    m: dict[str, Any],
    calib: pd.DataFrame,
    decisions: pd.DataFrame,
    orders: pd.DataFrame,
    figures: str,
    header: Mapping[str, str],
    traffic: Mapping[str, float | int | str | None],
) -> str:
    s, h, c = m.get("strategy", {}), m.get("buy_and_hold", {}), m.get("cash", {})
    facts = _table(["run", ""], [[for_html(k), for_html(v)] for k, v in header.items()]) if header else ""
    perf = _table(
        ["metric", "agent", "buy & hold", "cash"],
        [[label, fmt(s.get(k), kind), fmt(h.get(k), kind), fmt(c.get(k), kind)] for k, label, kind in _ROWS],
    )
    llm_keys = [
        "llm_calls",
        "cache_hits",
        "llm_errors",
        "prompt_tokens",
        "completion_tokens",
        "cached_prompt_tokens",
        "mean_latency_ms",
        "decisions",
        "abstentions",
        "clamped_decisions",
    ]
    llm = _table(
        ["LLM", "value"],
        [[k, fmt(s.get(k))] for k in llm_keys]
        + [[for_html(k), for_html(v) if isinstance(v, str) else fmt(v)] for k, v in traffic.items()],
    )
    beh = _table(
        ["behaviour", "value"],
        [
            ["long bias (mean exposure)", fmt(s.get("long_bias"), "pct")],
            ["turnover", fmt(s.get("turnover"))],
            ["fee drag", fmt(s.get("fee_drag"), "pct")],
            ["fills", fmt(s.get("fills"))],
        ],
    )
    cal = _table(list(calib.columns), [[fmt(v) for v in r] for r in calib.itertuples(index=False)])
    shown = decisions.tail(200)
    timeline = _table(
        [
            "bar (UTC)",
            "symbol",
            "source",
            "action",
            "target",
            "final",
            "conf.",
            "abstained",
            "rationale",
            "clamps",
        ],
        [
            [
                str(d.date)[:16],
                for_html(d.symbol),
                for_html(d.source),
                for_html(d.action),
                fmt(d.target_exposure),
                fmt(d.final_exposure),
                fmt(d.confidence),
                "yes: " + for_html(d.abstain_reason, RATIONALE_SHOWN) if d.abstained else "",
                for_html(d.rationale or "", RATIONALE_SHOWN),
                for_html(_clamp_kinds(d.clamps)),
            ]
            for d in shown.itertuples()
        ],
    )
    order_rows = _table(
        ["bar (UTC)", "symbol", "side", "status", "reason", "amount", "price", "fee"],
        [
            [
                str(o.date)[:16],
                for_html(o.symbol),
                for_html(o.side),
                for_html(o.status),
                for_html(o.reason),
                fmt(o.fill_amount),
                fmt(o.fill_price),
                fmt(o.fee),
            ]
            for o in orders.tail(200).itertuples()
        ],
    )
    notes = "".join(f"<p>warning: {for_html(w)}</p>" for w in m.get("warnings", []))
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}th{background:#eee}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{for_html(title)}</title>"
        f"<style>{style}</style>{charts.script()}</head><body><h1>{for_html(title)}</h1>"
        f"<p>run <code>{for_html(run_id)}</code></p>{facts}{notes}{figures}"
        f"<h2>Performance (same bars, same fees)</h2>{perf}<h2>Model usage</h2>{llm}<h2>Behaviour</h2>{beh}"
        f"<h2>Calibration: confidence against the next bar's return in the decision's direction</h2>{cal}"
        f"<h2>Decision timeline (last 200)</h2>{timeline}<h2>Orders (last 200)</h2>{order_rows}</body></html>"
    )


def _clamp_kinds(clamps: object) -> str:
    """The kinds of a decision's recorded clamps, `; `-joined (a list of dicts; anything else shows none)."""
    if not isinstance(clamps, list):
        return ""
    return "; ".join(str(e.get("kind", "")) for e in clamps if isinstance(e, dict))
