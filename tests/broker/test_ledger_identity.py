"""The paper broker's books balance at every bar on real data: equity, cash, fees and positions all follow
from the fills."""

from __future__ import annotations

import numpy as np

from agent.config import Settings
from tests.broker.sim import atr_of, check_identities, drive, load_frames, rules_for, sma_targets


def test_sma_cross_on_btc_balances_at_every_bar() -> None:
    frames = load_frames(["BTC/USDT"], bars=4000)
    settings = Settings(symbols=["BTC/USDT"])
    run = drive(frames, {"BTC/USDT": sma_targets(frames["BTC/USDT"])}, settings, rules_for(["BTC/USDT"]))
    n_fills = check_identities(run, frames)
    assert n_fills > 50
    assert run.outcomes[-1].state.fees_paid > 0


def test_three_symbols_with_stops_and_take_profits_balance_at_every_bar() -> None:
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    frames = load_frames(symbols, bars=3000)
    settings = Settings(symbols=symbols, broker={"slippage_bps": 10.0, "max_participation": 0.001})
    targets, stops, takes = {}, {}, {}
    for s, frame in frames.items():
        close, atr = frame["close"].to_numpy(), atr_of(frame)
        targets[s] = sma_targets(frame, 10, 30) * 0.33
        stops[s], takes[s] = close - 1.5 * atr, close + 3.0 * atr
    run = drive(frames, targets, settings, rules_for(symbols), stops=stops, take_profits=takes)
    check_identities(run, frames)
    reasons = {o.reason for out in run.outcomes for o in out.orders if o.status == "filled"}
    assert {"entry", "exit", "stop_loss", "take_profit"} <= reasons
    # Several symbols at 0.33 each never need more cash than there is: no position ever goes negative.
    assert all(p.amount > 0 for out in run.outcomes for p in out.state.positions.values())
    assert all(out.state.cash > -1e-9 for out in run.outcomes)


def test_drift_is_not_rebalanced_and_unchanged_targets_place_no_order() -> None:
    frames = load_frames(["ETH/USDT"], bars=300)
    settings = Settings(symbols=["ETH/USDT"])
    targets = np.full(300, 0.5)
    run = drive(frames, {"ETH/USDT": targets}, settings, rules_for(["ETH/USDT"]))
    orders = [o for out in run.outcomes for o in out.orders]
    assert len(orders) == 1 and orders[0].reason == "entry"
    assert run.outcomes[1].in_force == {"ETH/USDT": 0.5}
