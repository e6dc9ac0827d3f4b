"""The paper broker: a pure state machine that settles one bar for a `PortfolioState`.

It is the per-bar semantics of `agent.execution.bar` applied to one bar: the portfolio and the pending
targets become the kernel's arrays (symbols in sorted order), the kernel's steps run exactly as in the
backtest engine's compiled loop, and the result is read back as a new state plus order, fill and event
records. A paper session and a backtest therefore fill identically, bit for bit.

For bar t (see `agent.execution.bar` for the rules themselves):
  0. At the first bar (the state has seen no close: `day` -1): the initial position of `[broker]
     initial_position` (a fraction of the equity per symbol) is bought at open_t without costs, recorded as a
     filled order of leg and reason `initial`; every such symbol needs a bar then (`DataError`).
  1. At open_t: pending targets decided at close_{t-1} (with `FillTerms.timing` `same_open`: at open_t
     itself) become orders (equity marked at open_t once; sells first, then buys, in symbol order; a buy cut
     to keep the book's `max_gross_exposure` and `min_cash_fraction`, a `portfolio_room` event); in the
     `order_fraction` style they are order fractions, every one given is placed. An entry stores the pending
     target's exit plan (`PendingTarget.plan`) and invalidation on the position; an add keeps the position's
     plan and entry time.
  2. Within bar t: stop-loss, trailing stop and take-profit exits; a filled stop-out starts the symbol's
     cooldown (`bar.cooldown_end`, a `cooldown` event). Then trailing stops follow the bar's high.
  3. At close_t: marks = closes; equity; peak equity; the day roll (`bar.roll_day`).
Orders only when a target changes: the risk layer sends a pending target only when the decision changes
something, so the graph passes `in_force=None` (every pending target is acted on). A caller feeding a raw
target series every bar (as the backtest engine reads its target matrix) passes back each outcome's
`in_force`: a target equal to the last one acted on is skipped, as in the engine, whatever happened since
(a stop-out does not re-enter until the target changes).
Unfilled orders are recorded too: status `rejected`, reason `...: dust` (below the exchange minimum) or
`...: nothing fillable` (no cash, no position or no volume), each with a `BrokerEvent`.

Fees are the proportional fee plus `[broker] fixed_fee` on every fill (`execution.costs.execute_order`).

Inputs are checked: every symbol with a position or a pending target needs a finite, positive bar
(`DataError` otherwise: the caller skips the tick); a pending target outside [0, 1] (outside [-1, 1] in the
`order_fraction` style), for another symbol, or decided at or after bar t (look-ahead; after bar t with
`same_open`) is a bug (`ValueError`).
Positions are kept in symbol order so equity sums identically after a reload (bit-identical resumes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from agent.broker.models import (
    EXIT_LEG,
    INITIAL_LEG,
    TARGET_LEG,
    Bar,
    BarOutcome,
    BrokerEvent,
    FillRecord,
    FillTerms,
    MarketRules,
    OrderRecord,
    PendingTarget,
    client_order_id,
)
from agent.errors import DataError
from agent.execution import bar
from agent.execution.compiled import compiled
from agent.execution.conventions import SIGNAL_BOUNDS
from agent.execution.costs import DUST, FILLED, STATUS_NAMES, effective_fee
from agent.portfolio import PortfolioState, Position
from agent.risk.models import PORTFOLIO_ROOM

DAY_MS = bar.DAY_MS
COOLDOWN = "cooldown"
"""Event kind of a stop-out starting a cooldown."""


def initial_state(cash: float) -> PortfolioState:
    """A flat portfolio at the start of a run: peak and day-start equity are the initial cash."""
    return PortfolioState(cash=cash, peak_equity=cash, day_start_equity=cash, day=-1)


def process_bar(
    state: PortfolioState,
    bars: Mapping[str, Bar],
    pending: Mapping[str, PendingTarget],
    bar_ts: int,
    rules: Mapping[str, MarketRules],
    terms: FillTerms,
    run_id: str,
    in_force: Mapping[str, float] | None = None,
) -> BarOutcome:
    """Settle bar t: pending targets at the open, exits within the bar, marks at the close (see module).
    `terms` are the settings it reads (`FillTerms.of(settings)`)."""
    _check_inputs(state, bars, pending, bar_ts, terms)
    book = _Arrays.of(state, bars, pending, bar_ts, rules, terms, in_force)
    book.run()
    return _Reading(book, state, pending, bar_ts, terms, run_id).outcome()


def _check_inputs(
    state: PortfolioState,
    bars: Mapping[str, Bar],
    pending: Mapping[str, PendingTarget],
    bar_ts: int,
    terms: FillTerms,
) -> None:
    seeded = (
        {s for s, share in terms.broker.initial_position.items() if share > 0} if state.day == -1 else set()
    )
    for symbol in sorted(set(state.positions) | set(pending) | seeded):
        candle = bars.get(symbol)
        if candle is None:
            raise DataError(f"no bar for {symbol}, which has a position, a pending target or an initial one")
        prices = (candle.open, candle.high, candle.low, candle.close)
        if not all(math.isfinite(p) and p > 0 for p in prices) or not (candle.volume >= 0):
            raise DataError(f"invalid bar for {symbol}: {candle}")
    low, high = SIGNAL_BOUNDS[terms.style]
    latest = bar_ts if terms.timing == "same_open" else bar_ts - 1
    for symbol, target in pending.items():
        exposure = target.target_exposure
        if target.symbol != symbol or not (low <= exposure <= high) or target.decided_ts > latest:
            raise ValueError(f"invalid pending target for {symbol} at bar {bar_ts}: {target}")


@dataclass
class _Arrays:
    """The bar and the book as the kernel's arrays (one row; symbols sorted)."""

    symbols: list[str]
    ts: int
    ohlcv: dict[str, np.ndarray]
    goal: np.ndarray
    plan: np.ndarray
    seed: np.ndarray
    rules: np.ndarray
    cfg: np.ndarray
    st: np.ndarray
    acct: np.ndarray
    log: tuple[np.ndarray, np.ndarray, np.ndarray]

    @classmethod
    def of(
        cls,
        state: PortfolioState,
        bars: Mapping[str, Bar],
        pending: Mapping[str, PendingTarget],
        bar_ts: int,
        rules: Mapping[str, MarketRules],
        terms: FillTerms,
        in_force: Mapping[str, float] | None,
    ) -> _Arrays:
        symbols = sorted(bars)
        k = len(symbols)
        ohlcv = {
            c: bar.frozen([[getattr(bars[s], c) for s in symbols]])
            for c in ("open", "high", "low", "close", "volume")
        }
        goal = np.full((1, k), math.nan)
        plan = np.full((3, 1, k), math.nan)
        st = bar.new_state(k, math.nan)
        seed = np.zeros(k if state.day == -1 and terms.broker.initial_position else 0)
        for j, s in enumerate(symbols):
            if len(seed):
                seed[j] = terms.broker.initial_position.get(s, 0.0)
            if s in pending:
                goal[0, j] = pending[s].target_exposure
                plan[:, 0, j] = pending[s].plan()
            if in_force is not None and s in in_force:
                st[j, bar.DONE] = in_force[s]
            pos = state.positions.get(s)
            if pos is not None:
                st[j, bar.POS] = pos.amount
                st[j, bar.STOP] = _nan(pos.stop_loss)
                st[j, bar.TP] = _nan(pos.take_profit)
                st[j, bar.TRAIL] = _nan(pos.trailing_stop)
                st[j, bar.TRAILING] = 1.0 if pos.trailing else 0.0
            if s in state.cooldown_until:
                st[j, bar.COOL] = float(state.cooldown_until[s])
        matrix = np.array(
            [
                [
                    effective_fee(rules[s], terms.broker),
                    rules[s].amount_step,
                    rules[s].min_amount,
                    rules[s].min_notional,
                ]
                for s in symbols
            ],
            dtype=np.float64,
        ).reshape(k, 4)
        risk, broker = terms.risk, terms.broker
        cfg = bar.config(
            broker.slippage_bps,
            broker.max_participation or 0.0,
            risk.max_gross_exposure,
            risk.min_cash_fraction,
            risk.cooldown_bars,
            risk.daily_loss_limit,
            risk.max_drawdown,
            terms.bar_ms,
            broker.fixed_fee,
            bar.STYLE_CODES[terms.style],
        )
        acct = np.array(
            [state.cash, state.fees_paid, state.peak_equity, float(state.day), state.day_start_equity]
        )
        li, lf = bar.order_log(3 * k + 1)
        return cls(
            symbols,
            bar_ts,
            ohlcv,
            bar.frozen(goal),
            bar.frozen(plan),
            bar.frozen(seed),
            bar.frozen(matrix),
            bar.frozen(cfg),
            st,
            acct,
            (li, lf, np.zeros(1, np.int64)),
        )

    def run(self) -> None:
        """The kernel's steps 0-4 for this bar."""
        o = self.ohlcv
        at_open = (o["open"], o["volume"])
        args = (self.rules, self.cfg, self.st, self.acct, self.log)
        ohl = (o["open"], o["high"], o["low"])
        _settle(self.ts, self.goal, self.plan, self.seed, ohl, o["close"], at_open, *args)


