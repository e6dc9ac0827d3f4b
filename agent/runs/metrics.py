"""The metric set of a run: one typed record, computed by one function (`compute`) from an equity curve and
what the trading did, for every kind of run (rule backtest, sweep trial, agent backtest, demo, daemon).

Contracts:
- `compute(curve, activity)` is the only place a run's figures are computed. The compiled engine
  (`agent.backtest.metrics.compute_metrics`) and the ledger reader (`agent.evaluation.agent_report`) only
  gather its inputs: the equity after each bar's close and the exposure there (`Curve`), traded notional,
  fees, fills, closed round trips and decisions (`Activity`). Definitions are in `agent.runs.curve`.
- Windows too short to annualise: fewer than `MIN_ANNUAL_DAYS` days or `MIN_ANNUAL_BARS` bars. Then the
  annualised fields (`ANNUALISED`: CAGR, volatility, Sharpe, Sortino, Calmar) are NaN and `warnings` says
  why; the other figures (total return, drawdown, trades, ...) are shown as they are, unannualised.
- In memory, a figure that is undefined (no trades, zero variance) or left out (too short) is NaN, never
  0; stored as JSON it becomes null (`agent.runs.lifecycle.json_safe`).
- Every run stores `RunMetrics.to_json()` in `runs.metrics`: `{"strategy": {...}, "buy_and_hold": {...},
  ["buy_and_hold_capped": {...},] "cash": {...}, "warnings": [...]}`. Each column holds every `MetricSet`
  field; the strategy column adds the run kind's own figures (`extra`: LLM usage, engine counters).
  Buy & hold is `agent.backtest.baseline`, the one benchmark. `RunMetrics.from_json` reads that back, and
  rows written before this layout (strategy figures at the top level) too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np

from agent.runs.curve import FloatArray

MS_PER_DAY = 24 * 3_600_000
MS_PER_YEAR = 365 * MS_PER_DAY
"""Crypto trades 365 days a year, 24 hours a day: `1h` bars make 8,760 periods a year."""
MIN_ANNUAL_DAYS = 30.0
"""A window shorter than this is not annualised."""
MIN_ANNUAL_BARS = 30
"""Nor one with fewer bars than this."""
ANNUALISED = ("cagr", "volatility", "sharpe", "sortino", "calmar")
"""The fields left out (NaN) on a window too short to annualise."""
BASELINES = ("buy_and_hold", "buy_and_hold_capped", "cash")
"""The reference columns stored next to the strategy's, in display order."""

Display = Literal["pct", "ratio", "money", "int", "days"]


@dataclass(frozen=True)
class Curve:
    """An equity curve: equity after each bar's close, from `initial` cash, bars `bar_ms` long."""

    equity: FloatArray
    initial: float
    bar_ms: int
    exposure: FloatArray | None = None
    """Gross position value / equity after each close (None: unknown, so exposure figures are NaN)."""
    periods_per_year: float | None = None
    """Bars in a year for annualising; None: a 365-day year of `bar_ms` bars."""

    @property
    def periods(self) -> float:
        """Bars in a year."""
        return self.periods_per_year or MS_PER_YEAR / self.bar_ms


@dataclass(frozen=True)
class Activity:
    """What the trading did over the curve's bars."""

    notional: float = 0.0
    """Traded notional (amount x price of every fill)."""
    fees_paid: float = 0.0
    fills: int = 0
    trade_pnl: FloatArray = field(default_factory=lambda: np.zeros(0))
    """Net pnl of each closed round trip."""
    open_trades: int = 0
    decisions: int | None = None
    """Decisions recorded in the ledger (None: the compiled engine records none)."""
    abstentions: int | None = None
    """Of them, abstentions (0 for the compiled engine: rules never abstain)."""


