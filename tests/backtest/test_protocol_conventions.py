"""Strategies of the new kinds through the backtest path: order-fraction strategies, strategies that decide on
a bar's open (and the guard that refuses one reading more than the open), the initial position and the fixed
fee as run settings, and the request fields of `tradegraph backtest`."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from agent.backtest.models import EngineConfig, SizingRules
from agent.backtest.plan import rule_plan
from agent.backtest.runner import run_backtest
from agent.backtest.service import BacktestRequest, prepare, simulate_prepared
from agent.config import Settings
from agent.errors import ConfigError, StrategyError
from agent.execution.conventions import FillTiming, OrderStyle
from strategies.base import FloatArray, Strategy, prices
from tests.backtest.helpers import plain_rules, random_walk

RULES = [plain_rules("X/USDT")]


class OpenUp(Strategy):
    """Decides on each bar's open: long while the open is above the previous open."""

    name = "open_up"
    fill_timing: ClassVar[FillTiming] = "same_open"

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """1.0 where open_t > open_{t-1}."""
        o = prices(candles, "open")
        out = np.zeros(len(o))
        out[1:] = o[1:] > o[:-1]
        return out


class PeeksAtClose(OpenUp):
    """Claims to decide on the open but reads the bar's close."""

    name = "peeks"

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """1.0 where close_t > open_t: unknown at open_t."""
        return np.asarray(prices(candles) > prices(candles, "open"), dtype=np.float64)


class Alternate(Strategy):
    """Order style: buy with half the cash on even bars, sell half the holdings on odd ones."""

    name = "alternate"
    style: ClassVar[OrderStyle] = "order_fraction"

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """+0.5, -0.5, +0.5, ..."""
        return np.where(np.arange(len(candles)) % 2 == 0, 0.5, -0.5)


def _frames(n: int = 60) -> dict[str, pd.DataFrame]:
    return {"X/USDT": random_walk(n, seed=4)}


def test_a_strategy_that_decides_on_the_open_fills_at_that_open() -> None:
    frames = _frames()
    result = run_backtest(
        frames, OpenUp(), timeframe="1h", rules=RULES, config=EngineConfig(1000.0, fill="same_open")
    )
    sim, opens = result.sim, frames["X/USDT"]["open"].to_numpy()
    assert len(sim.fill_bar) > 5
    assert np.array_equal(sim.fill_price, opens[sim.fill_bar])  # at the deciding bar's own open
    targets = OpenUp().exposure(frames["X/USDT"])
    first = int(np.argmax(targets > 0))
    assert sim.fill_bar[0] == first and sim.fill_side[0] == 1


def test_a_same_open_strategy_reading_the_close_is_refused() -> None:
    with pytest.raises(StrategyError, match="only the open.*'close'"):
        run_backtest(
            _frames(),
            PeeksAtClose(),
            timeframe="1h",
            rules=RULES,
            config=EngineConfig(1000.0, fill="same_open"),
        )
    # the same strategy deciding at the close (filled at the next open) reads what it likes
    run_backtest(_frames(), PeeksAtClose(), timeframe="1h", rules=RULES, config=EngineConfig(1000.0))


def test_same_open_refuses_an_exit_plan_and_atr_sizing() -> None:
    frames = _frames()
    with pytest.raises(StrategyError, match="exit plan"):
        rule_plan(frames, OpenUp(stop_atr=2.0), SizingRules(), fill="same_open")
    with pytest.raises(StrategyError, match="vol_target"):
        rule_plan(frames, OpenUp(), SizingRules(mode="vol_target"), fill="same_open")


def test_an_order_style_strategy_trades_fractions_of_cash_and_holdings() -> None:
    frames = _frames(8)
    opens = frames["X/USDT"]["open"].to_numpy()
    result = run_backtest(frames, Alternate(), timeframe="1h", rules=RULES, config=EngineConfig(1000.0))
    sim = result.sim
    assert result.config.style == "order_fraction"
    cash, held = 1000.0, 0.0
    for i, t in enumerate(range(1, 8)):  # the order of row t-1 at open_t
        price = opens[t]
        if (t - 1) % 2 == 0:
            amount = 0.5 * cash / price
            cash -= amount * price
            held += amount
        else:
            amount = 0.5 * held
            cash += amount * price
            held -= amount
        assert sim.fill_amount[i] == pytest.approx(amount, rel=1e-13)
    assert sim.cash[-1] == pytest.approx(cash, rel=1e-13)


