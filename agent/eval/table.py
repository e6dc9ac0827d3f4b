"""A campaign's table: per window and symbol group, each strategy's figures beside buy & hold and cash, with
bootstrap intervals, tests and the selection-bias correction; and the before/after-cutoff comparison.

Contracts:
- Figures come from each run's stored metric set (`agent.runs.metrics`, the same set `runs compare` shows);
  intervals and tests from the bar returns of the equity curves (`agent.eval.stats`), strategy and
  benchmark aligned on the bars both have.
- The best rule baseline of a window and group is the rule strategy with the highest total return there
  (chosen after the fact, which favours the baseline); a rule strategy is compared with the best of the
  others. Every strategy, buy & hold included when the file lists it, counts as a rule strategy if it is
  not an LLM variant.
- `p_vs_hold` / `p_vs_best_rule`: one-sided p-values that the strategy's mean return per bar beats the
  benchmark's (`stats.superior` with one model). `family_p`: the p-value that the best of all the group's
  strategies beats buy & hold, corrected for trying them all. `deflated_sharpe`: the probability that the
  strategy's Sharpe ratio is real given `Campaign.trials` strategies tried.
- Each test is seeded from the campaign's seed and the row's position, so a rerun prints the same table.
- Cutoff rows: for each LLM variant, its mean excess total return over buy & hold in the windows before
  and after its training cutoff, next to the same for the best rule baseline of each window (the control:
  a drop the rules share is the market's, a drop only the model shows may be memory).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd

from agent.backtest.preset import Statistics
from agent.eval import stats
from agent.eval.campaign import Campaign, CutoffSide, cutoff_of, cutoff_side
from agent.eval.runner import CellResult
from agent.market.candles import timeframe_ms
from agent.runs import curve
from agent.runs.curve import bar_returns
from agent.runs.metrics import MS_PER_YEAR, MetricSet, RunMetrics

RowKind = Literal["rule", "llm", "buy_and_hold", "cash"]


@dataclass(frozen=True)
class Row:
    """One line of a window's table: a strategy (rule or LLM) or a benchmark (buy & hold, cash)."""

    window: str
    group: str
    name: str
    kind: RowKind
    run_id: str | None
    metrics: MetricSet
    return_ci: tuple[float, float] = (math.nan, math.nan)
    sharpe_ci: tuple[float, float] = (math.nan, math.nan)
    p_vs_hold: float = math.nan
    p_vs_best_rule: float = math.nan
    deflated_sharpe: float = math.nan
    brier: float = math.nan
    hit_rate: float = math.nan


@dataclass(frozen=True)
class Group:
    """The rows of one window and symbol group, with the family test and the best rule."""

    window: str
    regime: str
    group: str
    rows: tuple[Row, ...]
    best_rule: str | None
    family_p: float
    block: int
    bars: int


@dataclass(frozen=True)
class CutoffRow:
    """An LLM variant before and after its training cutoff, beside the best rule baselines."""

    variant: str
    cutoff: str | None
    windows_before: int
    windows_after: int
    excess_before: float
    excess_after: float
    rule_excess_before: float
    rule_excess_after: float

    @property
    def change(self) -> float:
        """After minus before, for the variant."""
        return self.excess_after - self.excess_before

    @property
    def rule_change(self) -> float:
        """After minus before, for the best rule baselines (the control)."""
        return self.rule_excess_after - self.rule_excess_before


