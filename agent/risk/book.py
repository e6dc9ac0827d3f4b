"""Book arithmetic: how far buys can go before the whole book breaks `max_gross_exposure` or
`min_cash_fraction`, once the fills and their costs are paid.

Contracts (pure, exact in real arithmetic; the risk layer's allowance and allocation and the paper broker's
re-check at the fill all use it, so they agree):
- The book is given in any one unit (fractions of equity, or the quote currency): `cash`, and `held`, the
  value of every position at the reference prices, both after the tick's decreases are sold.
- Buying a notional N at the reference price costs N × `TradeCosts.buy` = N (1 + slippage)(1 + fee) of cash
  and adds N of position value; selling N returns N × `TradeCosts.sell` = N (1 − slippage)(1 − fee).
- After buys of notional U costing W: cash' = cash − W, equity' = cash' + held + U, and
      gross' = (held + U) / equity' <= G   ⟺   U (1 − G) + W G <= G cash − (1 − G) held
      cash' >= m equity'                  ⟺   W (1 − m) + U m <= (1 − m) cash − m held
  (G = `max_gross_exposure`, m = `min_cash_fraction`; m = 0 is the spot rule cash' >= 0).
- `room` gives, for each condition, the largest multiple t >= 0 of one increase (notional `unit`, cost
  `unit_cost`) that keeps it; 0 when the book is already past the limit.
- `TOLERANCE`: callers leave an increase alone when it is within this relative margin of the room (the
  rounding of caps computed by the same formula elsewhere); a limit can be overshot by that much, not more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

from agent.execution.bar import ROOM_TOLERANCE, book_room
from agent.execution.costs import effective_fee

if TYPE_CHECKING:
    from agent.config import BrokerSettings
    from agent.market.exchange import MarketRules

Binding = Literal["max_gross_exposure", "cash"]

TOLERANCE = ROOM_TOLERANCE
"""Relative margin within which an increase counts as fitting the room (see the module contract)."""


@dataclass(frozen=True)
class TradeCosts:
    """What a unit of notional costs to buy and returns when sold, at the reference price."""

    buy: float
    """(1 + slippage)(1 + fee): cash paid per unit of notional bought."""
    sell: float
    """(1 − slippage)(1 − fee): cash received per unit of notional sold."""

    @classmethod
    def of(cls, fee_rate: float, slippage_bps: float) -> TradeCosts:
        """The costs of a taker fee rate and a slippage in basis points (as `execution.costs` fills)."""
        slip = slippage_bps * 1e-4
        return cls((1.0 + slip) * (1.0 + fee_rate), (1.0 - slip) * (1.0 - fee_rate))

    @classmethod
    def of_market(cls, rules: MarketRules, broker: BrokerSettings) -> TradeCosts:
        """What this market's fills pay: `execution.costs.effective_fee` and the broker's slippage."""
        return cls.of(effective_fee(rules, broker), broker.slippage_bps)


class Room(NamedTuple):
    """The largest multiple of an increase each book limit allows (see the module contract)."""

    gross: float
    cash: float

    @property
    def limit(self) -> float:
        """The multiple both limits allow."""
        return min(self.gross, self.cash)

    @property
    def binding(self) -> Binding:
        """The limit that sets `limit` (the gross cap on a tie)."""
        return "max_gross_exposure" if self.gross <= self.cash else "cash"


def room(cash: float, held: float, unit: float, unit_cost: float, max_gross: float, min_cash: float) -> Room:
    """How many times the increase (`unit` of notional costing `unit_cost`) fits the book's limits."""
    gross, floor = book_room(cash, held, unit, unit_cost, max_gross, min_cash)  # the fill's own arithmetic
    return Room(gross, floor)
