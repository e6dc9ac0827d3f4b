"""The compiled loop's records: the order log of `agent.execution.bar` turned into fills, round trips and
counters (a `SimResult`).

Contracts:
- The loop writes every attempted order to the order log (`bar.order_log`); capacity is the caller's job
  (`grow` keeps what was written).
- Fills are the log rows with status FILLED, in order. Counters: dust and zero orders (not filled), orders
  cut by the participation cap, buys cut by the book's room, target changes refused by a breaker.
- Round trips run from flat to flat, rebuilt from the fills in one compiled pass: a buy from flat opens
  one (the initial position's row too: a trade entered at the first bar's open without fees); the sell the
  log marks as closing the position ends it. pnl = sell proceeds - buy cost - all fees
  of the trade; entry and exit prices are averages; trades still open at the end are marked at the last
  close, with no exit bar (-1) and reason -1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from agent.backtest.models import Counters, FloatArray, IntArray, SimResult
from agent.execution import bar
from agent.execution.compiled import compiled
from agent.execution.costs import DUST, FILLED, ZERO

Log = bar.Log


def new_log(capacity: int) -> Log:
    """An empty order log."""
    li, lf = bar.order_log(capacity)
    return li, lf, np.zeros(1, np.int64)


def grow(log: Log, capacity: int) -> Log:
    """The same log in bigger arrays."""
    li, lf, cnt = log
    bigger_i, bigger_f = bar.order_log(capacity)
    bigger_i[: len(li)] = li
    bigger_f[: len(lf)] = lf
    return bigger_i, bigger_f, cnt


@njit(cache=True)  # allocates its outputs: with numba's runtime
def _trades(
    li: IntArray, lf: FloatArray, fills: IntArray, marks: FloatArray, positions: FloatArray
) -> tuple[IntArray, FloatArray]:
    """Round trips of the filled rows `fills` (module contract): (ints (symbol, entry, exit, reason), floats
    (entry price, exit price, amount, pnl, fees))."""
    k = marks.shape[0]
    acc = np.zeros((k, 6))  # entry bar, cost, proceeds, fees, amount in, amount out
    is_open = np.zeros(k, np.bool_)
    out_i = np.zeros((fills.shape[0] + k, 4), np.int64)
    out_f = np.zeros((fills.shape[0] + k, 5))
    n = 0
    for i in fills:
        s = li[i, bar.L_SYMBOL]
        amount, price, fee = lf[i, bar.L_FILLED], lf[i, bar.L_PRICE], lf[i, bar.L_FEE]
        if li[i, bar.L_SIDE] > 0:
            if not is_open[s]:
                is_open[s] = True
                acc[s, :] = 0.0
                acc[s, 0] = li[i, bar.L_ROW]
            acc[s, 1] += amount * price
            acc[s, 4] += amount
        else:
            acc[s, 2] += amount * price
            acc[s, 5] += amount
        acc[s, 3] += fee
        if li[i, bar.L_CLOSED] == 1:
            n = _close(out_i, out_f, n, s, li[i, bar.L_ROW], li[i, bar.L_REASON], acc[s])
            is_open[s] = False
    for s in range(k):
        if is_open[s]:
            acc[s, 2] += positions[s] * marks[s]
            acc[s, 5] += positions[s]
            n = _close(out_i, out_f, n, s, -1, -1, acc[s])
    return out_i[:n], out_f[:n]


@compiled()
def _close(
    out_i: IntArray, out_f: FloatArray, n: int, s: int, exit_bar: int, reason: int, acc: FloatArray
) -> int:
    out_i[n, 0], out_i[n, 1], out_i[n, 2], out_i[n, 3] = s, int(acc[0]), exit_bar, reason
    out_f[n, 0] = acc[1] / acc[4]
    out_f[n, 1] = acc[2] / acc[5] if acc[5] > 0 else np.nan
    out_f[n, 2] = acc[4]
    out_f[n, 3] = acc[2] - acc[1] - acc[3]
    out_f[n, 4] = acc[3]
    return n + 1


def result(
    index: object,
    symbols: tuple[str, ...],
    out: tuple[FloatArray, ...],
    log: Log,
    st: FloatArray,
    volume: FloatArray,
    participation: float,
    refused: int,
    initial_cash: float,
) -> SimResult:
    """The log trimmed to what was written, as a `SimResult`."""
    li_all, lf_all, cnt = log
    li, lf = li_all[: int(cnt[0])], lf_all[: int(cnt[0])]
    status = li[:, bar.L_STATUS]
    fills = np.flatnonzero(status == FILLED)
    ti, tf = _trades(
        li, lf, fills, np.ascontiguousarray(st[:, bar.MARK]), np.ascontiguousarray(st[:, bar.POS])
    )
    capped = 0
    if participation > 0.0 and len(li):
        cap = volume[li[:, bar.L_ROW], li[:, bar.L_SYMBOL]] * participation
        capped = int(np.count_nonzero((lf[:, bar.L_ASKED] > cap) & (li[:, bar.L_REASON] != bar.INITIAL)))
    counters = Counters(
        dust=int(np.count_nonzero(status == DUST)),
        zero=int(np.count_nonzero(status == ZERO)),
        capped=capped,
        room=int(np.count_nonzero(li[:, bar.L_ROOM] != bar.NO_CUT)),
        refused=refused,
    )
    fi, ff = li[fills], lf[fills]
    return SimResult(
        index=index,  # type: ignore[arg-type]
        symbols=symbols,
        equity=out[0],
        cash=out[1],
        exposure=out[2],
        fill_bar=fi[:, bar.L_ROW].copy(),
        fill_symbol=fi[:, bar.L_SYMBOL].copy(),
        fill_side=fi[:, bar.L_SIDE].copy(),
        fill_amount=ff[:, bar.L_FILLED].copy(),
        fill_price=ff[:, bar.L_PRICE].copy(),
        fill_fee=ff[:, bar.L_FEE].copy(),
        fill_reason=fi[:, bar.L_REASON].copy(),
        trade_symbol=ti[:, 0].copy(),
        trade_entry_bar=ti[:, 1].copy(),
        trade_exit_bar=ti[:, 2].copy(),
        trade_entry_price=tf[:, 0].copy(),
        trade_exit_price=tf[:, 1].copy(),
        trade_amount=tf[:, 2].copy(),
        trade_pnl=tf[:, 3].copy(),
        trade_fees=tf[:, 4].copy(),
        trade_reason=ti[:, 3].copy(),
        counters=counters,
        initial_cash=float(initial_cash),
    )
