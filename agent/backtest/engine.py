"""The compiled backtest loop: target exposures per bar in, equity curve, fills and trades out.

One or many symbols share one cash balance. Bars are aligned rows (`n` bars x `k` symbols); a symbol with
no candle in a row has NaN prices there and simply does not trade in that row (it is marked at its last
close). The loop is the per-bar semantics of `agent.execution.bar`, the very functions the paper broker
calls for each bar, so a backtest and a paper session fill identically:

Next-bar-open mode (the default), for each bar t:
 0. At the first bar, `bar.endow`: the initial position (`EngineConfig.initial_position`, a fraction of the
    initial equity per symbol, bought at open_0 without costs; every such symbol needs a price there).
 1. `bar.open_goals` at open_t: the targets decided at close_{t-1} (row t-1 of the target matrix), with
    the exit plans decided with them (row t-1 of `plan`); in the `order_fraction` style the rows are order
    fractions (`bar.open_orders`), placed every bar they are non-zero.
 2. `bar.check_exits` within bar t (stop-loss, take-profit, trailing stop; a stop-out starts a cooldown),
    then `bar.trail_stops` with high_t.
 3. `bar.close_bar` at close_t: marks, equity (recorded with cash and gross exposure), peak, day roll.
 4. The targets decided at close_t: `bar.refuse_blocked` drops a change above the current exposure while
    the daily loss limit, the drawdown breaker or the symbol's cooldown blocks entries (as the risk layer
    refuses a rule's BUY); the rest is pending for bar t+1.
Same-bar-close mode (optimistic: it trades at the price the signal was computed on): step 2, then the
breakers' check and step 1 at close_t with reference price close_t for target_t (plans of row t), then
step 3 (so the breakers see the previous close's peak and day).
Same-bar-open mode (for strategies that decide on bar t's open, seeing nothing of bar t but its open):
step 1 executes row t at open_t; the breakers' check of row t runs at the end of bar t-1 (step 4 with the
decision time of bar t, the book after close_{t-1}); nothing can be blocked before the first bar.

Orders are generated only when a symbol's target changes; drift is not rebalanced. An order that does not
fill (dust below the exchange minimums, nothing affordable) or is cut by the participation cap is not
retried; each case is counted (`Counters`).

Implementation: `simulate` allocates every array with numpy and calls `_loop`, which runs until the end or
until the order log is nearly full (then it is grown and the loop resumes at that bar). The step functions
are inlined into one flat loop; an order (`bar.execute`) is an ordinary compiled call made only when one is
placed. Fills and round trips come from the log afterwards (`agent.backtest.book`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from agent.backtest import book as bk
from agent.backtest.models import EngineConfig, FloatArray, SimResult
from agent.execution import bar
from agent.execution.compiled import compiled
from agent.market.candles import timeframe_ms

NEXT_OPEN, SAME_CLOSE, SAME_OPEN = 0, 1, 2
MODES = {"next_open": NEXT_OPEN, "same_close": SAME_CLOSE, "same_open": SAME_OPEN}
"""Fill timings (`EngineConfig.fill`) as the loop's codes."""


@compiled()
def _loop(
    t0: int,
    times: npt.NDArray[np.int64],
    bars: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray],
    target: FloatArray,
    initial: FloatArray,
    seed: FloatArray,
    plan: FloatArray,
    mode: int,
    rules: FloatArray,
    cfg: FloatArray,
    st: FloatArray,
    acct: FloatArray,
    log: bar.Log,
    out: tuple[FloatArray, FloatArray, FloatArray],
) -> tuple[int, int]:
    """Bars t0.. in order (module docstring). Returns (the bar to resume at when the log is nearly full, or
    n; target changes refused by a breaker)."""
    open_, high, low, close, volume = bars
    equity_out, cash_out, exposure_out = out
    n, k = close.shape
    room = log[0].shape[0] - 3 * k
    refused = 0
    at_open = (open_, volume)
    at_close = (close, volume)
    for t in range(t0, n):
        if log[2][0] > room:
            return t, refused
        ts = times[t]
        if seed.shape[0] > 0:
            bar.endow(t, seed, open_, rules, st, acct, log)
        if mode == NEXT_OPEN and t > 0:
            bar.open_goals(t, t - 1, target, plan, at_open, rules, cfg, st, acct, log)
        elif mode == NEXT_OPEN and initial.shape[0] > 0:
            bar.open_goals(t, 0, initial, plan, at_open, rules, cfg, st, acct, log)
        elif mode == SAME_OPEN:
            bar.open_goals(t, t, target, plan, at_open, rules, cfg, st, acct, log)
        bar.check_exits(t, ts, (open_, high, low), plan, at_open, rules, cfg, st, acct, log)
        bar.trail_stops(t, high, st)
        if mode == SAME_CLOSE:
            equity = acct[bar.CASH]
            for s in range(k):
                if st[s, bar.POS] != 0.0:
                    equity += st[s, bar.POS] * (close[t, s] if close[t, s] > 0.0 else st[s, bar.MARK])
            refused += bar.refuse_blocked(t, t, ts, target, close, equity, cfg, st, acct)
            bar.open_goals(t, t, target, plan, at_close, rules, cfg, st, acct, log)
        equity, gross = bar.close_bar(t, ts, close, cfg, st, acct)
        equity_out[t] = equity
        cash_out[t] = acct[bar.CASH]
        exposure_out[t] = gross / equity if equity > 0.0 else 0.0
        if mode == NEXT_OPEN:
            refused += bar.refuse_blocked(t, t, ts, target, close, equity, cfg, st, acct)
        elif mode == SAME_OPEN and t + 1 < n:
            refused += bar.refuse_blocked(t, t + 1, times[t + 1], target, close, equity, cfg, st, acct)
    return n, refused


