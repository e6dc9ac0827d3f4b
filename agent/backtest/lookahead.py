"""Look-ahead check: do a strategy's decisions at bars <= c change when the bars after c are removed?

A strategy may use rows <= t for its decision at bar t (`strategies.base`). The check runs it once on the
full data, then once per cut point c on the rows <= c, and compares every decision at every bar <= c with
the full run. A point-in-time strategy gives the same numbers; one that reads a later row (a next-close
peek, a centred rolling window, `shift(-1)` inside an indicator, a coarser bar joined to the bars by its
start) changes some of them.

Contracts:
- Decisions are what a rule backtest acts on per bar (`agent.backtest.plan.rule_plan`): the target exposure
  (`Strategy.exposure`) and, when the strategy's parameters set one, its exit plan (`exit_levels`, which is
  `exit_plan` on the frame's columns: stop-loss level, take-profit level, trailing distance).
- Usable cut points are the bars c with first <= c <= n - 2, first = max(the strategy's warm-up, `start`)
  (`start`: the row of the window's first bar; the rows before it are history). Cutting after the last bar
  removes nothing. By default every usable bar is a cut, up to `DEFAULT_CUTS` per symbol; when there are
  more (or more than `samples`), the bars where the full run's target changes come first (evenly thinned
  when they alone exceed half the budget), the rest of the budget is spread evenly over the other usable
  bars. No randomness: a rerun checks the same bars.
- Equal means NaN on both sides, or numbers within `TOLERANCE` x max(1, |full value|). A cut with a
  difference is one `Finding`: its first differing bar and which decision differed there.
- No usable cut point raises `NoCutPoint` (a `DataError`) saying why: a check that compared nothing must
  not report a pass.
- Cost: one strategy run per cut, on the rows <= c; comparisons are vectorised. `benchmarks/
  bench_lookahead.py` prints the time of `DEFAULT_CUTS` cuts for each built-in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from agent.backtest.data import Window
from agent.backtest.plan import exit_levels
from agent.errors import ConfigError, DataError
from strategies.base import FloatArray, Strategy, prices

TOLERANCE = 1e-12
DEFAULT_CUTS = 2_500
"""Cut points per symbol by default: every usable bar up to this many (about a second for a built-in on a
year of hourly bars, see `benchmarks/bench_lookahead.py`)."""

Decision = Literal["target", "stop_loss", "take_profit", "trailing"]
DECISIONS: tuple[Decision, ...] = ("target", "stop_loss", "take_profit", "trailing")
IntArray = npt.NDArray[np.int64]


class NoCutPoint(DataError):
    """The data leaves no bar to cut after (warm-up as long as the data, or a one-bar window)."""


@dataclass(frozen=True)
class Finding:
    """A cut after which a decision at an earlier (or the same) bar changed."""

    symbol: str
    cut: pd.Timestamp
    """Open time of the last bar kept."""
    bar: pd.Timestamp
    """Open time of the first bar whose decision differs."""
    decision: Decision
    full: float
    """The decision with all the data."""
    truncated: float
    """The decision with the bars after `cut` removed."""

    def row(self) -> dict[str, Any]:
        """The mapping `agent.backtest.tables.lookahead_table` shows."""
        return {
            "symbol": self.symbol,
            "cut": self.cut,
            "bar": self.bar,
            "decision": self.decision,
            "full": self.full,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class SymbolCheck:
    """The check of one strategy on one symbol's candles."""

    symbol: str
    usable: int
    """Usable cut points (module contract)."""
    cuts: int
    """Cut points checked: `usable` when the budget covers every usable bar."""
    findings: tuple[Finding, ...]

    @property
    def every_bar(self) -> bool:
        """True when every usable bar was a cut point."""
        return self.cuts == self.usable


def check_lookahead(
    strategy: Strategy, candles: pd.DataFrame, symbol: str, samples: int | None = None, start: int = 0
) -> SymbolCheck:
    """The truncation check of `strategy` on one symbol's candles (module contract); `samples` caps the cut
    points (None: `DEFAULT_CUTS`), `start` is the row of the window's first bar."""
    budget = DEFAULT_CUTS if samples is None else samples
    if budget < 1:
        raise ConfigError(f"samples={samples}: must be >= 1")
    n = len(candles)
    first = max(strategy.warmup_bars(), start, 0)
    if first > n - 2:
        raise NoCutPoint(_why_no_cut(strategy, candles, symbol, start))
    high, low, close = (prices(candles, column) for column in ("high", "low", "close"))
    full = decisions(strategy, candles, (high, low, close))
    cuts = cut_points(full[0], first, budget)
    findings = []
    for cut in cuts.tolist():
        m = cut + 1
        part = decisions(strategy, candles.iloc[:m], (high[:m], low[:m], close[:m]))
        differs = first_difference([row[:m] for row in full], part)
        if differs is not None:
            row, bar, truncated = differs
            findings.append(
                Finding(
                    symbol,
                    candles.index[cut],
                    candles.index[bar],
                    DECISIONS[row],
                    float(full[row][bar]),
                    truncated,
                )
            )
    return SymbolCheck(symbol, n - 1 - first, len(cuts), tuple(findings))


