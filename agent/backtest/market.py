"""Trading rules and fill settings for a backtest, from the configuration (offline, like the paper broker).

Contracts:
- Rules are `agent.market.exchange.MarketRules` (amount step, minimum amount, minimum notional, fees), the
  record the paper broker uses. For the bundled symbols they come from Binance's published spot rules
  (`agent.market.binance_spot`), read through `agent.market.exchange.market_rules`; `broker.taker_fee` /
  `broker.maker_fee` (or an explicit `fee`) override the market's fees, as in the paper broker.
- A symbol with no known rules gets no precision and no minimums only when a fee is configured; otherwise
  `DataError` (never a silent default fee). Such symbols are listed by `unknown_rules` for a warning.
- Market orders pay the taker fee; the engine takes rules as a (k, 4) array: taker fee, amount step,
  minimum amount, minimum notional.
- `engine_config(settings, ...)` takes cash, slippage, the participation cap, the fixed fee and the initial
  position from `Settings.broker`, and the limits the per-bar semantics applies (book room at the fill,
  cooldown, daily loss limit, drawdown breaker) from `Settings.risk`, as the paper broker and the risk layer
  do; keyword arguments that are not None override them.
- `plain_rules(symbol, fee)`: a market with the fee only (no amount step, no minimums), for protocols that
  apply none (`exchange_rules = false` in a campaign preset).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from agent.backtest.models import EngineConfig, FillMode, FloatArray, SizingRules
from agent.config import Settings
from agent.errors import ConfigError, DataError
from agent.market.binance_spot import SPOT_SYMBOLS, unified_market
from agent.market.exchange import MarketRules, market_rules


def rules_for(symbol: str, settings: Settings, fee: float | None = None) -> MarketRules:
    """The trading rules a backtest applies to `symbol`."""
    taker = fee if fee is not None else settings.broker.taker_fee
    maker = fee if fee is not None else settings.broker.maker_fee
    if symbol in SPOT_SYMBOLS:
        return market_rules(unified_market(symbol), taker_fee=taker, maker_fee=maker)
    if taker is None:
        raise DataError(
            f"no trading rules known offline for {symbol}; "
            "set broker.taker_fee in tradegraph.toml or pass --fee"
        )
    return MarketRules(symbol, 0.0, 0.0, 0.0, float(taker), float(maker if maker is not None else taker))


def plain_rules(symbol: str, settings: Settings, fee: float | None = None) -> MarketRules:
    """`symbol` with no amount step and no minimums: only the fee of `rules_for` applies."""
    market = rules_for(symbol, settings, fee)
    return MarketRules(symbol, 0.0, 0.0, 0.0, market.taker_fee, market.maker_fee)


def unknown_rules(symbols: Sequence[str]) -> list[str]:
    """Symbols for which no amount step or minimums are known (only the fee applies)."""
    return [s for s in symbols if s not in SPOT_SYMBOLS]


def rules_matrix(rules: Sequence[MarketRules]) -> FloatArray:
    """The (k, 4) array the engine reads: taker fee, amount step, minimum amount, minimum notional."""
    return np.array(
        [[r.taker_fee, r.amount_step, r.min_amount, r.min_notional] for r in rules], dtype=np.float64
    ).reshape(len(rules), 4)


def engine_config(
    settings: Settings,
    *,
    initial_cash: float | None = None,
    fill: FillMode = "next_open",
    slippage_bps: float | None = None,
    max_participation: float | None = None,
    fixed_fee: float | None = None,
    initial_position: Mapping[str, float] | None = None,
) -> EngineConfig:
    """Fill settings from `Settings.broker`, with optional overrides."""
    broker, risk = settings.broker, settings.risk
    return EngineConfig(
        initial_cash=float(initial_cash if initial_cash is not None else broker.initial_cash),
        fill=fill,
        slippage_bps=float(slippage_bps if slippage_bps is not None else broker.slippage_bps),
        max_participation=float(
            max_participation if max_participation is not None else (broker.max_participation or 0.0)
        ),
        max_gross_exposure=float(risk.max_gross_exposure),
        min_cash_fraction=float(risk.min_cash_fraction),
        cooldown_bars=int(risk.cooldown_bars),
        daily_loss_limit=float(risk.daily_loss_limit),
        max_drawdown=float(risk.max_drawdown),
        fixed_fee=float(fixed_fee if fixed_fee is not None else broker.fixed_fee),
        initial_position=dict(initial_position if initial_position is not None else broker.initial_position),
    )


def sizing_rules(
    settings: Settings,
    *,
    mode: str = "fixed",
    fraction: float = 1.0,
    position_cap: float | None = None,
) -> SizingRules:
    """Sizing from `Settings.risk`: per-symbol and gross caps, risk per trade and stop distance in ATRs."""
    if mode not in ("fixed", "vol_target"):
        raise ConfigError(f"sizing {mode!r}: use fixed or vol_target")
    risk = settings.risk
    return SizingRules(
        mode="vol_target" if mode == "vol_target" else "fixed",
        fraction=fraction,
        risk_per_trade=risk.risk_per_trade,
        stop_atr=risk.default_stop_atr,
        atr_period=risk.atr_period,
        position_cap=float(position_cap if position_cap is not None else risk.max_position_exposure),
        gross_cap=float(risk.max_gross_exposure),
    )
