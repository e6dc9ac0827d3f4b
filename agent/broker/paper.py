"""The paper broker: a pure state machine that settles one bar for a `PortfolioState`.

Every fill, fee, slippage, precision cap and exit goes through `agent.execution.costs` (`order_for_target`,
`execute_order`, `exit_trigger`), the functions the backtest engine's compiled loop calls, so a paper
session and a backtest fill identically.

Per-bar semantics (fixed, identical to the backtest engine). For bar t:
  1. At open_t: equity is marked at open_t once, before any order. Each pending target decided at
     close_{t-1} becomes an order of `order_for_target(target, equity_open, position, open_t)` base units at
     reference price open_t; all sells first, then all buys, each group in symbol order, so cash is freed
     first. An entry (flat -> long) stores the pending target's exit plan (`PendingTarget.levels` of the
     fill price) and invalidation on the position; adding to a position keeps its plan and entry time.
  2. Within bar t: for every open position, `exit_trigger(open_t, high_t, low_t, stop, take_profit)`; a hit
     sells the whole position at the returned reference price (reason stop_loss / take_profit). A stop-out
     starts the symbol's cooldown (`breakers.cooldown_end`).
  3. At close_t: marks = closes; equity = `state.equity(marks)`; peak equity = max(peak, equity); when
     close_t (= bar_ts + one bar of `settings.timeframe`) falls on a new UTC day, `day_start_equity` becomes
     this equity (on the run's first bar the day is only set, keeping the initial equity).
Limits at the fill: a buy toward a pending target is cut so that the book after it keeps
`max_gross_exposure` and cash >= `min_cash_fraction` of equity, positions marked at open_t and the fill's
fee and slippage paid (`agent.risk.book.room`, the formula the risk layer sized the targets with; a cut is
a `portfolio_room` event). With the defaults (1 and 0) that is cash >= 0, which `execute_order` keeps.
Orders only when a target changes: the risk layer sends a pending target only when it differs from the
current exposure, so the graph passes `in_force=None` (every pending target is acted on). A caller feeding a
raw target series every bar (as the backtest engine reads its target matrix) passes back each outcome's
`in_force`: a target equal to the last one acted on is skipped, as in the engine, whatever happened since
(a stop-out does not re-enter until the target changes). A sell leaving at most 1e-9 of the fill closes
the position exactly (floating-point residue of step flooring), as in the engine.
Unfilled orders are recorded too: status `rejected`, reason `...: dust` (below the exchange minimum) or
`...: nothing fillable` (no cash, no position or no volume), each with a `BrokerEvent`.

Inputs are checked: every symbol with a position or a pending target needs a finite, positive bar
(`DataError` otherwise: the caller skips the tick); a pending target outside [0, 1], for another symbol, or
decided at or after bar t (look-ahead) is a bug (`ValueError`).
Positions are kept in symbol order so equity sums identically after a reload (bit-identical resumes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from agent.broker.models import (
    EXIT_LEG,
    TARGET_LEG,
    Bar,
    BarOutcome,
    BrokerEvent,
    FillRecord,
    MarketRules,
    OrderRecord,
    PendingTarget,
    client_order_id,
)
from agent.errors import DataError
from agent.execution import costs
from agent.execution.costs import effective_fee
from agent.market.candles import timeframe_ms
from agent.portfolio import PortfolioState, Position
from agent.risk.book import TOLERANCE, TradeCosts, room
from agent.risk.breakers import cooldown_end
from agent.risk.models import PORTFOLIO_ROOM

if TYPE_CHECKING:
    from agent.config import Settings

DAY_MS = 86_400_000
_CLOSED = 1e-9
"""A sell leaving at most this fraction of the fill closes the position (the engine's rule)."""


def initial_state(cash: float) -> PortfolioState:
    """A flat portfolio at the start of a run: peak and day-start equity are the initial cash."""
    return PortfolioState(cash=cash, peak_equity=cash, day_start_equity=cash, day=-1)


def process_bar(
    state: PortfolioState,
    bars: Mapping[str, Bar],
    pending: Mapping[str, PendingTarget],
    bar_ts: int,
    rules: Mapping[str, MarketRules],
    settings: Settings,
    run_id: str,
    in_force: Mapping[str, float] | None = None,
) -> BarOutcome:
    """Settle bar t: pending targets at the open, exits within the bar, marks at the close (see module)."""
    _check_inputs(state, bars, pending, bar_ts)
    book = _Book(state, bars, bar_ts, rules, settings, run_id, in_force)
    book.execute_targets(pending)
    book.run_exits()
    return book.close(state)


def _check_inputs(
    state: PortfolioState, bars: Mapping[str, Bar], pending: Mapping[str, PendingTarget], bar_ts: int
) -> None:
    for symbol in sorted(set(state.positions) | set(pending)):
        bar = bars.get(symbol)
        if bar is None:
            raise DataError(f"no bar for {symbol}, which has a position or a pending target")
        prices = (bar.open, bar.high, bar.low, bar.close)
        if not all(math.isfinite(p) and p > 0 for p in prices) or not (bar.volume >= 0):
            raise DataError(f"invalid bar for {symbol}: {bar}")
    for symbol, target in pending.items():
        if target.symbol != symbol or not (0.0 <= target.target <= 1.0) or target.decided_ts >= bar_ts:
            raise ValueError(f"invalid pending target for {symbol} at bar {bar_ts}: {target}")


class _Book:
    """Working copy of the state while one bar is settled (private; `process_bar` stays pure)."""

    def __init__(
        self,
        state: PortfolioState,
        bars: Mapping[str, Bar],
        bar_ts: int,
        rules: Mapping[str, MarketRules],
        settings: Settings,
        run_id: str,
        in_force: Mapping[str, float] | None,
    ) -> None:
        self.bars, self.bar_ts, self.rules, self.settings, self.run_id = bars, bar_ts, rules, settings, run_id
        self.bar_ms = timeframe_ms(settings.timeframe)
        self.cash = state.cash
        self.fees = state.fees_paid
        self.positions = {s: state.positions[s] for s in sorted(state.positions)}
        self.cooldown = dict(state.cooldown_until)
        self.in_force = dict(in_force or {})
        self.orders: list[OrderRecord] = []
        self.fills: list[FillRecord] = []
        self.events: list[BrokerEvent] = []

    # ---- step 1: targets at the open -------------------------------------------------------------------

    def execute_targets(self, pending: Mapping[str, PendingTarget]) -> None:
        equity_open = self.cash
        for symbol, position in self.positions.items():  # summed in the engine's order
            equity_open += position.amount * self.bars[symbol].open
        orders: list[tuple[str, float, PendingTarget]] = []
        for symbol in sorted(pending):
            target = pending[symbol]
            if self.in_force.get(symbol) == target.target:
                continue
            self.in_force[symbol] = target.target
            held = self.positions[symbol].amount if symbol in self.positions else 0.0
            delta = costs.order_for_target(target.target, equity_open, held, self.bars[symbol].open)
            if delta != 0.0:
                orders.append((symbol, delta, target))
        for symbol, delta, target in [o for o in orders if o[1] < 0] + [o for o in orders if o[1] > 0]:
            reason = self._reason(symbol, delta, target)
            self._execute(symbol, delta, self.bars[symbol].open, TARGET_LEG, reason, target)

    def _reason(self, symbol: str, delta: float, target: PendingTarget) -> str:
        if symbol not in self.positions:
            return "entry"
        if target.target == 0.0:
            return "exit"
        return "increase" if delta > 0 else "decrease"

    # ---- step 2: exits within the bar ------------------------------------------------------------------

    def run_exits(self) -> None:
        for symbol in sorted(self.positions):
            pos, bar = self.positions[symbol], self.bars[symbol]
            stop = pos.stop_loss if pos.stop_loss is not None else 0.0
            take = pos.take_profit if pos.take_profit is not None else 0.0
            ref, why = costs.exit_trigger(bar.open, bar.high, bar.low, stop, take)
            if why == costs.NO_EXIT:
                continue
            reason = costs.EXIT_NAMES[why]
            filled = self._execute(symbol, -pos.amount, ref, EXIT_LEG, reason, None)
            if filled > 0 and why == costs.STOP_LOSS:
                until = cooldown_end(self.bar_ts, self.settings.risk.cooldown_bars, self.bar_ms)
                self.cooldown[symbol] = until
                detail = f"stopped out at {ref:.10g}; cooldown until {until}"
                self.events.append(BrokerEvent(symbol, "cooldown", detail))

    # ---- step 3: marks at the close --------------------------------------------------------------------

    def close(self, before: PortfolioState) -> BarOutcome:
        marks = {s: b.close for s, b in self.bars.items()}
        state = PortfolioState(
            cash=self.cash,
            positions={s: self.positions[s] for s in sorted(self.positions)},
            fees_paid=self.fees,
            peak_equity=before.peak_equity,
            day_start_equity=before.day_start_equity,
            day=before.day,
            cooldown_until=self.cooldown,
        )
        equity = state.equity(marks)
        day = (self.bar_ts + self.bar_ms) // DAY_MS
        changes: dict[str, object] = {"peak_equity": max(before.peak_equity, equity), "day": day}
        if before.day != -1 and day != before.day:
            changes["day_start_equity"] = equity
        state = state.with_changes(**changes)
        return BarOutcome(
            state, tuple(self.orders), tuple(self.fills), tuple(self.events), marks, equity, self.in_force
        )

    # ---- one order ---------------------------------------------------------------------------------------

    def _execute(
        self, symbol: str, delta: float, ref: float, leg: str, reason: str, target: PendingTarget | None
    ) -> float:
        """Fill `delta` base units (signed) at `ref` via `costs.execute_order`; returns the amount filled."""
        rules, bar, broker = self.rules[symbol], self.bars[symbol], self.settings.broker
        side = 1 if delta > 0 else -1
        held = self.positions[symbol].amount if symbol in self.positions else 0.0
        fee_rate, participation = effective_fee(rules, self.settings), broker.max_participation or 0.0
        wanted = abs(delta)
        if leg == TARGET_LEG and side > 0:
            wanted = self._within_room(symbol, wanted, ref, fee_rate)
        amount, price, fee, status = costs.execute_order(
            side, wanted, ref, self.cash, held, fee_rate, broker.slippage_bps,
            rules.amount_step, rules.min_amount, rules.min_notional, bar.volume, participation,
        )
        coid = client_order_id(self.run_id, symbol, self.bar_ts, leg)
        side_name = "buy" if side > 0 else "sell"
        decided = target.decided_ts if target is not None else None
        if status != costs.FILLED:
            why = "dust" if status == costs.DUST else "nothing fillable"
            self.orders.append(OrderRecord(coid, self.run_id, symbol, self.bar_ts, side_name, abs(delta), ref,
                                           "rejected", f"{reason}: {why}", leg, decided))
            detail = f"{side_name} {abs(delta):.10g} {symbol} at {ref:.10g} ({reason}): {why}"
            self.events.append(BrokerEvent(symbol, costs.STATUS_NAMES[status], detail))
            return 0.0
        self.orders.append(OrderRecord(coid, self.run_id, symbol, self.bar_ts, side_name, abs(delta), ref,
                                       "filled", reason, leg, decided))
        self.fills.append(FillRecord(coid, self.run_id, symbol, self.bar_ts, side_name, amount, price, fee,
                                     broker.quote_currency))
        self.fees += fee
        if side > 0:
            self.cash -= amount * price + fee
            self._add(symbol, amount, price, target)
        else:
            self.cash += amount * price - fee
            left = held - amount
            if left <= _CLOSED * amount:
                del self.positions[symbol]
            else:
                self.positions[symbol] = replace(self.positions[symbol], amount=left)
        return amount

    def _within_room(self, symbol: str, amount: float, ref: float, fee_rate: float) -> float:
        """A buy of `amount` at `ref`, cut so that the book after the fill keeps `max_gross_exposure` and
        `min_cash_fraction` of equity (`risk.book.room`, positions at this bar's open); a cut is an event."""
        risk = self.settings.risk
        if risk.max_gross_exposure >= 1.0 and risk.min_cash_fraction <= 0.0:
            return amount  # the only limit left is cash >= 0, which `execute_order` keeps
        held = sum(p.amount * self.bars[s].open for s, p in self.positions.items())
        unit_cost = ref * TradeCosts.of(fee_rate, self.settings.broker.slippage_bps).buy
        fits = room(self.cash, held, ref, unit_cost, risk.max_gross_exposure, risk.min_cash_fraction)
        if amount <= fits.limit * (1.0 + TOLERANCE):
            return amount
        detail = (f"buy of {amount:.10g} {symbol} cut to {fits.limit:.10g} at {ref:.10g}: the book keeps "
                  f"max_gross_exposure {risk.max_gross_exposure:g} and min_cash_fraction "
                  f"{risk.min_cash_fraction:g} (binding: {fits.binding})")
        self.events.append(BrokerEvent(symbol, PORTFOLIO_ROOM, detail))
        return fits.limit

    def _add(self, symbol: str, amount: float, price: float, target: PendingTarget | None) -> None:
        old = self.positions.get(symbol)
        if old is None:
            plan = target or PendingTarget(symbol, 0.0, self.bar_ts)
            stop, take = plan.levels(price)
            position = Position(symbol, amount, price, self.bar_ts, stop, take, plan.invalidation)
            self.positions[symbol] = position
            return
        total = old.amount + amount
        avg = (old.amount * old.avg_price + amount * price) / total
        self.positions[symbol] = replace(old, amount=total, avg_price=avg)
