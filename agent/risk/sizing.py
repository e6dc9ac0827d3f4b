"""Position sizing rules, pure and vectorised (scalars or numpy arrays in, same shape out).

Contracts:
- Exposures are fractions of equity for a spot long position, always clipped to [0, cap].
- `vol_target_exposure`: the exposure at which a stop `stop_atr × ATR` below the entry loses
  `risk_per_trade` of equity: risk_per_trade / (stop_atr × ATR / close). A NaN or non-positive ATR (warm-up)
  gives 0, never an unbounded size.
- `stop_risk_exposure`: the exposure at which a position bought at `price` and sold at `stop` loses
  `risk_per_trade` of equity, costs included: risk_per_trade / (buy_cost − stop / price × sell_keep), where
  `buy_cost` = (1 + slippage)(1 + fee) and `sell_keep` = (1 − slippage)(1 − fee) (1 and 1: no costs). A
  stop that loses nothing gives `cap`; a NaN stop or price gives 0.
- `fixed_fraction_exposure`: a signal in [0, 1] scaled by a fixed fraction.
- ATR values come from `agent.market.indicators.atr` (computed by the caller).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def fixed_fraction_exposure(signal: FloatArray | float, fraction: float, cap: float = 1.0) -> FloatArray:
    """`signal × fraction`, clipped to [0, cap]."""
    return np.clip(np.asarray(signal, dtype=np.float64) * fraction, 0.0, cap)


def vol_target_exposure(
    close: FloatArray | float,
    atr_value: FloatArray | float,
    risk_per_trade: float,
    stop_atr: float,
    cap: float = 1.0,
) -> FloatArray:
    """Exposure that risks `risk_per_trade` of equity with a stop `stop_atr` ATRs away; 0 in warm-up."""
    close_a = np.asarray(close, dtype=np.float64)
    atr_a = np.asarray(atr_value, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        stop_fraction = stop_atr * atr_a / close_a
        raw = np.where(np.isfinite(stop_fraction) & (stop_fraction > 0), risk_per_trade / stop_fraction, 0.0)
    return np.clip(raw, 0.0, cap)


def stop_risk_exposure(
    price: FloatArray | float,
    stop: FloatArray | float,
    risk_per_trade: float,
    buy_cost: float = 1.0,
    sell_keep: float = 1.0,
    cap: float = 1.0,
) -> FloatArray:
    """Exposure that loses `risk_per_trade` of equity when bought at `price` and stopped out at `stop`."""
    price_a = np.asarray(price, dtype=np.float64)
    stop_a = np.asarray(stop, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = buy_cost - stop_a / price_a * sell_keep
        raw = np.where(loss > 0, risk_per_trade / loss, cap)
    return np.where(np.isfinite(loss), np.clip(raw, 0.0, cap), 0.0)
