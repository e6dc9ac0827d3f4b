"""The closed sets that name a run's trading conventions, shared by strategies, the backtest engine and the
paper broker (plain names here; the per-bar kernel reads them as the integer codes of `agent.execution.bar`).

Contracts:
- `OrderStyle`: what a strategy's (or the agent's) number for a bar means.
  `target`: the exposure (fraction of equity, 0..1) wanted after the bar; an order is placed only when it
  changes. `order_fraction`: an order per bar, -1..1: +f buys with f of the cash, -f sells f of the
  position, 0 does nothing (orders are placed every bar they are given, also when repeated).
- `FillTiming`: when a strategy decides. `next_open`: at bar t's close, filled at bar t+1's open.
  `same_open`: at bar t's open, filled at that open; such a strategy sees the `open` column only.
- `FillMode`: the engine's fill timing, the strategies' two plus `same_close` (optimistic: filled at the
  close the decision was computed on).
- `SIGNAL_BOUNDS[style]`: the closed interval a strategy's output must lie in.
"""

from __future__ import annotations

from typing import Literal

OrderStyle = Literal["target", "order_fraction"]
FillTiming = Literal["next_open", "same_open"]
FillMode = Literal["next_open", "same_open", "same_close"]

ORDER_STYLES: tuple[OrderStyle, ...] = ("target", "order_fraction")
FILL_MODES: tuple[FillMode, ...] = ("next_open", "same_open", "same_close")

SIGNAL_BOUNDS: dict[OrderStyle, tuple[float, float]] = {"target": (0.0, 1.0), "order_fraction": (-1.0, 1.0)}
"""The values a strategy of each style may return for a bar."""
