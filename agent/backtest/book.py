"""The compiled loop's book: per-symbol state, order execution through `costs`, fill and trade records.

Contracts:
- State is one (k, NSTATE) float array, one row per symbol, columns named by the constants below (position,
  exit plan, target acted on, last mark, and the open round trip's accumulators). Cash is `acct[0]`.
- `fill` is the only place an order is executed: `agent.execution.costs.execute_order` decides amount,
  price and fee; `fill` applies them to cash, position and the round trip, writes one fill record and,
  when a sell leaves the position flat (<= `CLOSED`, as in the paper broker), one trade record.
  Unfilled orders are counted, never recorded as fills: dust (below the exchange minimums) and zero
  (nothing affordable or nothing held); fills cut by the participation cap are counted as capped.
- An entry (flat -> long) starts a round trip and sets its exit plan from the distances known when the
  order was decided: stop = fill price - stop distance, take-profit = fill price + distance, trailing
  distance; NaN = none.
- Records: fills (bar, symbol, side, reason) + (amount, price, fee); trades (symbol, entry bar, exit bar,
  reason) + (entry price, exit price, amount, pnl, fees). Capacity is the caller's job (`records`, `grow`).
- The numba functions use `_nrt=False`: they allocate nothing, so arrays pass between them without
  reference counting. They are ordinary compiled calls (not inlined): they run only when an order is
  placed, and keeping them out of line keeps the loop's first compile short.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from agent.backtest.models import Counters, FloatArray, SimResult
from agent.execution.costs import DUST, ZERO, execute_order

POS, STOP, TP, TRAIL, PEAK, TRAILING, DONE, MARK = 0, 1, 2, 3, 4, 5, 6, 7
T_ENTRY, T_COST, T_PROCEEDS, T_FEES, T_QIN, T_QOUT = 8, 9, 10, 11, 12, 13
NSTATE = 14
FEE, STEP, MIN_AMOUNT, MIN_NOTIONAL = 0, 1, 2, 3
"""Columns of the (k, 4) rules array."""
N_FILLS, N_TRADES, N_DUST, N_ZERO, N_CAPPED = 0, 1, 2, 3, 4
"""Slots of the counters array."""
ENTRY, INCREASE, DECREASE, EXIT, STOPPED, TAKEN, TRAILED = 0, 1, 2, 3, 4, 5, 6
"""Fill reasons (index into `models.REASONS`)."""
CLOSED = 1e-12
"""A position at or below this after a sell is closed (float residue of step flooring), as in the broker."""

Records = tuple[np.ndarray, FloatArray, np.ndarray, FloatArray]


def new_state(k: int) -> FloatArray:
    """Flat state for k symbols: no position, no exit plan, target acted on = 0."""
    st = np.full((k, NSTATE), math.nan)
    st[:, [POS, DONE, TRAILING]] = 0.0
    return st


def records(capacity: int) -> Records:
    """Empty fill and trade records for `capacity` rows each."""
    return (
        np.zeros((capacity, 4), np.int64),
        np.zeros((capacity, 3)),
        np.zeros((capacity, 4), np.int64),
        np.zeros((capacity, 5)),
    )


def grow(rec: Records, capacity: int) -> Records:
    """The same records in bigger arrays."""
    bigger = records(capacity)
    for old, new in zip(rec, bigger, strict=True):
        new[: len(old)] = old
    return bigger


@njit(cache=True, _nrt=False)
def close_trade(t, s, reason, book):
    """Write the round trip of symbol s (now flat) and clear its exit plan."""
    _, st, cnt, rec = book
    _, _, ti, tf = rec
    i = cnt[N_TRADES]
    ti[i, 0], ti[i, 1], ti[i, 2], ti[i, 3] = s, int(st[s, T_ENTRY]), t, reason
    tf[i, 0] = st[s, T_COST] / st[s, T_QIN]
    tf[i, 1] = st[s, T_PROCEEDS] / st[s, T_QOUT] if st[s, T_QOUT] > 0 else math.nan
    tf[i, 2] = st[s, T_QIN]
    tf[i, 3] = st[s, T_PROCEEDS] - st[s, T_COST] - st[s, T_FEES]
    tf[i, 4] = st[s, T_FEES]
    cnt[N_TRADES] = i + 1
    st[s, STOP] = st[s, TP] = st[s, TRAIL] = st[s, PEAK] = math.nan
    st[s, TRAILING] = 0.0


@njit(cache=True, _nrt=False)
def open_trade(t, s, price, row, dists, st):
    """Start a round trip at fill `price`: reset its accumulators and set its exit plan from dists[:, row]."""
    st[s, T_ENTRY] = t
    st[s, T_COST] = st[s, T_PROCEEDS] = st[s, T_FEES] = st[s, T_QIN] = st[s, T_QOUT] = 0.0
    planned = dists.shape[1] > 0
    st[s, STOP] = price - dists[0, row, s] if planned else math.nan
    st[s, TP] = price + dists[1, row, s] if planned else math.nan
    st[s, TRAIL] = dists[2, row, s] if planned else math.nan
    st[s, PEAK] = price
    st[s, TRAILING] = 0.0


@njit(cache=True, _nrt=False)
def fill(t, s, side, amount, ref, reason, row, market, book):
    """One market order of `amount` at reference price `ref` through costs.execute_order (module contract)."""
    volume, rules, slip, part, dists = market
    acct, st, cnt, rec = book
    r = rules[s]
    filled, price, fee, status = execute_order(
        side,
        amount,
        ref,
        acct[0],
        st[s, POS],
        r[FEE],
        slip,
        r[STEP],
        r[MIN_AMOUNT],
        r[MIN_NOTIONAL],
        volume[t, s],
        part,
    )
    if status == DUST:
        cnt[N_DUST] += 1
        return
    if status == ZERO:
        cnt[N_ZERO] += 1
        return
    if part > 0.0 and amount > volume[t, s] * part:
        cnt[N_CAPPED] += 1
    notional = filled * price
    if side > 0:
        acct[0] -= notional + fee
        if st[s, POS] <= 0.0:
            open_trade(t, s, price, row, dists, st)
        st[s, POS] += filled
        st[s, T_COST] += notional
        st[s, T_QIN] += filled
    else:
        acct[0] += notional - fee
        st[s, POS] -= filled
        st[s, T_PROCEEDS] += notional
        st[s, T_QOUT] += filled
    st[s, T_FEES] += fee
    fi, ff, _, _ = rec
    i = cnt[N_FILLS]
    fi[i, 0], fi[i, 1], fi[i, 2], fi[i, 3] = t, s, side, reason
    ff[i, 0], ff[i, 1], ff[i, 2] = filled, price, fee
    cnt[N_FILLS] = i + 1
    if side < 0 and st[s, POS] <= CLOSED:
        st[s, POS] = 0.0
        close_trade(t, s, reason, book)


@njit(cache=True, _nrt=False)
def close_open_trades(book):
    """Record trades still open at the end, marked at the last close, with exit bar and reason -1."""
    _, st, _, _ = book
    for s in range(st.shape[0]):
        if st[s, POS] > 0.0:
            st[s, T_PROCEEDS] += st[s, POS] * st[s, MARK]
            st[s, T_QOUT] += st[s, POS]
            close_trade(-1, s, -1, book)


def result(
    index: object,
    symbols: tuple[str, ...],
    out: tuple[FloatArray, ...],
    rec: Records,
    cnt: np.ndarray,
    initial_cash: float,
) -> SimResult:
    """The records trimmed to what was written, as a `SimResult`."""
    fi, ff, ti, tf = rec
    nf, nt = int(cnt[N_FILLS]), int(cnt[N_TRADES])
    return SimResult(
        index=index,  # type: ignore[arg-type]
        symbols=symbols,
        equity=out[0],
        cash=out[1],
        exposure=out[2],
        fill_bar=fi[:nf, 0].copy(),
        fill_symbol=fi[:nf, 1].copy(),
        fill_side=fi[:nf, 2].copy(),
        fill_amount=ff[:nf, 0].copy(),
        fill_price=ff[:nf, 1].copy(),
        fill_fee=ff[:nf, 2].copy(),
        fill_reason=fi[:nf, 3].copy(),
        trade_symbol=ti[:nt, 0].copy(),
        trade_entry_bar=ti[:nt, 1].copy(),
        trade_exit_bar=ti[:nt, 2].copy(),
        trade_entry_price=tf[:nt, 0].copy(),
        trade_exit_price=tf[:nt, 1].copy(),
        trade_amount=tf[:nt, 2].copy(),
        trade_pnl=tf[:nt, 3].copy(),
        trade_fees=tf[:nt, 4].copy(),
        trade_reason=ti[:nt, 3].copy(),
        counters=Counters(dust=int(cnt[N_DUST]), zero=int(cnt[N_ZERO]), capped=int(cnt[N_CAPPED])),
        initial_cash=float(initial_cash),
    )
