"""From strategy output to targets and exit plans: sized targets, exit plans, aligned bars (vectorised).

`rule_plan` is the one place a rule strategy becomes what the per-bar semantics executes: the compiled
engine reads all its rows at once, the agent graph (`agent.graph.nodes`) reads the row of the bar it
ticks, computed on the same history, so both act on the same numbers.

Contracts:
- Sizing goes through `agent.risk.sizing`: `fixed` = signal x fraction (`fixed_fraction_exposure`);
  `vol_target` = signal x `vol_target_exposure(close, ATR, risk_per_trade, stop_atr)`, with the size fixed
  at the bar where the signal changes and held while it stays the same (drift is not rebalanced, so a
  size that moved with ATR every bar would trade every bar). ATR warm-up gives size 0.
- Caps: each symbol's target is capped at `position_cap`; a row whose targets sum above `gross_cap` is
  scaled down proportionally. Every capped bar is marked (and counted as `clamped_bars`), never hidden.
- Exit plans at bar t use ATR with data <= t (`agent.market.indicators.atr`), decided with the target at
  close_t: stop-loss level = close_t - stop_atr x ATR_t, take-profit level = close_t + take_profit_atr x
  ATR_t, trailing distance = trailing_atr x ATR_t; NaN where a multiple is off or ATR is warming up.
- Alignment: the union of all symbols' bar times; prices are NaN where a symbol has no bar (it does not
  trade there); targets and distances carry forward the last decided value (0 before a symbol's first
  bar), which is point in time. Order fractions do not carry forward: a bar without the symbol has no order.
- Strategy kinds (`strategies.base`, `agent.execution.conventions`): an `order_fraction` strategy's output
  is taken as it is (orders need no sizing: fixed sizing with fraction 1 only; no caps, the book's room
  is kept at the fill). With the fill timing `same_open` the strategy is given each frame's `open` column
  only (reading another is a `StrategyError`: the guard against a strategy deciding on an open it has
  not seen the rest of the bar for) and takes no exit plan and no `vol_target` sizing (both use bar t's
  close and ATR). `check_conventions` says so before anything runs.
- `rule_plan` without a fill timing is the agent's call (`agent.graph.nodes`): it runs target strategies
  deciding at the close only, and refuses the other kinds with one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from agent.backtest.models import FillMode, FloatArray, SizingRules
from agent.errors import StrategyError
from agent.market.indicators import atr
from agent.risk.sizing import fixed_fraction_exposure, vol_target_exposure
from strategies.base import Strategy, StrategyParams, prices

COLUMNS = ("open", "high", "low", "close", "volume")


def sized_targets(
    signal: FloatArray, candles: pd.DataFrame, rules: SizingRules
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """(target exposure per bar, mask of the bars where the per-symbol cap clamped it)."""
    if rules.mode == "fixed":
        if rules.fraction <= rules.position_cap:  # signals are within [0, 1]: the cap cannot bind
            out = signal if rules.fraction == 1.0 else signal * rules.fraction
            return out, np.zeros(len(signal), dtype=bool)
        raw = signal * rules.fraction
        return fixed_fraction_exposure(raw, 1.0, rules.position_cap), raw > rules.position_cap
    close = prices(candles)
    size = vol_target_exposure(
        close,
        atr(prices(candles, "high"), prices(candles, "low"), close, rules.atr_period),
        rules.risk_per_trade,
        rules.stop_atr,
        cap=np.inf,
    )
    raw = signal * _hold_from_changes(signal, size)
    return np.minimum(raw, rules.position_cap), raw > rules.position_cap


def _hold_from_changes(signal: FloatArray, value: FloatArray) -> FloatArray:
    """`value` taken at each bar where `signal` changes (and at bar 0), carried forward until the next."""
    change = np.ones(len(signal), dtype=bool)
    change[1:] = signal[1:] != signal[:-1]
    last = np.where(change, np.arange(len(signal)), 0)
    np.maximum.accumulate(last, out=last)
    return value[last]


def exit_plan(candles: pd.DataFrame, params: StrategyParams) -> FloatArray | None:
    """(3, n) stop-loss level, take-profit level and trailing distance decided at each close (module
    contract), or None when the strategy has no exit plan."""
    if all(m is None for m in (params.stop_atr, params.take_profit_atr, params.trailing_atr)):
        return None
    return exit_levels(prices(candles, "high"), prices(candles, "low"), prices(candles), params)


def exit_levels(
    high: FloatArray, low: FloatArray, close: FloatArray, params: StrategyParams
) -> FloatArray | None:
    """`exit_plan` on price arrays (`exit_plan` is this on the frame's columns; the look-ahead check calls
    it on prefixes of them)."""
    if all(m is None for m in (params.stop_atr, params.take_profit_atr, params.trailing_atr)):
        return None
    value = atr(high, low, close, params.atr_period)
    off = np.full(len(value), np.nan)
    stop = close - value * params.stop_atr if params.stop_atr is not None else off
    take = close + value * params.take_profit_atr if params.take_profit_atr is not None else off
    trail = value * params.trailing_atr if params.trailing_atr is not None else off
    return np.stack([stop, take, trail])


def gross_cap(targets: FloatArray, cap: float) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Scale the rows of (n, k) targets whose sum exceeds `cap`; returns (targets, mask of rows scaled)."""
    total = targets.sum(axis=1)
    over = total > cap
    if not over.any():
        return targets, over
    scaled = targets.copy()
    scaled[over] *= (cap / total[over])[:, None]
    return scaled, over


