"""Per-bar semantics: the one definition of what happens to a book in a bar, shared by the backtest engine's
compiled loop (`agent.backtest.engine`), the paper broker (`agent.broker.paper`) and the ledger reader
(`agent.ledger.reader`).

The book is plain arrays so that the engine's loop and the broker call the very same compiled code:
- `st`, (k, NSTATE): one row per symbol (symbols in sorted order): position, stop-loss level, take-profit
  level, trailing distance, whether the stop is the trailing level, the target in force (the last target
  acted on; NaN = none, every pending target is then acted on), the last mark, and the cooldown's end (bar
  open time in ms; NaN = none). NaN means "none" for every level.
- `acct`, (NACCT,): cash, fees paid, peak equity, the UTC day of the last close and the equity at its start.
- `cfg`, (NCFG,): slippage (bps), participation cap (0 = none), `max_gross_exposure`, `min_cash_fraction`,
  the cooldown in bars, the daily loss limit and the maximum drawdown (inf = off), one bar in ms, the fixed
  fee per fill (quote currency) and the style of the goal rows (TARGETS or ORDERS).
- `rules`, (k, 4): taker fee, amount step, minimum amount, minimum notional (as `agent.backtest.market`).
- Bars are (n, k) arrays (`ref`, `open`, `high`, `low`, `close`, `volume`); NaN = no bar for that symbol.
  The broker passes one row (n = 1). `t` is the row, `ts` its open time in ms.
- Targets are (n, k) (`goal[row]`, NaN = nothing pending) with their exit plans (3, n, k): the stop-loss
  level, the take-profit level and the trailing distance decided with them (NaN = none; an empty (3, 0, k)
  plan = no plan at all). In the ORDERS style a goal is an order fraction instead (`open_orders`).
- `seed`, (k,): the initial position, a fraction of the initial equity per symbol (`endow`).
- Every order attempted is one row of the order log (`li`, `lf`, written at `cnt[0]`): ints (row, symbol,
  side, reason, status, room binding, closed) and floats (wanted, reference price, amount asked after the
  book's room, amount filled, fill price, fee). Fills are the rows with status FILLED.

Per-bar rules (next-bar-open timing: the targets decided at close_{t-1} are executed at open_t; the callers
choose the row, so the same steps serve the fill at the deciding bar's own open, see `agent.backtest.engine`):
 0. `endow`, at the first bar only (no close seen yet): the initial position. Symbol s gets seed[s] of the
    book's equity in the asset at open_t, floored to the amount step, with no fee and no slippage (it is the
    starting book, not a trade); it is logged as a filled buy of reason `initial` and is the target in force.
 1. `open_goals`, in the TARGETS style `open_targets`: equity is marked at the reference prices once (a symbol
    without a price at its last mark); every symbol whose pending target differs from the target in force
    becomes an order of `costs.order_for_target(target, equity, position, ref)`: all sells first, then all
    buys, each group in symbol order, so cash is freed first; the target is then in force. Entry (flat ->
    long), increase, decrease, exit. A buy is first cut so that the book after it keeps `max_gross_exposure`
    and cash >= `min_cash_fraction` of equity, positions at the reference prices, fee and slippage paid
    (`book_room`; with the defaults 1 and 0 that is cash >= 0, which `execute_order` keeps). An entry takes
    its plan: stop = the stop level, take-profit = the take-profit level, and with a trailing distance d the
    stop is raised to fill price - d when that is higher (the stop is then the trailing stop). An add keeps
    the position's plan.
    In the ORDERS style (`open_orders`) every non-zero goal is an order, repeated goals included: all sells
    first, then all buys, in symbol order; -f sells f of the position held (an exit at -1), +f buys for
    f x the cash at that moment (after the bar's sells and the buys before it), the fees on top and the buy
    capped at what the cash affords. A sell with nothing held or a buy with no cash places no order.
 2. `check_exits`: every open position against its levels with `costs.exit_trigger` (the stop wins when both
    are touched; a gap fills at the open); a hit sells the whole position: stop_loss, take_profit, or
    trailing_stop when the stop is the trailing level. A filled stop-out (either kind) starts the symbol's
    cooldown: no entry may be decided at bars before ts + cooldown (`cooldown_end`).
 3. `trail_stops`: with a trailing distance d, the stop is raised to high_t - d when that is higher (after
    the exits, so a new high cannot stop the position out in the same bar).
 4. `close_bar`: marks = closes; equity = cash + the positions at their marks (summed from 0 in symbol
    order, as `PortfolioState.equity`); peak equity = max(peak, equity); the day roll (`roll_day`).
 5. At the close the next targets are decided. `entries_blocked` is the breakers' verdict on an increase
    (the daily loss limit, the maximum drawdown and the cooldown, as `agent.risk.breakers`); the engine's
    `refuse_blocked` drops a changed target above the current exposure while it holds (the change is in
    force, so it is not retried), as the risk layer refuses a rule's BUY. For a decision at the open the
    engine calls it at the previous close with the decision's bar time.
    In the ORDERS style a buy decided while a breaker blocks is refused (the symbol's DONE is REFUSED until
    the bar it was pending for is processed); sells are never refused.
Fees: `costs.execute_order`, the proportional fee plus `cfg[FIXED_FEE]` on every fill.
In the TARGETS style orders are placed only when a target changes; drift is never rebalanced. An order that
does not fill (dust, nothing affordable) is logged and not retried. A sell that leaves at most `CLOSED` of the
amount sold closes the position exactly (floating-point residue of step flooring) and clears its plan.

The functions allocate nothing (`_nrt=False`); the small per-bar steps are inlined into the engine's loop,
`execute` (one order) is an ordinary compiled call made only when an order is placed.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from agent.execution.compiled import compiled
from agent.execution.costs import (
    FILLED,
    NO_EXIT,
    STOP_LOSS,
    execute_order,
    exit_trigger,
    floor_to_step,
    order_for_target,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Bars = tuple[FloatArray, FloatArray]
"""(reference prices, volumes) of the bars orders fill in, each (n, k)."""
Log = tuple[IntArray, FloatArray, IntArray]
"""The order log: (ints, floats, count)."""

POS, STOP, TP, TRAIL, TRAILING, DONE, MARK, COOL = 0, 1, 2, 3, 4, 5, 6, 7
NSTATE = 8
"""Columns of the per-symbol state."""
CASH, FEES, PEAK, DAY, DAY_START = 0, 1, 2, 3, 4
NACCT = 5
"""Slots of the account."""
SLIPPAGE, PARTICIPATION, MAX_GROSS, MIN_CASH, COOLDOWN_BARS, DAILY_LOSS, MAX_DRAWDOWN, BAR_MS = range(8)
FIXED_FEE, STYLE = 8, 9
NCFG = 10
"""Slots of the configuration."""
TARGETS, ORDERS = 0, 1
"""Styles of the goal rows (`cfg[STYLE]`): target exposures, or order fractions (`conventions.OrderStyle`)."""
STYLE_CODES = {"target": TARGETS, "order_fraction": ORDERS}
REFUSED = math.inf
"""ORDERS style: a symbol's DONE while the buy pending for its next fill was refused by a breaker."""
FEE, STEP, MIN_AMOUNT, MIN_NOTIONAL = 0, 1, 2, 3
"""Columns of the rules."""
PLAN_STOP, PLAN_TAKE, PLAN_TRAIL = 0, 1, 2
"""Rows of an exit plan."""