def build(campaign: Campaign, results: Sequence[CellResult]) -> list[Group]:
    """The table of every window and symbol group, in the campaign's order (module contract)."""
    opts = campaign.preset.statistics
    groups: list[Group] = []
    keys = list(dict.fromkeys((r.cell.window.name, r.cell.group) for r in results))
    for gi, (window, group) in enumerate(keys):
        cells = [r for r in results if (r.cell.window.name, r.cell.group) == (window, group)]
        hold_r = _returns(cells[0].hold, cells[0].initial)
        rets = {r.cell.strategy: _returns(r.equity, r.initial) for r in cells}
        rules = [r for r in cells if r.cell.kind == "rule"]
        best = max(rules, key=lambda r: _total(r.metrics)) if rules else None
        block = stats.block_length(hold_r, opts.block_bars)
        periods = MS_PER_YEAR / timeframe_ms(campaign.preset.campaign.timeframe)
        trial_sharpes = [stats.per_bar_sharpe(v) for v in rets.values()]
        seed = opts.seed + 1000 * gi
        rows = []
        for i, r in enumerate(cells):
            own = rets[r.cell.strategy]
            s, h = _aligned(r.equity, own, cells[0].hold, hold_r)
            others = [x for x in rules if x is not r]
            best_other = max(others, key=lambda x: _total(x.metrics)) if others else None
            vs_best = math.nan
            if best_other is not None:
                a, b = _aligned(r.equity, own, best_other.equity, rets[best_other.cell.strategy])
                vs_best = stats.superior([a], b, samples=opts.samples, block=block, seed=seed + i + 500)
            calib = r.calibration
            rows.append(
                Row(
                    window,
                    group,
                    r.cell.strategy,
                    r.cell.kind,
                    r.run_id,
                    r.metrics.strategy,
                    _interval(own, stats.total_return, opts, block, seed + i),
                    _interval(own, partial(curve.sharpe, periods=periods), opts, block, seed + i)
                    if math.isfinite(r.metrics.strategy.sharpe)  # not on a window too short to annualise
                    else (math.nan, math.nan),
                    stats.superior([s], h, samples=opts.samples, block=block, seed=seed + i),
                    vs_best,
                    stats.deflated_sharpe(own, trial_sharpes, campaign.trials),
                    calib.brier if calib is not None else math.nan,
                    calib.hit_rate if calib is not None else math.nan,
                )
            )
        base = cells[0].metrics
        if base.buy_and_hold is not None:
            rows.append(Row(window, group, "buy & hold", "buy_and_hold", None, base.buy_and_hold))
        if base.cash is not None:
            rows.append(Row(window, group, "cash", "cash", None, base.cash))
        aligned = [_aligned(r.equity, rets[r.cell.strategy], cells[0].hold, hold_r)[0] for r in cells]
        n = min(len(a) for a in aligned)
        family = stats.superior(
            [a[-n:] for a in aligned], hold_r[-n:], samples=opts.samples, block=block, seed=seed + 999
        )
        groups.append(
            Group(
                window,
                cells[0].cell.window.regime,
                group,
                tuple(rows),
                best.cell.strategy if best is not None else None,
                family,
                block,
                len(hold_r),
            )
        )
    return groups


def cutoff_rows(campaign: Campaign, results: Sequence[CellResult]) -> list[CutoffRow]:
    """The before/after comparison of each LLM variant (module contract)."""
    out = []
    for variant in campaign.preset.llm:
        sides: dict[CutoffSide, list[tuple[float, float]]] = {"before": [], "after": []}
        cutoff: str | None = None
        for r in results:
            if r.cell.variant is None or r.cell.variant.name != variant.name:
                continue
            cutoff = cutoff_of(campaign, r.cell)
            side = cutoff_side(r.cell.window, cutoff)
            if side not in sides:
                continue
            hold = _raw_total(r.metrics, "buy_and_hold")
            rules = [
                x
                for x in results
                if x.cell.kind == "rule"
                and (x.cell.window.name, x.cell.group) == (r.cell.window.name, r.cell.group)
            ]
            best = max((_raw_total(x.metrics) for x in rules), default=math.nan)
            sides[side].append((_raw_total(r.metrics) - hold, best - hold))
        before, after = (
            np.array(sides["before"] or [(math.nan, math.nan)]),
            np.array(sides["after"] or [(math.nan, math.nan)]),
        )
        out.append(
            CutoffRow(
                variant.name,
                cutoff,
                len(sides["before"]),
                len(sides["after"]),
                float(np.mean(before[:, 0])),
                float(np.mean(after[:, 0])),
                float(np.mean(before[:, 1])),
                float(np.mean(after[:, 1])),
            )
        )
    return out


def _interval(
    returns: stats.FloatArray,
    statistic: Callable[[stats.FloatArray], float],
    opts: Statistics,
    block: int,
    seed: int,
) -> tuple[float, float]:
    return stats.interval(
        returns, statistic, samples=opts.samples, confidence=opts.confidence, block=block, seed=seed
    )


def _total(metrics: RunMetrics) -> float:
    """The strategy's total return, for choosing the best (undefined ranks last)."""
    value = float(metrics.strategy.total_return)
    return value if math.isfinite(value) else -math.inf


def _raw_total(metrics: RunMetrics, column: str = "strategy") -> float:
    ms = metrics.strategy if column == "strategy" else metrics.baselines().get(column)
    return float(ms.total_return) if ms is not None else math.nan


def _returns(equity: pd.Series, initial: float) -> stats.FloatArray:
    return np.asarray(bar_returns(equity.to_numpy(dtype=float), initial), dtype=float)


def _aligned(
    a_eq: pd.Series, a: stats.FloatArray, b_eq: pd.Series, b: stats.FloatArray
) -> tuple[stats.FloatArray, stats.FloatArray]:
    """Two return series on the bars both curves have (the returns are per bar of each curve)."""
    if len(a_eq) == len(b_eq) and a_eq.index.equals(b_eq.index):
        return a, b
    common = a_eq.index.intersection(b_eq.index)
    ia, ib = a_eq.index.get_indexer(common), b_eq.index.get_indexer(common)
    return a[ia], b[ib]