def simulate(
    index: pd.DatetimeIndex,
    symbols: Sequence[str],
    ohlcv: dict[str, FloatArray],
    target: FloatArray,
    rules: FloatArray,
    config: EngineConfig,
    plan: FloatArray | None = None,
    timeframe: str | None = None,
    initial: FloatArray | None = None,
) -> SimResult:
    """Run the compiled loop.

    Args:
        index: bar open times (n).
        symbols: column names (k), in the order of the columns.
        ohlcv: `open, high, low, close, volume` arrays of shape (n, k); NaN where a symbol has no bar.
        target: target exposure decided at each bar (at its close; at its open with `same_open`), (n, k),
            within [0, 1]; in the `order_fraction` style the order fraction, within [-1, 1] (0 = none).
        rules: per-symbol (k, 4) array: taker fee rate, amount step, min amount, min notional.
        config: cash, fill timing, slippage, participation cap, book limits, cooldown and breakers, the fixed
            fee, the initial position (symbols not in `symbols` are an error) and the style of `target`.
        plan: optional (3, n, k) stop-loss level, take-profit level and trailing distance (price units;
            NaN = none) decided with each bar's target; None = no exit plan.
        timeframe: the bar size (for the cooldown and the day roll); default: the index's spacing.
        initial: optional (k,) targets decided before the first bar, executed at its open (next-bar-open
            mode; entries take the plan of row 0); None = start flat (or from the initial position).
    """
    bars = (
        bar.frozen(ohlcv["open"]),
        bar.frozen(ohlcv["high"]),
        bar.frozen(ohlcv["low"]),
        bar.frozen(ohlcv["close"]),
        bar.frozen(ohlcv["volume"]),
    )
    tgt = bar.frozen(target)
    n, k = tgt.shape
    if any(a.shape != (n, k) for a in bars) or len(index) != n or len(symbols) != k:
        raise ValueError("simulate: ohlcv, target, index and symbols must have matching shapes")
    levels = bar.frozen(np.zeros((3, 0, k)) if plan is None else plan)
    times = np.ascontiguousarray(index.as_unit("ms").asi8, dtype=np.int64)
    cfg = bar.config(
        float(config.slippage_bps),
        float(config.max_participation or 0.0),
        float(config.max_gross_exposure),
        float(config.min_cash_fraction),
        int(config.cooldown_bars),
        config.daily_loss_limit,
        config.max_drawdown,
        _bar_ms(times, timeframe),
        float(config.fixed_fee),
        bar.STYLE_CODES[config.style],
    )
    st, acct = bar.new_state(k), bar.new_account(float(config.initial_cash))
    out = (np.empty(n), np.empty(n), np.empty(n))
    if config.style == "order_fraction":
        changes = int(np.count_nonzero(tgt))
    else:
        changes = int(np.count_nonzero(tgt[1:] != tgt[:-1])) + int(np.count_nonzero(tgt[0]))
    log = bk.new_log(2 * changes + 4 * k + 16)
    matrix = bar.frozen(rules)
    first = bar.frozen(np.zeros((0, k)) if initial is None else np.reshape(initial, (1, k)))
    seed = bar.frozen(seed_array(config.initial_position, symbols, bars[0]))
    mode = MODES[config.fill]
    t, refused = 0, 0
    while t < n:
        t, more = _loop(t, times, bars, tgt, first, seed, levels, mode, matrix, cfg, st, acct, log, out)
        refused += more
        if t < n:
            log = bk.grow(log, 2 * len(log[0]) + 4 * k)
    return bk.result(
        index,
        tuple(symbols),
        out,
        log,
        st,
        bars[4],
        float(config.max_participation or 0.0),
        refused,
        config.initial_cash,
    )


def seed_array(position: Mapping[str, float], symbols: Sequence[str], open_: FloatArray) -> FloatArray:
    """The (k,) initial position of `symbols` ((0,) when there is none); a symbol it names must be traded and
    priced at the first bar (ValueError otherwise)."""
    if not position:
        return np.zeros(0)
    unknown = sorted(set(position) - set(symbols))
    if unknown:
        raise ValueError(f"initial position in {unknown[0]}, which is not traded here ({', '.join(symbols)})")
    seed = np.array([float(position.get(s, 0.0)) for s in symbols])
    for j, s in enumerate(symbols):
        if seed[j] > 0.0 and not (len(open_) and open_[0, j] > 0.0):
            raise ValueError(f"initial position in {s}, which has no price at the first bar")
    return seed


def _bar_ms(times: np.ndarray, timeframe: str | None) -> int:
    if timeframe is not None:
        return timeframe_ms(timeframe)
    if len(times) > 1:
        return int(np.min(np.diff(times)))
    return 3_600_000