def align(
    frames: Mapping[str, pd.DataFrame], symbols: Sequence[str]
) -> tuple[pd.DatetimeIndex, dict[str, FloatArray], list[np.ndarray]]:
    """Union index, (n, k) OHLCV arrays with NaN gaps, and each symbol's row positions in the union."""
    indexes = [frames[s].index for s in symbols]
    union = indexes[0]
    for other in indexes[1:]:
        if not union.equals(other):
            union = union.union(other)
    union = pd.DatetimeIndex(union)
    n, k = len(union), len(symbols)
    rows = [np.arange(n) if idx.equals(union) else union.get_indexer(idx) for idx in indexes]
    ohlcv = {}
    for col in COLUMNS:
        if k == 1:
            ohlcv[col] = frames[symbols[0]][col].to_numpy(dtype=np.float64).reshape(n, 1)
            continue
        out = np.full((n, k), np.nan)
        for j, s in enumerate(symbols):
            out[rows[j], j] = frames[s][col].to_numpy(dtype=np.float64)
        ohlcv[col] = out
    return union, ohlcv, rows


def spread(values: FloatArray, rows: np.ndarray, n: int, before: float) -> FloatArray:
    """A symbol's per-bar values placed on the union rows, carried forward over gaps (`before` first)."""
    if len(rows) == n:
        return values
    out = np.full(n, np.nan)
    out[rows] = values
    known = ~np.isnan(out)
    last = np.where(known, np.arange(n), -1)
    np.maximum.accumulate(last, out=last)
    return np.where(last >= 0, out[np.maximum(last, 0)], before)


@dataclass(frozen=True)
class RulePlan:
    """A rule strategy over aligned symbols: what the per-bar semantics executes, row by row."""

    index: pd.DatetimeIndex
    symbols: tuple[str, ...]
    targets: FloatArray
    """(n, k) target exposure decided at each close, after sizing and caps."""
    plan: FloatArray | None
    """(3, n, k) exit plans decided with the targets (`exit_plan`), None when the strategy has none."""
    clamped: npt.NDArray[np.bool_]
    """(n, k) bars where a cap cut the target."""
    ohlcv: dict[str, FloatArray]
    """(n, k) aligned bars (NaN where a symbol has none)."""


