"""Fill, fee, slippage and precision rules: the single implementation that the backtest engine's compiled
loop and the paper broker both call, so a backtest and a paper session fill identically.

Contracts (all prices and cash in the quote currency, amounts in the base currency):
- `side` is +1 for buy, -1 for sell.
- Fill price = reference price moved against the trader by `slippage_bps` (buy higher, sell lower).
- The fee is `fee_rate × filled notional + fixed_fee`, charged in the quote currency (deducted from cash):
  the fixed fee (`broker.fixed_fee`, 0 by default) is charged once on every fill, buy or sell, whatever its
  size (a sell pays it out of its proceeds).
- Buys are capped so that amount × price × (1 + fee_rate) + fixed_fee <= cash (nothing fills when the cash
  does not cover the fixed fee); sells are capped at the position
  (spot: never short). The caps hold after flooring to the step too: a buy that the rounding tolerance
  floors past the cash is one step smaller; a sell floored past the position sells the position exactly.
- With `max_participation > 0` an order is capped at that fraction of the bar's volume.
- The amount is floored to `amount_step` (0 = no rounding). If what is left is below `min_amount` or its
  notional below `min_notional`, nothing fills and the status says DUST, so dust is counted explicitly.
- Pure scalar functions compiled with numba (`cache=True`); callable from Python and from njit code.
- `effective_fee(rules, broker)` (plain Python; `broker` is the settings' `broker` section, nothing else of
  them) is the taker fee rate fills pay: `broker.taker_fee` when set, else the market's
  (`MarketRules.taker_fee`); the risk layer (`risk.book.TradeCosts.of_market`), the graph and the broker all
  take their fee from it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from numba import njit

if TYPE_CHECKING:
    from agent.config import BrokerSettings
    from agent.market.exchange import MarketRules

FILLED = 0
"""Status: the order (possibly capped) filled."""
ZERO = 1
"""Status: nothing to do (zero amount after caps: no cash, no position or no volume)."""
DUST = 2
"""Status: the remaining amount is below the exchange minimum (amount or notional): skipped, counted."""

STATUS_NAMES = {FILLED: "filled", ZERO: "zero", DUST: "dust"}

_EPS = 1e-12


def effective_fee(rules: MarketRules, broker: BrokerSettings) -> float:
    """The taker fee rate that fills pay: the configured override (`broker.taker_fee`), else the market's."""
    override = broker.taker_fee
    return float(override) if override is not None else float(rules.taker_fee)


@njit(cache=True)
def slipped_price(side: int, ref_price: float, slippage_bps: float) -> float:
    """Reference price moved against the trader by `slippage_bps` basis points."""
    return ref_price * (1.0 + side * slippage_bps * 1e-4)


@njit(cache=True)
def floor_to_step(amount: float, step: float) -> float:
    """Floor `amount` to a multiple of `step` (tolerant of binary rounding); step <= 0 means no rounding."""
    if step <= 0.0:
        return amount
    return math.floor(amount / step + 1e-9) * step


@njit(cache=True)
def execute_order(
    side: int,
    amount: float,
    ref_price: float,
    cash: float,
    position: float,
    fee_rate: float,
    slippage_bps: float,
    amount_step: float,
    min_amount: float,
    min_notional: float,
    bar_volume: float,
    max_participation: float,
    fixed_fee: float = 0.0,
) -> tuple[float, float, float, int]:
    """Fill a market order of `amount` at `ref_price`; returns (filled_amount, price, fee, status)."""
    price = slipped_price(side, ref_price, slippage_bps)
    if max_participation > 0.0 and amount > bar_volume * max_participation:
        amount = bar_volume * max_participation
    limit = (cash - fixed_fee) / (price * (1.0 + fee_rate)) if side > 0 else position
    if amount > limit:
        amount = limit
    amount = floor_to_step(amount, amount_step)
    if amount > limit:  # the step's rounding tolerance went past the cash or the position
        amount = amount - amount_step if side > 0 else limit
    if amount <= _EPS:
        return 0.0, price, 0.0, ZERO
    notional = amount * price
    if amount < min_amount or notional < min_notional:
        return 0.0, price, 0.0, DUST
    return amount, price, notional * fee_rate + fixed_fee, FILLED


@njit(cache=True)
def order_for_target(target_exposure: float, equity: float, position: float, price: float) -> float:
    """Signed base amount that moves `position` to `target_exposure × equity` at `price`."""
    if price <= 0.0:
        return 0.0
    return target_exposure * equity / price - position


NO_EXIT = 0
"""Exit reason: neither stop-loss nor take-profit was touched."""
STOP_LOSS = 1
"""Exit reason: the bar traded at or below the stop."""
TAKE_PROFIT = 2
"""Exit reason: the bar traded at or above the take-profit (and did not touch the stop)."""

EXIT_NAMES = {NO_EXIT: "none", STOP_LOSS: "stop_loss", TAKE_PROFIT: "take_profit"}


@njit(cache=True)
def exit_trigger(open_: float, high: float, low: float, stop: float, take_profit: float) -> tuple[float, int]:
    """Whether a long position's stop or take-profit is hit within a bar, and at what reference price.

    Evaluated on the bar's high/low, pessimistically: when both are touched, the stop wins (the path
    inside the bar is unknown). A bar that opens beyond a level fills at the open (a gap), otherwise at the
    level. `stop`/`take_profit` <= 0 or NaN mean "none". Slippage is applied afterwards by `execute_order`.
    Returns (reference_price, reason) with reason NO_EXIT, STOP_LOSS or TAKE_PROFIT.
    """
    if stop > 0.0 and low <= stop:
        return (open_ if open_ < stop else stop), STOP_LOSS
    if take_profit > 0.0 and high >= take_profit:
        return (open_ if open_ > take_profit else take_profit), TAKE_PROFIT
    return 0.0, NO_EXIT
