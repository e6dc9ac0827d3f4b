"""The compiled backtest loop: target exposures per bar in, equity curve, fills and trades out.

One or many symbols share one cash balance. Bars are aligned rows (`n` bars x `k` symbols); a symbol with
no candle in a row has NaN prices there and simply does not trade in that row (it is marked at its last
close). Every fill goes through `agent.execution.costs.execute_order` and every stop/take-profit through
`agent.execution.costs.exit_trigger`, the functions the paper broker calls, so both fill identically.

Per-bar semantics (shared with the paper broker; `_rebalance`, `_exits`, `_trail`, `_mark` below).
Next-bar-open mode (the default), for each bar t:
 1. At open_t: execute the target change decided at close_{t-1}. For every symbol whose target differs
    from the last target acted on: all sells first, then all buys, so cash is freed first. The reference
    price is open_t; the amount is `costs.order_for_target(target, equity_at_open, position, open_t)`
    with equity marked at open_t once, before any of the bar's fills; the fill is
    `costs.execute_order`. An entry (flat -> long) sets the position's exit plan from distances computed
    with data <= t-1: stop = fill price - stop distance, take-profit = fill price + take-profit distance,
    trailing distance (all optional). Adding to a position keeps its plan.
 2. Within bar t: for every open position, `costs.exit_trigger(open_t, high_t, low_t, stop, take_profit)`
    (stop first when both are touched; a gap beyond a level fills at the open); a hit sells the whole
    position at that reference price through `costs.execute_order` (reason stop_loss, take_profit, or
    trailing_stop once the trailing stop has raised the level). Then the trailing stop is updated with
    high_t: peak = max(peak, high_t), stop = max(stop, peak - trailing distance); so a new high cannot
    trigger a stop in the same bar.
 3. At close_t: mark to market (equity_t = cash + sum of position x close_t) and record it; the target
    decided at close_t (data <= t) becomes pending for bar t+1.
Same-bar-close mode (optimistic: it trades at the price the signal was computed on): step 2, then step 1
at close_t with reference price close_t for target_t (exit distances from data <= t), then step 3.

Further rules:
- Orders are generated only when a symbol's target changes; drift is not rebalanced. The position is
  then moved to the new target whatever happened since (e.g. after a stop-out, a new target re-enters).
- An order that does not fill (dust below the exchange minimums, nothing affordable) or is cut by the
  participation cap is not retried; each case is counted (`Counters`).
- A sell that leaves at most floating-point residue (<= 1e-12 base units) closes the position exactly.
- Round-trip trades run from flat to flat; pnl = sell proceeds - buy cost - all fees of the trade; trades
  still open at the end are reported with no exit bar, marked at the last close.

Implementation: `simulate` allocates every array with numpy and calls `_loop`, which runs until the end or
until the fill records are nearly full (then they are grown and the loop resumes at that bar). The step
functions are numba functions with `_nrt=False` (no allocation, so no reference counting between them) and
`inline="always"`, so the per-bar path compiles to one flat loop (about 10-20 ns per bar and symbol); the
order execution and records (`agent.backtest.book`) are ordinary compiled calls made only when an order is
placed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numba import njit

from agent.backtest import book as bk
from agent.backtest.models import EngineConfig, FloatArray, SimResult
from agent.execution.costs import NO_EXIT, STOP_LOSS, exit_trigger, order_for_target


@njit(cache=True, _nrt=False, inline="always")
def _rebalance(t, row, ref, target, market, book):
    """Step 1: move every symbol whose target changed to target[row], at reference prices ref[t]."""
    acct, st, _, _ = book
    k = ref.shape[1]
    changed = False
    for s in range(k):
        if target[row, s] != st[s, bk.DONE] and ref[t, s] > 0.0:
            changed = True
    if not changed:
        return
    equity = acct[0]
    for s in range(k):
        if st[s, bk.POS] != 0.0:
            equity += st[s, bk.POS] * (ref[t, s] if ref[t, s] > 0.0 else st[s, bk.MARK])
    for side in (-1, 1):
        for s in range(k):
            price, goal = ref[t, s], target[row, s]
            if not price > 0.0 or goal == st[s, bk.DONE]:
                continue
            delta = order_for_target(goal, equity, st[s, bk.POS], price)
            if delta == 0.0:
                st[s, bk.DONE] = goal
            elif (delta > 0.0) == (side > 0):
                st[s, bk.DONE] = goal
                if side > 0:
                    reason = bk.ENTRY if st[s, bk.POS] <= 0.0 else bk.INCREASE
                else:
                    reason = bk.EXIT if goal == 0.0 else bk.DECREASE
                bk.fill(t, s, side, abs(delta), price, reason, row, market, book)


@njit(cache=True, _nrt=False, inline="always")
def _exits(t, bars, market, book):
    """Step 2a: stop-loss / take-profit of every open position, through costs.exit_trigger."""
    _, st, _, _ = book
    open_, high, low, _, _ = bars
    for s in range(open_.shape[1]):
        stop, take = st[s, bk.STOP], st[s, bk.TP]
        if st[s, bk.POS] <= 0.0 or not open_[t, s] > 0.0 or not (stop > 0.0 or take > 0.0):
            continue
        ref, why = exit_trigger(open_[t, s], high[t, s], low[t, s], stop, take)
        if why == NO_EXIT:
            continue
        if why == STOP_LOSS:
            reason = bk.TRAILED if st[s, bk.TRAILING] > 0.0 else bk.STOPPED
        else:
            reason = bk.TAKEN
        bk.fill(t, s, -1, st[s, bk.POS], ref, reason, 0, market, book)


@njit(cache=True, _nrt=False, inline="always")
def _trail(t, high, st):
    """Step 2b: raise trailing stops with the bar's high (after the exits, so not hit in this bar)."""
    for s in range(high.shape[1]):
        if st[s, bk.POS] > 0.0 and st[s, bk.TRAIL] > 0.0 and high[t, s] > 0.0:
            st[s, bk.PEAK] = max(st[s, bk.PEAK], high[t, s])
            level = st[s, bk.PEAK] - st[s, bk.TRAIL]
            if not level <= st[s, bk.STOP]:
                st[s, bk.STOP] = level
                st[s, bk.TRAILING] = 1.0