ENTRY, INCREASE, DECREASE, EXIT, STOPPED, TAKEN, TRAILED, INITIAL = 0, 1, 2, 3, 4, 5, 6, 7
REASONS = ("entry", "increase", "decrease", "exit", "stop_loss", "take_profit", "trailing_stop", "initial")
"""Order reasons by code: target orders (0-3), exits triggered inside a bar (4-6), initial position (7)."""
TRIGGERED = STOPPED
"""First reason code of an exit triggered inside a bar."""

L_ROW, L_SYMBOL, L_SIDE, L_REASON, L_STATUS, L_ROOM, L_CLOSED = range(7)
NLI = 7
"""Integer columns of the order log."""
L_WANTED, L_REF, L_ASKED, L_FILLED, L_PRICE, L_FEE = range(6)
NLF = 6
"""Float columns of the order log."""
NO_CUT, GROSS_BINDS, CASH_BINDS = -1, 0, 1
"""Room binding of a buy: not cut, cut by `max_gross_exposure`, cut by the cash floor."""
ROOM_NAMES = ("max_gross_exposure", "cash")

CLOSED = 1e-9
"""A sell leaving at most this fraction of the amount sold closes the position (float residue)."""
ROOM_TOLERANCE = 1e-9
"""A buy within this relative margin of the book's room is not cut (as `agent.risk.book.TOLERANCE`)."""
DAY_MS = 86_400_000