@compiled()
def _settle(
    ts: int,
    goal: bar.FloatArray,
    plan: bar.FloatArray,
    seed: bar.FloatArray,
    ohl: tuple[bar.FloatArray, bar.FloatArray, bar.FloatArray],
    close: bar.FloatArray,
    at_open: bar.Bars,
    rules: bar.FloatArray,
    cfg: bar.FloatArray,
    st: bar.FloatArray,
    acct: bar.FloatArray,
    log: bar.Log,
) -> float:
    """Steps 0-4 of the per-bar semantics for one bar (row 0); returns the equity at the close."""
    if seed.shape[0] > 0:
        bar.endow(0, seed, ohl[0], rules, st, acct, log)
    bar.open_goals(0, 0, goal, plan, at_open, rules, cfg, st, acct, log)
    bar.check_exits(0, ts, ohl, plan, at_open, rules, cfg, st, acct, log)
    bar.trail_stops(0, ohl[1], st)
    equity, _ = bar.close_bar(0, ts, close, cfg, st, acct)
    return equity


class _Reading:
    """The kernel's arrays read back as records (private)."""

    def __init__(
        self,
        book: _Arrays,
        before: PortfolioState,
        pending: Mapping[str, PendingTarget],
        bar_ts: int,
        terms: FillTerms,
        run_id: str,
    ) -> None:
        self.book, self.before, self.pending, self.bar_ts = book, before, pending, bar_ts
        self.terms, self.run_id = terms, run_id
        self.orders: list[OrderRecord] = []
        self.fills: list[FillRecord] = []
        self.events: list[BrokerEvent] = []

    def outcome(self) -> BarOutcome:
        li, lf, cnt = self.book.log
        bought: dict[str, list[tuple[float, float]]] = {}
        for i in range(int(cnt[0])):
            self._order(li[i], lf[i], bought)
        state = self._state(bought)
        marks = {s: float(self.book.ohlcv["close"][0, j]) for j, s in enumerate(self.book.symbols)}
        in_force = {
            s: float(self.book.st[j, bar.DONE])
            for j, s in enumerate(self.book.symbols)
            if not math.isnan(self.book.st[j, bar.DONE])
        }
        return BarOutcome(
            state,
            tuple(self.orders),
            tuple(self.fills),
            tuple(self.events),
            marks,
            state.equity(marks),
            in_force,
        )

    def _order(
        self, ints: np.ndarray, floats: np.ndarray, bought: dict[str, list[tuple[float, float]]]
    ) -> None:
        s = self.book.symbols[int(ints[bar.L_SYMBOL])]
        side = "buy" if ints[bar.L_SIDE] > 0 else "sell"
        reason = bar.REASONS[int(ints[bar.L_REASON])]
        leg = _leg(int(ints[bar.L_REASON]))
        wanted, ref = float(floats[bar.L_WANTED]), float(floats[bar.L_REF])
        target = self.pending.get(s) if leg == TARGET_LEG else None
        decided = target.decided_ts if target is not None else None
        coid = client_order_id(self.run_id, s, self.bar_ts, leg)
        if ints[bar.L_ROOM] != bar.NO_CUT:
            risk = self.terms.risk
            asked = float(floats[bar.L_ASKED])
            detail = (
                f"buy of {wanted:.10g} {s} cut to {asked:.10g} at {ref:.10g}: the book "
                f"keeps max_gross_exposure {risk.max_gross_exposure:g} and min_cash_fraction "
                f"{risk.min_cash_fraction:g} (binding: {bar.ROOM_NAMES[int(ints[bar.L_ROOM])]})"
            )
            self.events.append(BrokerEvent(s, PORTFOLIO_ROOM, detail))
        status = int(ints[bar.L_STATUS])
        if status != FILLED:
            why = "dust" if status == DUST else "nothing fillable"
            self.orders.append(
                OrderRecord(
                    coid,
                    self.run_id,
                    s,
                    self.bar_ts,
                    side,
                    wanted,
                    ref,
                    "rejected",
                    f"{reason}: {why}",
                    leg,
                    decided,
                )
            )
            detail = f"{side} {wanted:.10g} {s} at {ref:.10g} ({reason}): {why}"
            self.events.append(BrokerEvent(s, STATUS_NAMES[status], detail))
            return
        amount, price, fee = float(floats[bar.L_FILLED]), float(floats[bar.L_PRICE]), float(floats[bar.L_FEE])
        self.orders.append(
            OrderRecord(coid, self.run_id, s, self.bar_ts, side, wanted, ref, "filled", reason, leg, decided)
        )
        self.fills.append(
            FillRecord(
                coid,
                self.run_id,
                s,
                self.bar_ts,
                side,
                amount,
                price,
                fee,
                self.terms.broker.quote_currency,
            )
        )
        if side == "buy":
            bought.setdefault(s, []).append((amount, price))  # the initial position, then the target order
        elif ints[bar.L_REASON] in (bar.STOPPED, bar.TRAILED):
            until = int(self.book.st[int(ints[bar.L_SYMBOL]), bar.COOL])
            self.events.append(BrokerEvent(s, COOLDOWN, f"stopped out at {ref:.10g}; cooldown until {until}"))

    def _state(self, bought: dict[str, list[tuple[float, float]]]) -> PortfolioState:
        st, acct = self.book.st, self.book.acct
        positions: dict[str, Position] = {}
        for j, s in enumerate(self.book.symbols):
            amount = float(st[j, bar.POS])
            if amount <= 0.0:
                continue
            old = self.before.positions.get(s)
            stop, take, trail = _none(st[j, bar.STOP]), _none(st[j, bar.TP]), _none(st[j, bar.TRAIL])
            trailing = bool(st[j, bar.TRAILING] > 0.0)
            if old is None or old.amount <= 0.0:
                target = self.pending.get(s)
                invalidation = target.invalidation if target is not None else ""
                price = _average(bought[s])
                positions[s] = Position(
                    s, amount, price, self.bar_ts, stop, take, invalidation, trail, trailing
                )
                continue
            avg = old.avg_price
            if s in bought:
                cost = sum(a * p for a, p in bought[s])
                avg = (old.amount * old.avg_price + cost) / amount
            positions[s] = Position(
                s, amount, avg, old.entry_ts, stop, take, old.invalidation, trail, trailing
            )
        cooldown = dict(self.before.cooldown_until)
        for j, s in enumerate(self.book.symbols):
            if not math.isnan(st[j, bar.COOL]):
                cooldown[s] = int(st[j, bar.COOL])
        return PortfolioState(
            cash=float(acct[bar.CASH]),
            positions=positions,
            fees_paid=float(acct[bar.FEES]),
            peak_equity=float(acct[bar.PEAK]),
            day_start_equity=float(acct[bar.DAY_START]),
            day=int(acct[bar.DAY]),
            cooldown_until=cooldown,
        )


def _leg(reason: int) -> str:
    if reason == bar.INITIAL:
        return INITIAL_LEG
    return TARGET_LEG if reason < bar.TRIGGERED else EXIT_LEG


def _average(buys: list[tuple[float, float]]) -> float:
    """The price paid per unit over a bar's buys of one symbol (the one buy's price when there is one)."""
    if len(buys) == 1:
        return buys[0][1]
    return sum(a * p for a, p in buys) / sum(a for a, _ in buys)


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