@dataclass(frozen=True)
class MetricSet:
    """The figures every run stores (see the module contract; NaN = undefined or left out)."""

    final_equity: float
    total_return: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    """The deepest fall from a running peak: a negative fraction in [-1, 0]."""
    max_drawdown_days: float
    trades: int
    open_trades: int
    win_rate: float
    profit_factor: float
    expectancy: float
    exposure: float
    time_in_market: float
    turnover: float
    fees_paid: float
    fills: int
    decisions: int | None
    abstentions: int | None
    bars: int
    days: float
    warnings: tuple[str, ...] = ()

    def numbers(self) -> dict[str, float]:
        """Every figure by name (no warnings); None becomes NaN."""
        return {f.name: _number(getattr(self, f.name)) for f in fields(self) if f.name != "warnings"}

    @classmethod
    def from_numbers(cls, values: Mapping[str, Any], warnings: tuple[str, ...] | None = None) -> MetricSet:
        """The set held in `values` (missing or null figures are NaN); `warnings` default to the window
        rule's for the bars and days in `values`."""
        got: dict[str, Any] = {name: _number(values.get(name)) for name in METRIC_KEYS}
        got |= {name: _count(got[name]) for name in _COUNTS}
        if warnings is None:  # a row that stored no days (older agent runs) has no window to judge
            known = not math.isnan(got["days"])
            warnings = window_warnings(got["bars"] or 0, got["days"]) if known else ()
        return cls(**got, warnings=tuple(warnings))


METRIC_KEYS = tuple(f.name for f in fields(MetricSet) if f.name != "warnings")
"""The names of a metric set's figures, in display order."""
_COUNTS = ("trades", "open_trades", "fills", "decisions", "abstentions", "bars")

LABELS: dict[str, tuple[str, Display]] = {
    "final_equity": ("final equity", "money"),
    "total_return": ("total return", "pct"),
    "cagr": ("CAGR (annualised return)", "pct"),
    "volatility": ("volatility (ann.)", "pct"),
    "sharpe": ("Sharpe", "ratio"),
    "sortino": ("Sortino", "ratio"),
    "calmar": ("Calmar", "ratio"),
    "max_drawdown": ("max drawdown", "pct"),
    "max_drawdown_days": ("max drawdown duration", "days"),
    "trades": ("closed trades", "int"),
    "open_trades": ("open trades", "int"),
    "win_rate": ("win rate", "pct"),
    "profit_factor": ("profit factor", "ratio"),
    "expectancy": ("expectancy / trade", "money"),
    "exposure": ("exposure (avg)", "pct"),
    "time_in_market": ("time in market", "pct"),
    "turnover": ("turnover (x equity)", "ratio"),
    "fees_paid": ("fees paid", "money"),
    "fills": ("fills", "int"),
    "decisions": ("decisions", "int"),
    "abstentions": ("abstentions", "int"),
    "bars": ("bars", "int"),
    "days": ("days", "days"),
}
"""Each figure's display label and kind."""


def annualisable(bars: int, days: float) -> bool:
    """Whether a window of `bars` bars spanning `days` days is long enough to annualise."""
    return bars >= MIN_ANNUAL_BARS and days >= MIN_ANNUAL_DAYS


def window_warnings(bars: int, days: float) -> tuple[str, ...]:
    """What the window rule says about a window of `bars` bars over `days` days (empty when long enough)."""
    if bars == 0:
        return ("no bars yet: no figures",)
    if annualisable(bars, days):
        return ()
    return (
        f"{bars} bars ({days:.1f} days) are too short to annualise (at least {MIN_ANNUAL_BARS} bars over "
        f"{MIN_ANNUAL_DAYS:g} days needed): CAGR, volatility, Sharpe, Sortino and Calmar are left out",
    )


def compute(curve: Curve, activity: Activity | None = None) -> MetricSet:
    """The metric set of `curve` and `activity` (see the module contract)."""
    from agent.runs.curve import cagr, curve_stats, trade_stats

    act = activity or Activity()
    equity = np.asarray(curve.equity, dtype=np.float64)
    n = len(equity)
    days = n * curve.bar_ms / MS_PER_DAY
    warnings = window_warnings(n, days)
    trades = trade_stats(np.asarray(act.trade_pnl, dtype=np.float64))
    if n == 0:
        empty = dict.fromkeys(METRIC_KEYS, math.nan) | {"bars": 0, "days": 0.0}
        return MetricSet.from_numbers(empty | _activity(act, trades), warnings)
    mean, std, downside, depth, duration = curve_stats(equity, curve.initial)
    final = float(equity[-1])
    root = math.sqrt(curve.periods)
    annual: dict[str, float] = dict.fromkeys(ANNUALISED, math.nan)
    if annualisable(n, days):
        growth = cagr(final, curve.initial, n, curve.periods)
        annual = {
            "cagr": growth,
            "volatility": std * root,
            "sharpe": mean / std * root if std > 0 else math.nan,
            "sortino": mean * root / downside if downside > 0 else math.nan,
            "calmar": growth / abs(depth) if depth < 0 else math.nan,
        }
    exposure = None if curve.exposure is None else np.asarray(curve.exposure, dtype=np.float64)
    mean_equity = float(equity.mean())
    values = annual | {
        "final_equity": final,
        "total_return": final / curve.initial - 1.0 if curve.initial > 0 else math.nan,
        "max_drawdown": depth,
        "max_drawdown_days": duration * curve.bar_ms / MS_PER_DAY,
        "exposure": math.nan if exposure is None else float(exposure.mean()),
        "time_in_market": math.nan if exposure is None else float(np.count_nonzero(exposure > 0)) / n,
        "turnover": act.notional / mean_equity if mean_equity > 0 else math.nan,
        "bars": n,
        "days": days,
    }
    return MetricSet.from_numbers(values | _activity(act, trades), warnings)


