"""The conventions of published protocols, as parameters of the one per-bar semantics: an initial position, a
fixed fee per fill, order-fraction orders and fills at the deciding bar's open. Each is checked against
hand-worked numbers, in the backtest engine and in the paper broker alike (the broker is driven bar by bar
with the engine's inputs and must give the same fills, cash and equity, bit for bit)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.backtest.engine import simulate
from agent.backtest.market import rules_matrix
from agent.backtest.models import REASONS, EngineConfig, SimResult
from agent.broker import Bar, BarOutcome, FillTerms, PendingTarget, initial_state, process_bar
from agent.config import BrokerSettings, RiskSettings
from agent.execution.costs import FILLED, ZERO, execute_order
from agent.market.exchange import MarketRules

SYMBOL = "X/USDT"
HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
NO_BREAKERS = RiskSettings(cooldown_bars=0, daily_loss_limit=1.0, max_drawdown=1.0)


@dataclass
class Both:
    """The engine's simulation and the broker's bar outcomes of the same inputs."""

    sim: SimResult
    outcomes: list[BarOutcome]

    @property
    def fills(self) -> list[tuple[int, str, float, float, float, str]]:
        """(bar, side, amount, price, fee, reason) of every fill, checked equal in both."""
        engine = [
            (int(b), "buy" if side > 0 else "sell", a, p, f, REASONS[int(r)])
            for b, side, a, p, f, r in zip(
                self.sim.fill_bar,
                self.sim.fill_side,
                self.sim.fill_amount,
                self.sim.fill_price,
                self.sim.fill_fee,
                self.sim.fill_reason,
                strict=True,
            )
        ]
        broker = []
        for t, out in enumerate(self.outcomes):
            reasons = {o.client_order_id: o.reason for o in out.orders}
            broker += [(t, f.side, f.amount, f.price, f.fee, reasons[f.client_order_id]) for f in out.fills]
        assert broker == engine
        return engine


def run_both(
    opens: list[float],
    goals: list[float],
    *,
    closes: list[float] | None = None,
    fee: float = 0.0,
    cash: float = 1000.0,
    fill: str = "next_open",
    style: str = "target",
    fixed_fee: float = 0.0,
    initial: float = 0.0,
    risk: RiskSettings = NO_BREAKERS,
    broker_too: bool = True,
) -> Both:
    """One symbol over hand-written bars (high = low = open unless the close is outside), through the
    engine and through the broker (a goal of row t is pending for bar t+1, or for bar t with same_open)."""
    n = len(opens)
    close = closes or opens
    high = [max(o, c) for o, c in zip(opens, close, strict=True)]
    low = [min(o, c) for o, c in zip(opens, close, strict=True)]
    cols = {"open": opens, "high": high, "low": low, "close": close, "volume": [1e12] * n}
    ohlcv = {k: np.asarray(v, dtype=np.float64).reshape(n, 1) for k, v in cols.items()}
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    rules = MarketRules(SYMBOL, 0.0, 0.0, 0.0, fee, fee)
    seed = {SYMBOL: initial} if initial else {}
    config = EngineConfig(
        cash,
        fill=fill,  # type: ignore[arg-type]
        max_gross_exposure=risk.max_gross_exposure,
        min_cash_fraction=risk.min_cash_fraction,
        cooldown_bars=risk.cooldown_bars,
        daily_loss_limit=risk.daily_loss_limit,
        max_drawdown=risk.max_drawdown,
        fixed_fee=fixed_fee,
        initial_position=seed,
        style=style,  # type: ignore[arg-type]
    )
    target = np.asarray(goals, dtype=np.float64).reshape(n, 1)
    sim = simulate(index, [SYMBOL], ohlcv, target, rules_matrix([rules]), config, None, "1h")
    if not broker_too:
        return Both(sim, [])
    broker = BrokerSettings(initial_cash=cash, slippage_bps=0.0, fixed_fee=fixed_fee, initial_position=seed)
    terms = FillTerms(risk, broker, HOUR, timing=fill, style=style)  # type: ignore[arg-type]
    state = initial_state(cash)
    in_force: dict[str, float] = {}
    outcomes = []
    for t in range(n):
        ts = T0 + t * HOUR
        bars = {SYMBOL: Bar(opens[t], high[t], low[t], close[t], 1e12)}
        pending = {}
        row = t if fill == "same_open" else t - 1
        if row >= 0 and (style == "target" or goals[row] != 0.0):
            decided = ts if fill == "same_open" else ts - HOUR
            pending[SYMBOL] = PendingTarget(SYMBOL, goals[row], decided)
        out = process_bar(state, bars, pending, ts, {SYMBOL: rules}, terms, "conv", in_force)
        outcomes.append(out)
        state, in_force = out.state, dict(out.in_force)
    both = Both(sim, outcomes)
    assert [o.equity for o in outcomes] == sim.equity.tolist()
    assert [o.state.cash for o in outcomes] == sim.cash.tolist()
    return both


# ---- a fixed fee per fill -----------------------------------------------------------------------------


def test_execute_order_adds_the_fixed_fee_and_keeps_it_affordable() -> None:
    amount, price, fee, status = execute_order(
        1, 100.0, 10.0, 1000.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.0, 1e9, 0.0, 5.0
    )
    assert status == FILLED
    assert amount == pytest.approx((1000.0 - 5.0) / (10.0 * 1.01), rel=1e-15)  # capped: fees included
    assert fee == pytest.approx(amount * price * 0.01 + 5.0, rel=1e-15)
    assert amount * price + fee == pytest.approx(1000.0, rel=1e-14)
    sold = execute_order(-1, 3.0, 10.0, 0.0, 3.0, 0.01, 0.0, 0.0, 0.0, 0.0, 1e9, 0.0, 5.0)
    assert sold == (3.0, 10.0, pytest.approx(30.0 * 0.01 + 5.0, rel=1e-15), FILLED)
    assert execute_order(1, 1.0, 10.0, 5.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.0, 1e9, 0.0, 5.0)[3] == ZERO


def test_the_fixed_fee_is_charged_on_every_fill_in_the_engine_and_the_broker() -> None:
    both = run_both([100.0, 110.0, 120.0, 120.0], [1.0, 1.0, 0.0, 0.0], fee=0.001, fixed_fee=5.0)
    fills = both.fills
    bought = (1000.0 - 5.0) / (110.0 * 1.001)
    assert [f[:2] for f in fills] == [(1, "buy"), (3, "sell")]
    assert fills[0][2] == pytest.approx(bought, rel=1e-14)
    assert fills[0][4] == pytest.approx(bought * 110.0 * 0.001 + 5.0, rel=1e-14)
    assert fills[1][4] == pytest.approx(bought * 120.0 * 0.001 + 5.0, rel=1e-14)
    final = bought * 120.0 * 0.999 - 5.0
    assert both.sim.equity[-1] == pytest.approx(final, rel=1e-12)
    assert both.outcomes[-1].state.fees_paid == pytest.approx(fills[0][4] + fills[1][4], rel=1e-14)


# ---- an initial position ------------------------------------------------------------------------------


def test_an_initial_position_is_bought_at_the_first_open_without_costs() -> None:
    both = run_both(
        [100.0, 110.0, 90.0],
        [0.5, 0.5, 0.5],
        closes=[105.0, 100.0, 95.0],
        fee=0.01,
        fixed_fee=3.0,
        initial=0.5,
    )
    assert both.fills == [(0, "buy", 5.0, 100.0, 0.0, "initial")]
    assert both.sim.cash.tolist() == [500.0, 500.0, 500.0]
    assert both.sim.equity.tolist() == [500.0 + 5 * 105.0, 500.0 + 5 * 100.0, 500.0 + 5 * 95.0]
    position = both.outcomes[-1].state.positions[SYMBOL]
    assert (position.amount, position.avg_price, position.entry_ts) == (5.0, 100.0, T0)
    assert both.outcomes[0].orders[0].leg == "initial"


def test_the_initial_position_is_the_target_in_force_until_the_target_changes() -> None:
    both = run_both([100.0, 110.0, 120.0], [0.0, 0.0, 0.0], initial=0.5)
    assert [f[:2] + f[5:] for f in both.fills] == [(0, "buy", "initial"), (1, "sell", "exit")]
    assert both.sim.equity[-1] == pytest.approx(500.0 + 5 * 110.0)


def test_the_initial_position_is_part_of_the_first_bars_book_for_a_same_open_order() -> None:
    both = run_both(
        [100.0, 200.0], [1.0, 0.0], fill="same_open", style="order_fraction", fee=0.0, initial=0.5
    )
    assert [f[:3] for f in both.fills] == [(0, "buy", 5.0), (0, "buy", 5.0)]
    assert both.sim.cash[0] == 0.0
    position = both.outcomes[0].state.positions[SYMBOL]
    assert position.amount == 10.0 and position.avg_price == 100.0


def test_a_symbol_with_an_initial_position_needs_a_price_at_the_first_bar() -> None:
    ohlcv = {c: np.array([[math.nan], [100.0]]) for c in ("open", "high", "low", "close", "volume")}
    index = pd.date_range("2024-01-01", periods=2, freq="h", tz="UTC")
    config = EngineConfig(1000.0, initial_position={"Y/USDT": 0.5})
    with pytest.raises(ValueError, match="Y/USDT"):
        simulate(
            index,
            ["Y/USDT"],
            ohlcv,
            np.zeros((2, 1)),
            rules_matrix([MarketRules("Y/USDT", 0, 0, 0, 0, 0)]),
            config,
        )


# ---- order-fraction orders ----------------------------------------------------------------------------


def test_order_fractions_buy_with_a_fraction_of_cash_and_sell_a_fraction_of_holdings() -> None:
    both = run_both(
        [100.0, 200.0, 400.0, 100.0, 100.0],
        [0.5, 0.5, -0.5, -1.0, 0.0],
        fill="same_open",
        style="order_fraction",
    )
    assert [f[:4] + f[5:] for f in both.fills] == [
        (0, "buy", 5.0, 100.0, "entry"),  # 0.5 x 1000 cash at 100
        (1, "buy", 1.25, 200.0, "increase"),  # 0.5 x 500 at 200
        (2, "sell", 3.125, 400.0, "decrease"),  # 0.5 x 6.25 held
        (3, "sell", 3.125, 100.0, "exit"),  # all that is left
    ]
    assert both.sim.cash.tolist() == [500.0, 250.0, 1500.0, 1812.5, 1812.5]
    assert both.outcomes[-1].state.positions == {}


def test_repeated_order_fractions_trade_every_bar_with_fees_on_top() -> None:
    both = run_both([100.0] * 4, [0.5, 0.5, 0.5, 0.0], style="order_fraction", fee=0.004, fixed_fee=2.0)
    fills = both.fills
    assert [f[0] for f in fills] == [1, 2, 3]
    cash = 1000.0
    for f in fills:
        assert f[2] * f[3] == pytest.approx(0.5 * cash, rel=1e-14)  # the notional is f x cash; fees on top
        assert f[4] == pytest.approx(0.5 * cash * 0.004 + 2.0, rel=1e-14)
        cash -= 0.5 * cash * 1.004 + 2.0
    assert both.sim.cash[-1] == pytest.approx(cash, rel=1e-13)


def test_a_buy_of_all_cash_is_capped_so_that_the_fees_are_paid() -> None:
    both = run_both(
        [100.0, 100.0], [1.0, 0.0], fill="same_open", style="order_fraction", fee=0.01, fixed_fee=1.0
    )
    assert both.fills[0][2] == pytest.approx(999.0 / 101.0, rel=1e-14)
    assert abs(both.sim.cash[0]) < 1e-9  # all of it, up to float residue (as without a fixed fee)


def test_a_sell_with_nothing_held_places_no_order() -> None:
    both = run_both([100.0, 100.0, 100.0], [-1.0, -0.5, 0.0], fill="same_open", style="order_fraction")
    assert both.fills == []
    assert all(out.orders == () for out in both.outcomes)


def test_a_breaker_refuses_an_order_buy_but_not_a_sell() -> None:
    risk = RiskSettings(cooldown_bars=0, daily_loss_limit=1.0, max_drawdown=0.2)
    opens = [100.0, 100.0, 40.0, 40.0, 40.0]
    # the broker has no breakers (the risk layer refuses before it): the engine alone
    both = run_both(opens, [0.5, 0.0, 0.5, -0.5, 0.0], style="order_fraction", risk=risk, broker_too=False)
    # half the cash bought at bar 1; at bar 2's close equity is 30% below its peak: the buy decided there
    # is refused, the sell decided at bar 3 fills at bar 4
    sim = both.sim
    assert [(int(b), int(s)) for b, s in zip(sim.fill_bar, sim.fill_side, strict=True)] == [(1, 1), (4, -1)]
    assert sim.counters.refused == 1


# ---- fills at the deciding bar's open -----------------------------------------------------------------


def test_same_open_fills_the_target_decided_on_a_bar_at_that_bars_open() -> None:
    both = run_both([100.0, 110.0, 120.0, 130.0], [1.0, 1.0, 0.0, 0.0], fill="same_open")
    assert [f[:2] + (f[3],) for f in both.fills] == [(0, "buy", 100.0), (2, "sell", 120.0)]
    assert both.sim.equity[-1] == pytest.approx(1200.0)


def test_the_broker_accepts_a_target_decided_at_the_bar_only_when_it_fills_at_that_open() -> None:
    bars = {SYMBOL: Bar(100.0, 100.0, 100.0, 100.0, 1e9)}
    rules = {SYMBOL: MarketRules(SYMBOL, 0.0, 0.0, 0.0, 0.0, 0.0)}
    pending = {SYMBOL: PendingTarget(SYMBOL, 1.0, T0)}
    broker = BrokerSettings(slippage_bps=0.0)
    with pytest.raises(ValueError, match="invalid pending target"):
        process_bar(
            initial_state(1000.0), bars, pending, T0, rules, FillTerms(NO_BREAKERS, broker, HOUR), "r"
        )
    terms = FillTerms(NO_BREAKERS, broker, HOUR, timing="same_open")
    out = process_bar(initial_state(1000.0), bars, pending, T0, rules, terms, "r")
    assert out.fills[0].amount == 10.0
    later = {SYMBOL: PendingTarget(SYMBOL, 1.0, T0 + HOUR)}
    with pytest.raises(ValueError, match="invalid pending target"):
        process_bar(initial_state(1000.0), bars, later, T0, rules, terms, "r")


def test_the_broker_takes_order_fractions_only_in_the_order_style() -> None:
    bars = {SYMBOL: Bar(100.0, 100.0, 100.0, 100.0, 1e9)}
    rules = {SYMBOL: MarketRules(SYMBOL, 0.0, 0.0, 0.0, 0.0, 0.0)}
    pending = {SYMBOL: PendingTarget(SYMBOL, -0.5, T0 - HOUR)}
    broker = BrokerSettings(slippage_bps=0.0)
    with pytest.raises(ValueError, match="invalid pending target"):
        process_bar(
            initial_state(1000.0), bars, pending, T0, rules, FillTerms(NO_BREAKERS, broker, HOUR), "r"
        )
    terms = FillTerms(NO_BREAKERS, broker, HOUR, style="order_fraction")
    assert process_bar(initial_state(1000.0), bars, pending, T0, rules, terms, "r").orders == ()


# ---- the conventions together, and the defaults untouched ---------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    moves=st.lists(st.floats(-0.2, 0.2), min_size=3, max_size=25),
    orders=st.lists(st.sampled_from([-1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0]), min_size=25, max_size=25),
    fill=st.sampled_from(["next_open", "same_open"]),
    style=st.sampled_from(["target", "order_fraction"]),
    fixed_fee=st.sampled_from([0.0, 0.5, 7.0]),
    initial=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_engine_and_broker_agree_bit_for_bit_on_any_series(
    moves: list[float], orders: list[float], fill: str, style: str, fixed_fee: float, initial: float
) -> None:
    opens = list(100.0 * np.exp(np.cumsum(moves)))
    closes = [o * 1.01 for o in opens]
    goals = orders[: len(opens)] if style == "order_fraction" else [abs(g) for g in orders[: len(opens)]]
    both = run_both(
        opens,
        goals,
        closes=closes,
        fee=0.004,
        fill=fill,
        style=style,
        fixed_fee=fixed_fee,
        initial=initial,
    )
    both.fills  # noqa: B018 - the property compares the two
    assert min(both.sim.cash) >= -1e-9


def test_the_default_conventions_are_the_plain_engine() -> None:
    plain = EngineConfig(1000.0)
    assert (plain.fixed_fee, dict(plain.initial_position), plain.style) == (0.0, {}, "target")
    settings_ = BrokerSettings()
    assert (settings_.fixed_fee, settings_.initial_position) == (0.0, {})
    terms = FillTerms(NO_BREAKERS, settings_, HOUR)
    assert (terms.timing, terms.style) == ("next_open", "target")


@pytest.mark.parametrize(
    ("position", "message"),
    [
        ({"BTC/USDT": math.nan}, "finite"),
        ({"BTC/USDT": math.inf}, "finite"),
        ({"BTC/USDT": 1.5}, r"\[0, 1\]"),
        ({"BTC/USDT": 0.6, "ETH/USDT": 0.6}, "more than 1"),
        ({"BTCUSDT": 0.5}, "BASE/QUOTE"),
    ],
)
def test_a_bad_initial_position_is_refused(position: dict[str, float], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        BrokerSettings(initial_position=position)


def test_the_broker_conventions_load_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.config import Settings

    monkeypatch.setenv("TRADEGRAPH_BROKER__INITIAL_POSITION", '{"BTC/USDT": 0.5}')
    monkeypatch.setenv("TRADEGRAPH_BROKER__FIXED_FEE", "2.5")
    broker = Settings().broker
    assert (broker.initial_position, broker.fixed_fee) == ({"BTC/USDT": 0.5}, 2.5)


def test_the_broker_needs_a_bar_for_an_initial_position_at_its_first_bar() -> None:
    from agent.errors import DataError

    broker = BrokerSettings(slippage_bps=0.0, initial_position={"Y/USDT": 0.5})
    bars = {SYMBOL: Bar(100.0, 100.0, 100.0, 100.0, 1e9)}
    rules = {SYMBOL: MarketRules(SYMBOL, 0.0, 0.0, 0.0, 0.0, 0.0)}
    with pytest.raises(DataError, match="Y/USDT"):
        process_bar(initial_state(1000.0), bars, {}, T0, rules, FillTerms(NO_BREAKERS, broker, HOUR), "r")
    later = initial_state(1000.0).with_changes(day=int(T0 // 86_400_000))  # after the first close: nothing
    out = process_bar(later, bars, {}, T0, rules, FillTerms(NO_BREAKERS, broker, HOUR), "r")
    assert out.fills == ()