def new_state(k: int, in_force: float = 0.0) -> FloatArray:
    """A flat book's state: no position, no plan, no cooldown, `in_force` as the target acted on."""
    st = np.full((k, NSTATE), math.nan)
    st[:, POS] = 0.0
    st[:, TRAILING] = 0.0
    st[:, DONE] = in_force
    return st


def new_account(cash: float) -> FloatArray:
    """A fresh account: peak and day-start equity are the cash; no day seen yet (-1)."""
    return np.array([cash, 0.0, cash, -1.0, cash])


def config(
    slippage_bps: float,
    participation: float,
    max_gross: float,
    min_cash: float,
    cooldown_bars: int,
    daily_loss_limit: float | None,
    max_drawdown: float | None,
    bar_ms: int,
    fixed_fee: float = 0.0,
    style: int = TARGETS,
) -> FloatArray:
    """The `cfg` array (module contract); None limits are off."""
    out = np.empty(NCFG)
    out[SLIPPAGE], out[PARTICIPATION] = slippage_bps, participation
    out[MAX_GROSS], out[MIN_CASH] = max_gross, min_cash
    out[COOLDOWN_BARS] = float(cooldown_bars)
    out[DAILY_LOSS] = math.inf if daily_loss_limit is None else daily_loss_limit
    out[MAX_DRAWDOWN] = math.inf if max_drawdown is None else max_drawdown
    out[BAR_MS] = float(bar_ms)
    out[FIXED_FEE] = fixed_fee
    out[STYLE] = float(style)
    return out


def order_log(capacity: int) -> tuple[IntArray, FloatArray]:
    """An empty order log of `capacity` rows."""
    return np.zeros((capacity, NLI), np.int64), np.zeros((capacity, NLF))


def frozen(a: npt.ArrayLike) -> FloatArray:
    """A read-only C-contiguous float64 view (a copy only when needed): inputs are never written, and one
    array type means one compiled signature for the engine and the broker alike."""
    view = np.ascontiguousarray(a, dtype=np.float64).view()
    view.flags.writeable = False
    return view


# ---- pure scalar rules (also called from Python: the risk layer's breakers, the ledger reader) ------------


@compiled()
def cooldown_end(stop_bar_ts: int, cooldown_bars: int, bar_ms: int) -> int:
    """The first bar at which a symbol stopped out at `stop_bar_ts` may be entered again by a decision."""
    return stop_bar_ts + cooldown_bars * bar_ms


