"""Records the backtest engine takes and returns (plain frozen dataclasses, no behaviour beyond views).

Contracts:
- `EngineConfig`: cash, fill timing, slippage and the participation cap, and the risk limits the per-bar
  semantics apply (book room at the fill, cooldown, breakers); the same numbers the paper broker reads from
  `Settings.broker` and `Settings.risk` (see `agent.backtest.market.engine_config`). The defaults are a bare
  simulation: no cooldown, no breakers, no room limit beyond cash. The conventions of published protocols
  are parameters of it (`agent.execution.conventions`): the fixed fee per fill, the initial position and
  the style of the target matrix (target exposures, or order fractions); defaults change nothing.
- `SizingRules`: how a strategy's signal becomes a target exposure, via `agent.risk.sizing`.
- `SimResult`: the equity curve, fills and round-trip trades of one simulation, as arrays (the compiled
  loop writes them); `fills_frame()` / `trades_frame()` give pandas views for reports.
- Times in the arrays are bar indices into `index`; `index` is the bars' open times (UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from agent.execution import bar
from agent.execution.conventions import FillMode as FillMode
from agent.execution.conventions import OrderStyle as OrderStyle

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


REASONS = bar.REASONS
"""Fill reasons by code: target orders (0-3), then exits triggered inside a bar (4-6)."""
TRIGGERED = bar.TRIGGERED
"""First reason code of an exit triggered inside a bar (stop-loss, take-profit, trailing stop)."""
OPEN_TRADE = "open"
"""Exit reason of a trade still open at the end of the data."""


@dataclass(frozen=True)
class EngineConfig:
    """How orders are filled."""

    initial_cash: float = 10_000.0
    fill: FillMode = "next_open"
    slippage_bps: float = 0.0
    max_participation: float = 0.0
    """Cap on one fill as a fraction of the bar's volume; 0 = no cap."""
    max_gross_exposure: float = 1.0
    """Buys are cut at the fill so that positions stay within this fraction of equity."""
    min_cash_fraction: float = 0.0
    """Buys are cut at the fill so that cash stays at least this fraction of equity."""
    cooldown_bars: int = 0
    """After a stop-out, no entry is decided for this many bars (0 = none)."""
    daily_loss_limit: float | None = None
    """No entry is decided while equity is this fraction (or more) below the day's start; None = off."""
    max_drawdown: float | None = None
    """No entry is decided while equity is this fraction (or more) below its peak; None = off."""
    fixed_fee: float = 0.0
    """Quote currency charged on every fill, on top of the proportional fee."""
    initial_position: Mapping[str, float] = field(default_factory=dict)
    """Symbol -> fraction of the initial equity held in it from the first bar's open (bought there without
    costs); the rest is cash."""
    style: OrderStyle = "target"
    """What the target matrix holds: target exposures, or order fractions (`agent.execution.conventions`)."""


@dataclass(frozen=True)
class SizingRules:
    """Signal (0..1) -> target exposure, through `agent.risk.sizing`, with caps."""

    mode: Literal["fixed", "vol_target"] = "fixed"
    fraction: float = 1.0
    """fixed: exposure = signal x fraction."""
    risk_per_trade: float = 0.02
    """vol_target: equity fraction lost if a stop `stop_atr` ATRs below entry is hit."""
    stop_atr: float = 2.0
    atr_period: int = 14
    position_cap: float = 1.0
    """Per-symbol cap on the exposure (fraction of equity)."""
    gross_cap: float = 1.0
    """Cap on the sum of exposures across symbols (spot: <= 1); rows above it are scaled down."""


@dataclass(frozen=True)
class Counters:
    """Orders that did not fill (or not fully), counted explicitly."""

    dust: int = 0
    """Orders below the minimum amount/notional after precision: skipped."""
    zero: int = 0
    """Orders with nothing to do after caps (no cash, no position, no volume)."""
    capped: int = 0
    """Orders cut by the participation cap (the rest is not retried)."""
    room: int = 0
    """Buys cut at the fill to keep `max_gross_exposure` and `min_cash_fraction`."""
    refused: int = 0
    """Target changes above the current exposure refused while a breaker or a cooldown blocked entries."""


@dataclass(frozen=True)
class SimResult:
    """Output of one simulation over aligned bars of one or many symbols."""

    index: pd.DatetimeIndex
    symbols: tuple[str, ...]
    equity: FloatArray
    cash: FloatArray
    exposure: FloatArray
    """Gross position value / equity after each bar's close."""
    fill_bar: IntArray
    fill_symbol: IntArray
    fill_side: IntArray
    fill_amount: FloatArray
    fill_price: FloatArray
    fill_fee: FloatArray
    fill_reason: IntArray
    trade_symbol: IntArray
    trade_entry_bar: IntArray
    trade_exit_bar: IntArray
    """-1 while the trade is still open at the end."""
    trade_entry_price: FloatArray
    trade_exit_price: FloatArray
    trade_amount: FloatArray
    trade_pnl: FloatArray
    """Net of fees; open trades are marked at the last close."""
    trade_fees: FloatArray
    trade_reason: IntArray
    """Code into REASONS of the closing fill; -1 for open trades."""
    counters: Counters = field(default_factory=Counters)
    initial_cash: float = 0.0

    @classmethod
    def all_cash(cls, index: pd.DatetimeIndex, initial: float) -> SimResult:
        """The result of never trading: equity stays at the initial cash."""
        flat = np.full(len(index), float(initial))
        f0, i0 = np.zeros(0), np.zeros(0, dtype=np.int64)
        return cls(
            index,
            (),
            flat,
            flat.copy(),
            np.zeros(len(index)),
            i0,
            i0,
            i0,
            f0,
            f0,
            f0,
            i0,
            i0,
            i0,
            i0,
            f0,
            f0,
            f0,
            f0,
            f0,
            i0,
            initial_cash=float(initial),
        )

    @property
    def closed(self) -> npt.NDArray[np.bool_]:
        """Mask of trades that were closed before the end."""
        return self.trade_exit_bar >= 0

    def fills_frame(self) -> pd.DataFrame:
        """One row per fill: time, symbol, side, amount, price, fee, notional, reason."""
        return pd.DataFrame(
            {
                "time": self.index[self.fill_bar],
                "symbol": [self.symbols[i] for i in self.fill_symbol],
                "side": np.where(self.fill_side > 0, "buy", "sell"),
                "amount": self.fill_amount,
                "price": self.fill_price,
                "fee": self.fill_fee,
                "notional": self.fill_amount * self.fill_price,
                "reason": [REASONS[i] for i in self.fill_reason],
            }
        )

    def trades_frame(self) -> pd.DataFrame:
        """One row per round trip (flat -> long -> flat); open trades have no exit time."""
        exit_time = pd.Series(pd.NaT, index=range(len(self.trade_exit_bar)), dtype=self.index.dtype)
        closed = self.closed
        exit_time[closed] = self.index[self.trade_exit_bar[closed]]
        return pd.DataFrame(
            {
                "symbol": [self.symbols[i] for i in self.trade_symbol],
                "entry_time": self.index[self.trade_entry_bar],
                "exit_time": exit_time.to_numpy(),
                "entry_price": self.trade_entry_price,
                "exit_price": self.trade_exit_price,
                "amount": self.trade_amount,
                "pnl": self.trade_pnl,
                "return": self.trade_pnl / (self.trade_entry_price * self.trade_amount),
                "fees": self.trade_fees,
                "exit_reason": [REASONS[i] if i >= 0 else OPEN_TRADE for i in self.trade_reason],
            }
        )
