"""How metrics are labelled and printed, shared by the Rich tables and the HTML report.

Contracts:
- `METRICS` lists the metrics a summary shows, in order: (key, label, kind) with kind one of `pct`,
  `ratio`, `money`, `int`, `days`.
- `fmt` never raises: missing or undefined values (None, NaN) print as "-", infinity as "inf".
"""

from __future__ import annotations

import math
from typing import Any

METRICS: list[tuple[str, str, str]] = [
    ("final_equity", "final equity", "money"),
    ("total_return", "total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("volatility", "volatility (ann.)", "pct"),
    ("sharpe", "Sharpe", "ratio"),
    ("sortino", "Sortino", "ratio"),
    ("calmar", "Calmar", "ratio"),
    ("max_drawdown", "max drawdown", "pct"),
    ("max_drawdown_days", "max drawdown duration", "days"),
    ("trades", "closed trades", "int"),
    ("open_trades", "open trades", "int"),
    ("win_rate", "win rate", "pct"),
    ("profit_factor", "profit factor", "ratio"),
    ("expectancy", "expectancy / trade", "money"),
    ("exposure", "exposure (avg)", "pct"),
    ("time_in_market", "time in market", "pct"),
    ("turnover", "turnover (x equity)", "ratio"),
    ("fees_paid", "fees paid", "money"),
    ("dust_orders", "dust orders skipped", "int"),
    ("capped_orders", "orders capped by volume", "int"),
    ("clamped_bars", "bars clamped by caps", "int"),
]

COLUMNS = {
    "strategy": "strategy",
    "buy_and_hold": "buy & hold",
    "buy_and_hold_capped": "buy & hold (capped)",
    "cash": "cash",
}


def fmt(value: Any, kind: str) -> str:
    """A metric value for display."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if kind == "pct":
        return f"{100 * value:.2f}%"
    if kind == "ratio":
        return f"{value:.2f}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "days":
        return f"{value:.1f} d"
    if kind == "int":
        return f"{int(value):d}"
    return str(value)


def label(key: str) -> str:
    """The display label of a metric key (the key itself when unknown)."""
    return next((lab for k, lab, _ in METRICS if k == key), key)


def kind_of(key: str) -> str:
    """The display kind of a metric key (`ratio` when unknown)."""
    return next((kind for k, _, kind in METRICS if k == key), "ratio")
