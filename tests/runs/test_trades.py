"""Round trips from a ledger's fills (agent.runs.trades), as the compiled engine counts them."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.runs.trades import LedgerFill, round_trips


def fill(
    symbol: str, side: Literal["buy", "sell"], amount: float, price: float, fee: float = 0.0
) -> LedgerFill:
    return LedgerFill(symbol, side, amount, price, fee)


def test_flat_to_flat_with_partial_fills_and_two_symbols() -> None:
    trips = round_trips([
        fill("BTC", "buy", 1.0, 100.0, 0.1),
        fill("ETH", "buy", 2.0, 10.0, 0.02),
        fill("BTC", "buy", 1.0, 110.0, 0.11),   # added to the open trip
        fill("BTC", "sell", 0.5, 120.0, 0.06),  # partial: still open
        fill("BTC", "sell", 1.5, 90.0, 0.135),  # back to flat: closed
        fill("ETH", "sell", 2.0, 9.0, 0.018),
        fill("BTC", "buy", 1.0, 95.0, 0.095),   # a new trip, still open at the end
    ])  # fmt: skip
    btc = 0.5 * 120 + 1.5 * 90 - 100 - 110 - (0.1 + 0.11 + 0.06 + 0.135)
    eth = 2 * 9 - 2 * 10 - 0.02 - 0.018
    assert trips.pnl.tolist() == pytest.approx([btc, eth]) and trips.open == 1


def test_float_residue_of_sells_still_closes_the_trip() -> None:
    trips = round_trips([fill("X", "buy", 0.1, 1.0), fill("X", "buy", 0.2, 1.0), fill("X", "sell", 0.3, 1.0)])
    assert len(trips.pnl) == 1 and trips.open == 0


def test_no_fills_no_trips() -> None:
    trips = round_trips([])
    assert len(trips.pnl) == 0 and trips.open == 0


@settings(deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["A", "B"]), st.integers(1, 5), st.integers(1, 200)), max_size=40))
def test_closed_pnl_plus_open_cost_is_the_cash_flow(moves: list[tuple[str, int, int]]) -> None:
    """Whatever the order of buys and full sells, every fill lands in exactly one trip: the closed trips'
    pnl plus the open trips' net cash flow is the whole cash flow of the fills."""
    fills: list[LedgerFill] = []
    held = {"A": 0.0, "B": 0.0}
    for symbol, amount, price in moves:
        if held[symbol] and amount % 2 == 0:
            fills.append(fill(symbol, "sell", held[symbol], float(price), 0.01))
            held[symbol] = 0.0
        else:
            fills.append(fill(symbol, "buy", float(amount), float(price), 0.01))
            held[symbol] += amount
    trips = round_trips(fills)
    flow = sum(_flow(f) for f in fills)
    open_flow = sum(
        _flow(f)
        for symbol in held
        if held[symbol]
        for f in fills[_last_flat(fills, symbol) :]
        if f.symbol == symbol
    )
    assert float(np.sum(trips.pnl)) + open_flow == pytest.approx(flow, abs=1e-6)
    assert trips.open == sum(1 for v in held.values() if v)
    assert len(trips.pnl) == sum(1 for f in fills if f.side == "sell")


def _flow(f: LedgerFill) -> float:
    """The cash a fill brings in (negative for a buy), fee included."""
    return (f.amount * f.price if f.side == "sell" else -f.amount * f.price) - f.fee


def _last_flat(fills: list[LedgerFill], symbol: str) -> int:
    """Index after the last fill that left `symbol` flat (0 if none)."""
    last = 0
    for i, f in enumerate(fills):
        if f.symbol == symbol and f.side == "sell":
            last = i + 1
    return last