def check_window(strategy: Strategy, window: Window, samples: int | None = None) -> list[SymbolCheck]:
    """The check on each symbol of a loaded window, cutting from the window's first bar on (the rows before
    it are warm-up history); `NoCutPoint` for the first symbol without a usable bar."""
    return [
        check_lookahead(strategy, frame, symbol, samples, int(frame.index.searchsorted(window.trade_start)))
        for symbol, frame in window.frames.items()
    ]


def history_bars(strategies: Sequence[Strategy], warmup: int | None, option: str = "--warmup") -> int:
    """Bars of history to load before the window: `warmup`, or by default the longest warm-up declared, so
    the check can cut from the window's first bar. A negative `warmup` is bad input."""
    if warmup is None:
        return max((s.warmup_bars() for s in strategies), default=0)
    if warmup < 0:
        raise ConfigError(f"{option} {warmup}: must be >= 0")
    return warmup


def decisions(
    strategy: Strategy, candles: pd.DataFrame, columns: tuple[FloatArray, FloatArray, FloatArray]
) -> list[FloatArray]:
    """The rows compared, in `DECISIONS` order: the target exposure, then the exit plan's stop-loss,
    take-profit and trailing distance when the strategy's parameters set one (`exit_levels`, which
    `exit_plan` is on a frame's columns). `columns` are the candles' high, low and close."""
    plan = exit_levels(*columns, strategy.params)
    return [strategy.exposure(candles), *(() if plan is None else plan)]


def first_difference(
    full: Sequence[FloatArray], truncated: Sequence[FloatArray]
) -> tuple[int, int, float] | None:
    """(row, bar, truncated value) of the first bar where two sets of equally long decision rows differ (the
    module contract's equality), or None. Identical bytes are the fast path."""
    if len(full) != len(truncated):
        raise ValueError(f"{len(truncated)} decision rows, expected {len(full)}")
    first: tuple[int, int, float] | None = None
    for row, (want, got) in enumerate(zip(full, truncated, strict=True)):
        if want.tobytes() == got.tobytes():
            continue
        nan_want, nan_got = np.isnan(want), np.isnan(got)
        with np.errstate(invalid="ignore"):
            close = np.abs(got - want) <= TOLERANCE * np.maximum(1.0, np.abs(want))
        bars = np.flatnonzero(~((nan_want & nan_got) | (~nan_want & ~nan_got & close)))
        if len(bars) and (first is None or bars[0] < first[1]):
            first = row, int(bars[0]), float(got[bars[0]])
    return first


def cut_points(target: FloatArray, first: int, budget: int) -> IntArray:
    """Sorted cut points in [first, n - 2]: all of them when they fit `budget`, else the target's change bars
    first, then evenly spaced bars (module contract)."""
    n = len(target)
    usable = np.arange(max(first, 0), n - 1, dtype=np.int64)
    if len(usable) <= budget:
        return usable
    changes = np.flatnonzero(np.diff(target) != 0).astype(np.int64) + 1
    changes = changes[(changes >= first) & (changes <= n - 2)]
    if len(changes) > budget // 2:
        changes = changes[_spread(len(changes), budget // 2)]
    rest = np.setdiff1d(usable, changes, assume_unique=True)
    spaced = rest[_spread(len(rest), budget - len(changes))]
    return np.union1d(changes, spaced)


def _spread(size: int, k: int) -> IntArray:
    """`k` distinct positions evenly spread over range(size), first and last included (k <= size)."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.linspace(0, size - 1, num=k).round().astype(np.int64)


def _why_no_cut(strategy: Strategy, candles: pd.DataFrame, symbol: str, start: int) -> str:
    n = len(candles)
    warmup = strategy.warmup_bars()
    span = f" ({candles.index[0]:%Y-%m-%d} to {candles.index[-1]:%Y-%m-%d})" if n else ""
    if warmup >= start:
        reason = f"{strategy.describe()} needs {warmup} bars of warm-up"
        remedy = "give more history (an earlier --start, a longer --warmup) or use a shorter warm-up"
    else:
        reason = f"the window starts at bar {start}"
        remedy = "the window needs at least two bars (a later --end)"
    return (
        f"no cut point on {symbol}: {reason}, but the data has {n} bars{span}, so nothing after a cut can be "
        f"removed; {remedy}"
    )