@compiled()
def roll_day(day: float, day_start: float, equity: float, ts: int, bar_ms: int) -> tuple[float, float]:
    """(day, day-start equity) after the close of bar `ts`: the day is the UTC day of the close
    (ts + bar_ms); on a new day the day starts at `equity`, except on the first close seen (day -1)."""
    today = float((ts + bar_ms) // DAY_MS)
    if day != -1.0 and today != day:
        day_start = equity
    return today, day_start


@compiled()
def daily_loss_hit(equity: float, day_start: float, limit: float) -> bool:
    """Equity lost `limit` (or more) of the day's start."""
    return day_start > 0.0 and 1.0 - equity / day_start >= limit


@compiled()
def drawdown_hit(equity: float, peak: float, limit: float) -> bool:
    """Equity is `limit` (or more) below the peak."""
    return peak > 0.0 and 1.0 - equity / peak >= limit


@compiled()
def cooling(until: float, ts: int) -> bool:
    """A decision at bar `ts` falls in a cooldown ending at `until` (NaN = none)."""
    return until == until and ts < until


@compiled()
def _multiple(headroom: float, per_unit: float) -> float:
    if not math.isfinite(headroom) or headroom <= 0.0:
        return 0.0
    return headroom / per_unit if per_unit > 0.0 else math.inf


@compiled()
def book_room(
    cash: float, held: float, unit: float, unit_cost: float, max_gross: float, min_cash: float
) -> tuple[float, float]:
    """(gross, cash): how many times an increase of `unit` notional costing `unit_cost` fits the book.

    After buys of notional U costing W: gross' = (held + U) / (cash - W + held + U) <= G and
    cash - W >= m (cash - W + held + U); each solved for the largest multiple >= 0 (0 when already past).
    """
    g, m = max_gross, min_cash
    gross = _multiple(g * cash - (1.0 - g) * held, unit * (1.0 - g) + unit_cost * g)
    floor = _multiple((1.0 - m) * cash - m * held, unit_cost * (1.0 - m) + unit * m)
    return gross, floor


# ---- one order --------------------------------------------------------------------------------------------


@compiled()
def _within_room(
    t: int,
    s: int,
    wanted: float,
    ref: FloatArray,
    rules: FloatArray,
    cfg: FloatArray,
    st: FloatArray,
    acct: FloatArray,
) -> tuple[float, int]:
    """(amount, binding): a buy cut so that the book after it keeps the gross cap and the cash floor."""
    if cfg[MAX_GROSS] >= 1.0 and cfg[MIN_CASH] <= 0.0:
        return wanted, NO_CUT
    held = 0.0
    for j in range(st.shape[0]):
        if st[j, POS] != 0.0:
            price = ref[t, j] if ref[t, j] > 0.0 else st[j, MARK]
            held += st[j, POS] * price
    slip = cfg[SLIPPAGE] * 1e-4
    unit_cost = ref[t, s] * ((1.0 + slip) * (1.0 + rules[s, FEE]))
    cash = acct[CASH] - cfg[FIXED_FEE]
    gross, floor = book_room(cash, held, ref[t, s], unit_cost, cfg[MAX_GROSS], cfg[MIN_CASH])
    limit = min(gross, floor)
    if wanted <= limit * (1.0 + ROOM_TOLERANCE):
        return wanted, NO_CUT
    return limit, GROSS_BINDS if gross <= floor else CASH_BINDS


@compiled()
def _enter(s: int, price: float, row: int, plan: FloatArray, st: FloatArray) -> None:
    """A new position's exit plan from plan[:, row, s]; a trailing distance may raise the stop."""
    if plan.shape[1] == 0:
        st[s, STOP] = st[s, TP] = st[s, TRAIL] = math.nan
    else:
        st[s, STOP], st[s, TP], st[s, TRAIL] = (
            plan[PLAN_STOP, row, s],
            plan[PLAN_TAKE, row, s],
            plan[PLAN_TRAIL, row, s],
        )
    st[s, TRAILING] = 0.0
    if st[s, TRAIL] > 0.0:
        level = price - st[s, TRAIL]
        if not level <= st[s, STOP]:
            st[s, STOP] = level
            st[s, TRAILING] = 1.0


@compiled()
def execute(
    t: int,
    s: int,
    side: int,
    wanted: float,
    ref: float,
    reason: int,
    row: int,
    plan: FloatArray,
    bars: Bars,
    rules: FloatArray,
    cfg: FloatArray,
    st: FloatArray,
    acct: FloatArray,
    log: Log,
) -> float:
    """One market order of `wanted` at ref[t, s]; applies it to the book and logs it; returns the amount
    filled. `bars` = (ref, volume) arrays, `log` = (li, lf, cnt)."""
    prices, volume = bars
    li, lf, cnt = log
    asked, room = wanted, NO_CUT
    if side > 0 and reason <= INCREASE:
        asked, room = _within_room(t, s, wanted, prices, rules, cfg, st, acct)
    filled, price, fee, status = execute_order(
        side,
        asked,
        ref,
        acct[CASH],
        st[s, POS],
        rules[s, FEE],
        cfg[SLIPPAGE],
        rules[s, STEP],
        rules[s, MIN_AMOUNT],
        rules[s, MIN_NOTIONAL],
        volume[t, s],
        cfg[PARTICIPATION],
        cfg[FIXED_FEE],
    )
    closed = 0
    if status == FILLED:
        notional = filled * price
        acct[FEES] += fee
        if side > 0:
            acct[CASH] -= notional + fee
            if st[s, POS] <= 0.0:
                _enter(s, price, row, plan, st)
            st[s, POS] += filled
        else:
            acct[CASH] += notional - fee
            left = st[s, POS] - filled
            if left <= CLOSED * filled:
                left = 0.0
                closed = 1
                st[s, STOP] = st[s, TP] = st[s, TRAIL] = math.nan
                st[s, TRAILING] = 0.0
            st[s, POS] = left
    i = cnt[0]
    li[i, L_ROW], li[i, L_SYMBOL], li[i, L_SIDE], li[i, L_REASON] = t, s, side, reason
    li[i, L_STATUS], li[i, L_ROOM], li[i, L_CLOSED] = status, room, closed
    lf[i, L_WANTED], lf[i, L_REF], lf[i, L_ASKED] = wanted, ref, asked
    lf[i, L_FILLED], lf[i, L_PRICE], lf[i, L_FEE] = filled, price, fee
    cnt[0] = i + 1
    return filled if status == FILLED else 0.0


# ---- the steps of a bar -----------------------------------------------------------------------------------


@compiled(inline=True)
def endow(
    t: int, seed: FloatArray, ref: FloatArray, rules: FloatArray, st: FloatArray, acct: FloatArray, log: Log
) -> None:
    """Step 0 at the first bar (no close seen yet, `acct[DAY]` -1): the initial position `seed` at ref[t]
    (module contract). Cash never goes below 0 (float residue of a seed summing to 1 is dropped)."""
    if acct[DAY] != -1.0:
        return
    equity = acct[CASH]
    for s in range(ref.shape[1]):
        if st[s, POS] != 0.0:
            equity += st[s, POS] * (ref[t, s] if ref[t, s] > 0.0 else st[s, MARK])
    li, lf, cnt = log
    for s in range(ref.shape[1]):
        price, share = ref[t, s], seed[s]
        if not share > 0.0 or not price > 0.0:
            continue
        wanted = share * equity / price
        amount = floor_to_step(wanted, rules[s, STEP])
        if not amount > 0.0:
            continue
        acct[CASH] = max(acct[CASH] - amount * price, 0.0)
        if st[s, POS] <= 0.0:
            st[s, STOP] = st[s, TP] = st[s, TRAIL] = math.nan
            st[s, TRAILING] = 0.0
        st[s, POS] += amount
        st[s, DONE] = share
        i = cnt[0]
        li[i, L_ROW], li[i, L_SYMBOL], li[i, L_SIDE], li[i, L_REASON] = t, s, 1, INITIAL
        li[i, L_STATUS], li[i, L_ROOM], li[i, L_CLOSED] = FILLED, NO_CUT, 0
        lf[i, L_WANTED], lf[i, L_REF], lf[i, L_ASKED] = wanted, price, wanted
        lf[i, L_FILLED], lf[i, L_PRICE], lf[i, L_FEE] = amount, price, 0.0
        cnt[0] = i + 1


@compiled(inline=True)
def open_orders(
    t: int,
    row: int,
    goal: FloatArray,
    plan: FloatArray,
    bars: Bars,
    rules: FloatArray,
    cfg: FloatArray,
    st: FloatArray,
    acct: FloatArray,
    log: Log,
) -> None:
    """Step 1 in the ORDERS style: every non-zero goal[row] is an order at ref[t] (module contract)."""
    ref = bars[0]
    k = ref.shape[1]
    for side in (-1, 1):
        for s in range(k):
            price, g = ref[t, s], goal[row, s]
            if not price > 0.0 or not g == g or g == 0.0 or (g > 0.0) != (side > 0):
                continue
            if side < 0:
                amount = -g * st[s, POS]
                reason = EXIT if g <= -1.0 else DECREASE
            else:
                if st[s, DONE] == REFUSED:
                    continue
                amount = g * acct[CASH] / price
                reason = ENTRY if st[s, POS] <= 0.0 else INCREASE
            if amount > 0.0:
                execute(t, s, side, amount, price, reason, row, plan, bars, rules, cfg, st, acct, log)
    for s in range(k):
        if st[s, DONE] == REFUSED:
            st[s, DONE] = math.nan


@compiled(inline=True)
def open_targets(
    t: int,
    row: int,
    goal: FloatArray,
    plan: FloatArray,
    bars: Bars,
    rules: FloatArray,
    cfg: FloatArray,
    st: FloatArray,
    acct: FloatArray,
    log: Log,
) -> None:
    """Step 1 in the TARGETS style: every symbol whose goal[row] differs from the target in force moves to it
    at ref[t]."""
    ref = bars[0]
    k = ref.shape[1]
    changed = False
    for s in range(k):
        g = goal[row, s]
        if ref[t, s] > 0.0 and g == g and g != st[s, DONE]:
            changed = True
    if not changed:
        return
    equity = acct[CASH]
    for s in range(k):
        if st[s, POS] != 0.0:
            equity += st[s, POS] * (ref[t, s] if ref[t, s] > 0.0 else st[s, MARK])
    for side in (-1, 1):
        for s in range(k):
            price, g = ref[t, s], goal[row, s]
            if not price > 0.0 or not g == g or g == st[s, DONE]:
                continue
            delta = order_for_target(g, equity, st[s, POS], price)
            if delta == 0.0:
                st[s, DONE] = g
            elif (delta > 0.0) == (side > 0):
                st[s, DONE] = g
                if side > 0:
                    reason = ENTRY if st[s, POS] <= 0.0 else INCREASE
                else:
                    reason = EXIT if g == 0.0 else DECREASE
                execute(t, s, side, abs(delta), price, reason, row, plan, bars, rules, cfg, st, acct, log)


@compiled(inline=True)
def open_goals(
    t: int,
    row: int,
    goal: FloatArray,
    plan: FloatArray,
    bars: Bars,
    rules: FloatArray,
    cfg: FloatArray,
    st: FloatArray,
    acct: FloatArray,
    log: Log,
) -> None:
    """Step 1 in the run's style (`cfg[STYLE]`): `open_targets` or `open_orders`."""
    if cfg[STYLE] == ORDERS:
        open_orders(t, row, goal, plan, bars, rules, cfg, st, acct, log)
    else:
        open_targets(t, row, goal, plan, bars, rules, cfg, st, acct, log)


@compiled(inline=True)
def check_exits(
    t: int,
    ts: int,
    ohlc: tuple[FloatArray, FloatArray, FloatArray],
    plan: FloatArray,
    bars: Bars,
    rules: FloatArray,
    cfg: FloatArray,
    st: FloatArray,
    acct: FloatArray,
    log: Log,
) -> None:
    """Step 2: stop-loss, trailing stop and take-profit of every open position (`costs.exit_trigger`)."""
    open_, high, low = ohlc
    for s in range(open_.shape[1]):
        stop, take = st[s, STOP], st[s, TP]
        if st[s, POS] <= 0.0 or not open_[t, s] > 0.0 or not (stop > 0.0 or take > 0.0):
            continue
        level, why = exit_trigger(open_[t, s], high[t, s], low[t, s], stop, take)
        if why == NO_EXIT:
            continue
        if why == STOP_LOSS:
            reason = TRAILED if st[s, TRAILING] > 0.0 else STOPPED
        else:
            reason = TAKEN
        filled = execute(t, s, -1, st[s, POS], level, reason, 0, plan, bars, rules, cfg, st, acct, log)
        if filled > 0.0 and why == STOP_LOSS:
            st[s, COOL] = float(cooldown_end(ts, int(cfg[COOLDOWN_BARS]), int(cfg[BAR_MS])))


@compiled(inline=True)
def trail_stops(t: int, high: FloatArray, st: FloatArray) -> None:
    """Step 3: raise every trailing stop to high_t - distance when that is higher."""
    for s in range(high.shape[1]):
        if st[s, POS] > 0.0 and st[s, TRAIL] > 0.0 and high[t, s] > 0.0:
            level = high[t, s] - st[s, TRAIL]
            if not level <= st[s, STOP]:
                st[s, STOP] = level
                st[s, TRAILING] = 1.0


@compiled(inline=True)
def close_bar(
    t: int, ts: int, close: FloatArray, cfg: FloatArray, st: FloatArray, acct: FloatArray
) -> tuple[float, float]:
    """Step 4: marks, equity, peak equity and the day roll; returns (equity, gross position value)."""
    gross = 0.0
    for s in range(close.shape[1]):
        if close[t, s] > 0.0:
            st[s, MARK] = close[t, s]
        if st[s, POS] != 0.0:
            gross += st[s, POS] * st[s, MARK]
    equity = acct[CASH] + gross
    acct[PEAK] = max(acct[PEAK], equity)
    acct[DAY], acct[DAY_START] = roll_day(acct[DAY], acct[DAY_START], equity, ts, int(cfg[BAR_MS]))
    return equity, gross


@compiled(inline=True)
def entries_blocked(
    s: int, ts: int, equity: float, cfg: FloatArray, st: FloatArray, acct: FloatArray
) -> bool:
    """Step 5: a breaker forbids an increase of symbol s decided at the close of bar `ts`."""
    return (
        daily_loss_hit(equity, acct[DAY_START], cfg[DAILY_LOSS])
        or drawdown_hit(equity, acct[PEAK], cfg[MAX_DRAWDOWN])
        or cooling(st[s, COOL], ts)
    )


@compiled(inline=True)
def refuse_blocked(
    t: int,
    row: int,
    ts: int,
    goal: FloatArray,
    close: FloatArray,
    equity: float,
    cfg: FloatArray,
    st: FloatArray,
    acct: FloatArray,
) -> int:
    """Step 5 for a target series: a changed goal[row], decided at bar time `ts` with the book as it stands
    after close_t, above the current exposure (positions at close_t) is refused (put in force without an
    order) while a breaker blocks entries; in the ORDERS style a buy is refused (DONE = REFUSED). Returns
    how many were refused."""
    refused = 0
    orders = cfg[STYLE] == ORDERS
    for s in range(goal.shape[1]):
        g = goal[row, s]
        if orders:
            if g > 0.0 and entries_blocked(s, ts, equity, cfg, st, acct):
                st[s, DONE] = REFUSED
                refused += 1
            continue
        if not g == g or g == st[s, DONE]:
            continue
        mark = close[t, s] if close[t, s] > 0.0 else st[s, MARK]
        exposure = st[s, POS] * mark / equity if st[s, POS] != 0.0 and equity > 0.0 else 0.0
        if g > exposure and entries_blocked(s, ts, equity, cfg, st, acct):
            st[s, DONE] = g
            refused += 1
    return refused
