"""The exit plan every entry must carry: a stop-loss below the price and a take-profit above it.

Contracts (pure):
- Defaults come from ATR: stop = price − `default_stop_atr` × ATR (never more than `MAX_STOP_DISTANCE` below
  the price), take-profit = price + `default_take_profit_atr` × ATR.
- A proposed stop that is missing, at or above the price, or more than `MAX_STOP_DISTANCE` below it is
  replaced by the default; a take-profit that is missing or at or below the price likewise. Each
  replacement is a `ClampEvent` (`stop_loss_default` / `take_profit_default`) saying why.
- When a default is needed and ATR is not finite and positive, there is no plan: `entry_plan` returns None
  and the caller rejects the entry (never an entry without a stop).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from agent.risk.models import STOP_LOSS_DEFAULT, TAKE_PROFIT_DEFAULT, ClampEvent

if TYPE_CHECKING:
    from agent.config import RiskSettings

MAX_STOP_DISTANCE = 0.5
"""A stop further than this fraction below the price is no stop at all: it is replaced."""


def default_levels(price: float, atr_value: float, risk: RiskSettings) -> tuple[float, float] | None:
    """(stop, take_profit) from ATR, or None when ATR is unusable."""
    if not (math.isfinite(atr_value) and atr_value > 0):
        return None
    stop = max(price - risk.default_stop_atr * atr_value, price * (1.0 - MAX_STOP_DISTANCE))
    return stop, price + risk.default_take_profit_atr * atr_value


def _stop_problem(stop: float | None, price: float) -> str:
    if stop is None:
        return "missing"
    if stop >= price:
        return f"at or above the price {price:.10g}"
    if stop < price * (1.0 - MAX_STOP_DISTANCE):
        return f"more than {MAX_STOP_DISTANCE:.0%} below the price {price:.10g}"
    return ""


def _take_profit_problem(take_profit: float | None, price: float) -> str:
    if take_profit is None:
        return "missing"
    if take_profit <= price:
        return f"at or below the price {price:.10g}"
    return ""


def entry_plan(
    stop: float | None, take_profit: float | None, price: float, atr_value: float, risk: RiskSettings
) -> tuple[float, float, list[ClampEvent]] | None:
    """The (stop, take_profit) an entry at `price` carries, with a record of each replacement; None if
    a default is needed and ATR is unusable."""
    stop_problem = _stop_problem(stop, price)
    take_problem = _take_profit_problem(take_profit, price)
    events: list[ClampEvent] = []
    if not stop_problem and not take_problem:
        assert stop is not None and take_profit is not None
        return stop, take_profit, events
    defaults = default_levels(price, atr_value, risk)
    if defaults is None:
        return None
    if stop_problem:
        events.append(
            ClampEvent(
                STOP_LOSS_DEFAULT,
                "stop_loss",
                stop,
                defaults[0],
                f"stop-loss {stop_problem}: set to {risk.default_stop_atr:g} ATR below",
            )
        )
        stop = defaults[0]
    if take_problem:
        detail = f"take-profit {take_problem}: set to {risk.default_take_profit_atr:g} ATR above"
        events.append(ClampEvent(TAKE_PROFIT_DEFAULT, "take_profit", take_profit, defaults[1], detail))
        take_profit = defaults[1]
    assert stop is not None and take_profit is not None
    return stop, take_profit, events