def _activity(act: Activity, trades: Mapping[str, float]) -> dict[str, Any]:
    return dict(trades) | {
        "open_trades": act.open_trades,
        "fees_paid": act.fees_paid,
        "fills": act.fills,
        "decisions": act.decisions,
        "abstentions": act.abstentions,
    }


@dataclass(frozen=True)
class RunMetrics:
    """What a run stores in `runs.metrics`: its metric set beside the references (module contract)."""

    strategy: MetricSet
    buy_and_hold: MetricSet | None = None
    cash: MetricSet | None = None
    buy_and_hold_capped: MetricSet | None = None
    extra: Mapping[str, float] = field(default_factory=dict)
    """The run kind's own figures, stored in the strategy column after the metric set."""

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the reader must know before reading the figures."""
        return self.strategy.warnings

    def baselines(self) -> dict[str, MetricSet]:
        """The reference columns present, in display order."""
        found = {name: getattr(self, name) for name in BASELINES}
        return {name: ms for name, ms in found.items() if ms is not None}

    def to_json(self) -> dict[str, Any]:
        """The stored form (plain data; NaN left for `json_safe` to turn into null)."""
        out: dict[str, Any] = {"strategy": self.strategy.numbers() | dict(self.extra)}
        out |= {name: ms.numbers() for name, ms in self.baselines().items()}
        return out | {"warnings": list(self.warnings)}

    @classmethod
    def of(cls, columns: Mapping[str, Mapping[str, Any]]) -> RunMetrics:
        """From a report's columns, {"strategy": figures, "buy_and_hold": figures, ...}: the strategy's
        figures beyond the metric set become `extra`; warnings follow the window rule."""
        figures = columns["strategy"]
        baselines = {
            name: MetricSet.from_numbers(columns[name]) for name in BASELINES if columns.get(name) is not None
        }
        return cls(MetricSet.from_numbers(figures), extra=_extra(figures), **baselines)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RunMetrics | None:
        """A stored `runs.metrics` read back; None when the run stored none (yet)."""
        if not data:
            return None
        nested = data.get("strategy")
        figures = nested if isinstance(nested, Mapping) else _top_level(data)
        stored = data.get("warnings")
        warnings = tuple(str(w) for w in stored) if isinstance(stored, list) else None
        baselines = {
            name: MetricSet.from_numbers(data[name], warnings)
            for name in BASELINES
            if isinstance(data.get(name), Mapping)
        }
        return cls(MetricSet.from_numbers(figures, warnings), extra=_extra(figures), **baselines)


def _top_level(data: Mapping[str, Any]) -> dict[str, Any]:
    """The strategy's figures of a row written before the nested layout (they were at the top level)."""
    return {k: v for k, v in data.items() if k not in BASELINES and k != "warnings"}


def _extra(figures: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: _number(v)
        for k, v in figures.items()
        if k not in LABELS and (v is None or isinstance(v, int | float)) and not isinstance(v, bool)
    }


def _number(value: Any) -> float:
    """A stored figure as a number: None (JSON null) is NaN."""
    if value is None:
        return math.nan
    return value if isinstance(value, int) and not isinstance(value, bool) else float(value)


def _count(value: float) -> int | None:
    """A count: None when undefined."""
    return None if isinstance(value, float) and math.isnan(value) else int(value)
