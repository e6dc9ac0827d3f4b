"""The paper broker and the backtest engine fill identically: same targets and exit plans in, the same
fills (bar, side, amount, price, fee, reason) and the same equity at every bar out, bit for bit, on real data.

The broker is fed the raw target matrix every bar, as the engine reads it; the decision-time breakers (the
engine's `refuse_blocked`, the risk layer in the agent) are off here: they are covered end to end by
`tests/test_equivalence.py`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent.backtest.engine import simulate
from agent.backtest.market import engine_config, rules_for, rules_matrix
from agent.backtest.models import REASONS, SimResult
from agent.backtest.plan import exit_plan
from agent.broker import Bar, BarOutcome, FillTerms, PendingTarget, initial_state, process_bar
from agent.config import Settings
from strategies.registry import build_strategy
from tests.broker.sim import bar_times, load_frames

NO_BREAKERS = {"cooldown_bars": 0, "daily_loss_limit": 1.0, "max_drawdown": 1.0}


def _engine(
    frames: dict[str, pd.DataFrame], targets: np.ndarray, dists: np.ndarray | None, settings: Settings
) -> SimResult:
    symbols = list(frames)
    index = frames[symbols[0]].index
    ohlcv = {
        c: np.column_stack([frames[s][c].to_numpy() for s in symbols])
        for c in ("open", "high", "low", "close", "volume")
    }
    rules = rules_matrix([rules_for(s, settings) for s in symbols])
    return simulate(index, symbols, ohlcv, targets, rules, engine_config(settings), dists, settings.timeframe)


def _broker(
    frames: dict[str, pd.DataFrame], targets: np.ndarray, dists: np.ndarray | None, settings: Settings
) -> list[BarOutcome]:
    """The raw target matrix fed to the broker every bar, as the engine reads it (in_force passed back)."""
    symbols = list(frames)
    rules = {s: rules_for(s, settings) for s in symbols}
    arrays = {s: frames[s][["open", "high", "low", "close", "volume"]].to_numpy() for s in symbols}
    state, in_force, pending = initial_state(settings.broker.initial_cash), {}, {}
    outcomes = []
    for t, ts in enumerate(bar_times(frames[symbols[0]])):
        bars = {s: Bar(*map(float, arrays[s][t])) for s in symbols}
        outcome = process_bar(state, bars, pending, ts, rules, FillTerms.of(settings), "eq", in_force)
        outcomes.append(outcome)
        state, in_force = outcome.state, outcome.in_force
        pending = {}
        for j, s in enumerate(symbols):
            stop = take = trail = None
            if dists is not None:
                stop, take, trail = (float(dists[i, t, j]) for i in range(3))
            target = float(targets[t, j])
            pending[s] = PendingTarget(s, target, ts, stop_loss=stop, take_profit=take, trailing_stop=trail)
    return outcomes


def _compare(frames: dict[str, pd.DataFrame], sim: SimResult, outcomes: list[BarOutcome]) -> list[str]:
    symbols = list(frames)
    engine_fills = [
        (int(b), symbols[int(s)], "buy" if side > 0 else "sell", a, p, f, REASONS[int(r)])
        for b, s, side, a, p, f, r in zip(
            sim.fill_bar,
            sim.fill_symbol,
            sim.fill_side,
            sim.fill_amount,
            sim.fill_price,
            sim.fill_fee,
            sim.fill_reason,
            strict=True,
        )
    ]
    broker_fills = []
    for t, out in enumerate(outcomes):
        reasons = {o.client_order_id: o.reason for o in out.orders}
        broker_fills += [
            (t, f.symbol, f.side, f.amount, f.price, f.fee, reasons[f.client_order_id]) for f in out.fills
        ]
    assert broker_fills == engine_fills
    assert [o.equity for o in outcomes] == sim.equity.tolist()
    assert [o.state.cash for o in outcomes] == sim.cash.tolist()
    return [f[-1] for f in broker_fills]


@pytest.mark.parametrize("exits", [None, {"stop_atr": 2.0, "take_profit_atr": 4.0, "trailing_atr": 3.0}])
def test_sma_cross_on_btc_fills_identically(exits: dict[str, float] | None) -> None:
    frames = load_frames(["BTC/USDT"])
    settings = Settings(symbols=["BTC/USDT"], broker={"slippage_bps": 5.0}, risk=NO_BREAKERS)
    strategy = build_strategy("sma_cross", {"fast": 20, "slow": 50, **(exits or {})})
    candles = frames["BTC/USDT"]
    targets = strategy.exposure(candles).reshape(-1, 1)
    plan = exit_plan(candles, strategy.params)
    dists = None if plan is None else plan.reshape(3, -1, 1)
    sim = _engine(frames, targets, dists, settings)
    reasons = _compare(frames, sim, _broker(frames, targets, dists, settings))
    assert len(reasons) > 100
    if exits:
        assert {"stop_loss", "take_profit", "trailing_stop"} <= set(reasons)


def test_three_symbols_sharing_cash_fill_identically() -> None:
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    frames = load_frames(symbols, bars=3000)
    # A participation cap small enough to cut most fills: partial entries and exits must match too.
    settings = Settings(
        symbols=symbols, broker={"slippage_bps": 10.0, "max_participation": 2e-5}, risk=NO_BREAKERS
    )
    strategy = build_strategy("ema_cross", {"stop_atr": 1.5, "take_profit_atr": 3.0})
    targets = np.column_stack([strategy.exposure(frames[s]) * 0.4 for s in symbols])
    dists = np.stack([exit_plan(frames[s], strategy.params) for s in symbols], axis=-1)
    sim = _engine(frames, targets, dists, settings)
    reasons = _compare(frames, sim, _broker(frames, targets, dists, settings))
    assert {"entry", "increase", "exit", "stop_loss", "take_profit"} <= set(reasons)
    assert sim.counters.capped > 100


def test_rotation_with_sells_and_buys_in_the_same_bar_fills_identically() -> None:
    """All equity rotates between symbols every 24 bars: cash binds, so sells must come before buys."""
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    frames = load_frames(symbols, bars=1500)
    settings = Settings(symbols=symbols, broker={"slippage_bps": 5.0}, risk=NO_BREAKERS)
    turn = (np.arange(1500) // 24) % 3
    targets = np.column_stack([np.where(turn == j, 0.97, 0.0) for j in range(3)])
    sim = _engine(frames, targets, None, settings)
    outcomes = _broker(frames, targets, None, settings)
    _compare(frames, sim, outcomes)
    same_bar = [o for o in outcomes if {f.side for f in o.fills} == {"buy", "sell"}]
    assert len(same_bar) > 50