@njit(cache=True, _nrt=False, inline="always")
def _mark(t, close, book, out):
    """Step 3: mark every position at its latest close; record equity, cash and gross exposure."""
    acct, st, _, _ = book
    equity, cash, exposure = out
    gross = 0.0
    for s in range(close.shape[1]):
        if close[t, s] > 0.0:
            st[s, bk.MARK] = close[t, s]
        if st[s, bk.POS] != 0.0:
            gross += st[s, bk.POS] * st[s, bk.MARK]
    equity[t] = acct[0] + gross
    cash[t] = acct[0]
    exposure[t] = gross / equity[t] if equity[t] > 0.0 else 0.0


@njit(cache=True, _nrt=False)
def _loop(t0, bars, target, same_close, market, book, out):
    """Bars t0.. in order (module docstring). Returns the bar to resume at when the records are nearly full;
    after the last bar it records the trades still open and returns n."""
    open_, high, _, close, _ = bars
    _, st, cnt, rec = book
    n, k = close.shape
    room = rec[0].shape[0] - 3 * k
    for t in range(t0, n):
        if cnt[bk.N_FILLS] > room:
            return t
        if not same_close and t > 0:
            _rebalance(t, t - 1, open_, target, market, book)
        _exits(t, bars, market, book)
        _trail(t, high, st)
        if same_close:
            _rebalance(t, t, close, target, market, book)
        _mark(t, close, book, out)
    bk.close_open_trades(book)
    return n


def _frozen(a: FloatArray) -> FloatArray:
    """A read-only C-contiguous float64 view (a copy only when needed): inputs are never written, and one
    array type means one compiled signature whether pandas hands out read-only arrays or not."""
    view = np.ascontiguousarray(a, dtype=np.float64).view()
    view.flags.writeable = False
    return view


def simulate(
    index: pd.DatetimeIndex,
    symbols: Sequence[str],
    ohlcv: dict[str, FloatArray],
    target: FloatArray,
    rules: FloatArray,
    config: EngineConfig,
    dists: FloatArray | None = None,
) -> SimResult:
    """Run the compiled loop.

    Args:
        index: bar open times (n).
        symbols: column names (k).
        ohlcv: `open, high, low, close, volume` arrays of shape (n, k); NaN where a symbol has no bar.
        target: target exposure decided at each bar's close, (n, k), finite, within [0, 1].
        rules: per-symbol (k, 4) array: taker fee rate, amount step, min amount, min notional.
        config: cash, fill timing, slippage, participation cap.
        dists: optional (3, n, k) stop-loss, take-profit and trailing distances in price units (NaN = none)
            known at each bar's close; None = no exit plan.
    """
    columns = ("open", "high", "low", "close", "volume")
    bars = tuple(_frozen(ohlcv[c]) for c in columns)
    tgt = _frozen(target)
    n, k = tgt.shape
    if any(a.shape != (n, k) for a in bars) or len(index) != n or len(symbols) != k:
        raise ValueError("simulate: ohlcv, target, index and symbols must have matching shapes")
    plan = _frozen(np.zeros((3, 0, k)) if dists is None else dists)
    market = (
        bars[4],
        _frozen(rules),
        float(config.slippage_bps),
        float(config.max_participation or 0.0),
        plan,
    )
    acct, st, cnt = np.array([float(config.initial_cash)]), bk.new_state(k), np.zeros(5, np.int64)
    out = (np.empty(n), np.empty(n), np.empty(n))
    changes = int(np.count_nonzero(tgt[1:] != tgt[:-1])) + int(np.count_nonzero(tgt[0]))
    rec = bk.records(2 * changes + 4 * k + 16)
    t = 0
    while t < n:
        t = _loop(t, bars, tgt, config.fill == "same_close", market, (acct, st, cnt, rec), out)
        if t < n:
            rec = bk.grow(rec, 2 * len(rec[0]) + 4 * k)
    return bk.result(index, tuple(symbols), out, rec, cnt, config.initial_cash)