def check_conventions(strategy: Strategy, sizing: SizingRules, fill: FillMode) -> None:
    """Refuse what the conventions do not define (module contract), with one line."""
    if strategy.style == "order_fraction" and (sizing.mode != "fixed" or sizing.fraction != 1.0):
        raise StrategyError(
            f"{strategy.name} places order fractions (style order_fraction): sizing {sizing.mode} with "
            f"fraction {sizing.fraction:g} does not apply to them; use fixed sizing with fraction 1"
        )
    if fill != "same_open":
        return
    p = strategy.params
    if any(m is not None for m in (p.stop_atr, p.take_profit_atr, p.trailing_atr)):
        raise StrategyError(
            f"{strategy.name}: an exit plan (stop_atr, take_profit_atr, trailing_atr) is set from bar t's "
            "ATR, unknown at its open; with fill same_open there is none"
        )
    if sizing.mode == "vol_target":
        raise StrategyError(
            f"{strategy.name}: vol_target sizing reads bar t's close and ATR, unknown at its open; "
            "with fill same_open use fixed sizing"
        )


def decided_signal(strategy: Strategy, frame: pd.DataFrame, fill: FillMode) -> FloatArray:
    """The strategy's checked output on `frame` as it is known when it decides: with `same_open`, the
    `open` column only (reading another column is a `StrategyError`)."""
    if fill != "same_open":
        return strategy.exposure(frame)
    try:
        return strategy.exposure(frame[["open"]])
    except KeyError as e:
        raise StrategyError(
            f"{strategy.name} decides on each bar's open (fill same_open), so it sees only the open column; "
            f"it read {e}"
        ) from None


def rule_plan(
    frames: Mapping[str, pd.DataFrame],
    strategy: Strategy,
    sizing: SizingRules,
    *,
    fill: FillMode | None = None,
) -> RulePlan:
    """Each symbol's signal on its whole frame, sized and capped, aligned on the union of bar times (sorted
    symbols), gross-capped across symbols, with the exit plans. Point in time: row t uses bars <= t only
    (with `same_open`, the open of bar t and nothing else of it). `fill` None: the agent's call (module
    contract)."""
    if fill is None:
        if strategy.style != "target" or strategy.fill_timing != "next_open":
            raise StrategyError(
                f"{strategy.name} ({strategy.style}, decided for {strategy.fill_timing}) runs in tradegraph "
                "backtest only for now; the agent executes target strategies decided at the close"
            )
        fill = "next_open"
    check_conventions(strategy, sizing, fill)
    orders = strategy.style == "order_fraction"
    symbols = sorted(frames)
    index, ohlcv, rows = align(frames, symbols)
    n, k = len(index), len(symbols)
    targets = np.empty((n, k))
    clamped = np.zeros((n, k), dtype=bool)
    plan: FloatArray | None = None
    for j, symbol in enumerate(symbols):
        frame = frames[symbol]
        signal = decided_signal(strategy, frame, fill)
        if orders:
            targets[:, j] = signal if len(rows[j]) == n else _placed(signal, rows[j], n)
        else:
            sized, capped = sized_targets(signal, frame, sizing)
            if capped.any():
                clamped[rows[j], j] = capped
            targets[:, j] = spread(sized, rows[j], n, 0.0)
        levels = exit_plan(frame, strategy.params)
        if levels is not None:
            if plan is None:
                plan = np.full((3, n, k), np.nan)
            for i in range(3):
                plan[i, :, j] = spread(levels[i], rows[j], n, np.nan)
    if k > 1 and not orders:
        targets, scaled = gross_cap(targets, sizing.gross_cap)
        clamped[scaled] = True
    return RulePlan(index, tuple(symbols), targets, plan, clamped, ohlcv)


def _placed(values: FloatArray, rows: np.ndarray, n: int) -> FloatArray:
    """A symbol's per-bar orders on the union rows; 0 (no order) where it has no bar."""
    out = np.zeros(n)
    out[rows] = values
    return out