def test_order_style_strategies_take_no_sizing_and_the_agent_runs_neither_kind_yet() -> None:
    frames = _frames()
    with pytest.raises(StrategyError, match="order fractions"):
        rule_plan(frames, Alternate(), SizingRules(fraction=0.5), fill="next_open")
    with pytest.raises(StrategyError, match="backtest"):
        rule_plan(frames, Alternate(), SizingRules())  # the agent graph's call: no fill timing given
    with pytest.raises(StrategyError, match="backtest"):
        rule_plan(frames, OpenUp(), SizingRules())


def test_an_order_strategy_returning_outside_minus_one_one_is_an_error() -> None:
    class TooBig(Alternate):
        def signal(self, candles: pd.DataFrame) -> FloatArray:
            return np.full(len(candles), -1.5)

    with pytest.raises(StrategyError, match=r"\[-1, 1\]"):
        TooBig().exposure(_frames()["X/USDT"])
    assert Alternate().exposure(_frames(4)["X/USDT"]).tolist() == [0.5, -0.5, 0.5, -0.5]


# ---- the backtest request -----------------------------------------------------------------------------


def _settings(tmp_path: object, **broker: object) -> Settings:
    return Settings(symbols=["BTC/USDT"], timeframe="1d", database_url="sqlite://", broker=broker)


def test_the_request_takes_the_strategys_fill_timing_and_the_conventions(tmp_path: object) -> None:
    spec = "tests.backtest.test_protocol_conventions:OpenUp"
    request = BacktestRequest(
        spec,
        symbols=["BTC/USDT"],
        timeframe="1d",
        start="2023-04-12",
        end="2023-06-16",
        max_position=1.0,
        initial_position={"BTC/USDT": 0.5},
        fixed_fee=2.5,
        fee=0.004,
        slippage_bps=0.0,
        exchange_rules=False,
    )
    prepared = prepare(request, _settings(tmp_path))
    assert prepared.config.fill == "same_open"
    assert (prepared.config.fixed_fee, dict(prepared.config.initial_position)) == (2.5, {"BTC/USDT": 0.5})
    assert [(r.amount_step, r.min_notional, r.taker_fee) for r in prepared.rules] == [(0.0, 0.0, 0.004)]
    result, hold, _ = simulate_prepared(prepared)
    first_open = prepared.window.frames["BTC/USDT"].loc[pd.Timestamp("2023-04-12", tz="UTC"), "open"]
    fills = result.sim.fills_frame()
    assert fills["reason"].iloc[0] == "initial" and fills["price"].iloc[0] == first_open
    assert (fills["fee"].iloc[1:] >= 2.5).all()
    # buy & hold starts from the same book, pays the same fees
    hold_fills = hold.sim.fills_frame()
    assert hold_fills["reason"].tolist() == ["initial", "increase"]
    assert hold_fills["fee"].iloc[1] == pytest.approx(hold_fills["notional"].iloc[1] * 0.004 + 2.5, rel=1e-12)


def test_the_configured_broker_conventions_are_the_defaults(tmp_path: object) -> None:
    settings = _settings(tmp_path, fixed_fee=1.0, initial_position={"BTC/USDT": 0.25})
    request = BacktestRequest("sma_cross", symbols=["BTC/USDT"], timeframe="1d", start="2024-01-01")
    prepared = prepare(request, settings)
    assert prepared.config.fill == "next_open"
    assert (prepared.config.fixed_fee, dict(prepared.config.initial_position)) == (1.0, {"BTC/USDT": 0.25})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"fill": "same_day"}, "--fill"),
        ({"initial_position": {"ETH/USDT": 0.5}}, "ETH/USDT"),
        ({"initial_position": {"BTC/USDT": 1.5}}, "initial position"),
        ({"fixed_fee": -1.0}, "fixed fee"),
        (
            {"strategy": "tests.backtest.test_protocol_conventions:Alternate", "sizing": "vol_target"},
            "sizing",
        ),
    ],
)
def test_bad_convention_fields_are_one_line_errors(
    tmp_path: object, fields: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {"strategy": "sma_cross", "symbols": ["BTC/USDT"], "timeframe": "1d"}
    with pytest.raises((ConfigError, StrategyError), match=message):
        prepare(BacktestRequest(**(base | fields)), _settings(tmp_path))  # type: ignore[arg-type]
