"""How much history before its first bar a run loads: one rule for backtests, agent backtests, the daemon and
the notebook API, so the same strategy sees the same bars (and the model the same prompts) on every path.

Contracts:
- `history_bars(asks_model, warmup, requested)`: `requested` when given (`--history-bars`); else a rule
  strategy gets `HISTORY_BARS` or its own longer warm-up, and a strategy that asks the model (llm, hybrid)
  gets `LLM_HISTORY_BARS` (the prompt's weekly and daily blocks reach back that far) or its fallback rule's
  longer warm-up.
- `history_start_ms(first_bar_ms, bars, timeframe)`: the open time of the first bar loaded.
"""

from __future__ import annotations

from agent.market.candles import timeframe_ms

HISTORY_BARS = 1000
"""Bars before the first traded bar that a rule strategy's indicators are computed from."""
LLM_HISTORY_BARS = 8760
"""Bars before the first bar that an LLM prompt may draw on (a year of hourly bars)."""


def history_bars(asks_model: bool, warmup: int = 0, requested: int | None = None) -> int:
    """Bars of history before the first bar (see the module contract)."""
    if requested is not None:
        return requested
    return max(LLM_HISTORY_BARS if asks_model else HISTORY_BARS, warmup)


def history_start_ms(first_bar_ms: int, bars: int, timeframe: str) -> int:
    """Open time of the first bar a run loads."""
    return first_bar_ms - bars * timeframe_ms(timeframe)
