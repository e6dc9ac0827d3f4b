"""Round trips rebuilt from a ledger's fills, as the compiled engine counts them (`agent.backtest.book`).

Contracts:
- Fills are taken in the order given (the ledger's bar order, then insertion order), one symbol at a time.
  A buy while flat opens a round trip; the sell that brings the held amount back to zero (within
  `FLAT_TOLERANCE` of the largest amount held in the trip) closes it. pnl = sell proceeds - buy cost - all
  fees of the trip, the engine's definition, so a rule run gives the same trades in the engine and in the
  daemon's ledger.
- A round trip still open after the last fill is counted in `open`, never in the closed pnl.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from agent.runs.curve import FloatArray

FLAT_TOLERANCE = 1e-9
"""A position below this fraction of the trip's largest amount counts as flat (float residue of sells)."""


@dataclass(frozen=True)
class LedgerFill:
    """One fill as the ledger holds it (fee in the quote currency)."""

    symbol: str
    side: Literal["buy", "sell"]
    amount: float
    price: float
    fee: float


@dataclass(frozen=True)
class RoundTrips:
    """Closed round trips' net pnl, and how many are still open."""

    pnl: FloatArray = field(default_factory=lambda: np.zeros(0))
    open: int = 0


@dataclass
class _Trip:
    held: float = 0.0
    peak: float = 0.0
    pnl: float = 0.0


def round_trips(fills: Iterable[LedgerFill]) -> RoundTrips:
    """The round trips of `fills` (see the module contract)."""
    trips: dict[str, _Trip] = {}
    closed: list[float] = []
    for f in fills:
        trip = trips.get(f.symbol)
        if f.side == "buy":
            trip = trips.setdefault(f.symbol, _Trip())
            trip.held += f.amount
            trip.peak = max(trip.peak, trip.held)
            trip.pnl -= f.amount * f.price + f.fee
        elif trip is not None:  # a sell with nothing held cannot happen on spot; ignore it if it does
            trip.held -= f.amount
            trip.pnl += f.amount * f.price - f.fee
            if trip.held <= FLAT_TOLERANCE * trip.peak:
                closed.append(trip.pnl)
                del trips[f.symbol]
    return RoundTrips(np.asarray(closed, dtype=np.float64), len(trips))
