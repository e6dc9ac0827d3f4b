"""Portfolio state shared by the context builder, the risk layer and the paper broker (pure data).

Contracts:
- Spot only: `amount >= 0` for every position; cash in the quote currency.
- `equity(marks)` = cash + Σ amount × mark; a symbol with a position must have a mark.
- Immutable: the broker returns a new `PortfolioState` after each fill.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Position:
    """An open spot position and its exit plan."""

    symbol: str
    amount: float
    avg_price: float
    entry_ts: int
    stop_loss: float | None = None
    take_profit: float | None = None
    invalidation: str = ""
    trailing_stop: float | None = None
    """Trailing distance (price units): the stop follows the highest price since the entry this far below."""
    trailing: bool = False
    """The stop-loss is the trailing level (a stop-out there is a trailing stop)."""

    def value(self, mark: float) -> float:
        """Market value at `mark`."""
        return self.amount * mark


@dataclass(frozen=True)
class PortfolioState:
    """Cash and open positions at one moment."""

    cash: float
    positions: dict[str, Position] = field(default_factory=dict)
    fees_paid: float = 0.0
    peak_equity: float = 0.0
    day_start_equity: float = 0.0
    day: int = -1
    cooldown_until: dict[str, int] = field(default_factory=dict)

    def equity(self, marks: dict[str, float]) -> float:
        """Cash plus every position marked at `marks`."""
        return self.cash + sum(p.value(marks[s]) for s, p in self.positions.items())

    def exposure(self, symbol: str, marks: dict[str, float]) -> float:
        """Fraction of equity held in `symbol` (0 when flat)."""
        pos = self.positions.get(symbol)
        if pos is None:
            return 0.0
        eq = self.equity(marks)
        return pos.value(marks[symbol]) / eq if eq > 0 else 0.0

    def with_changes(self, **changes: object) -> PortfolioState:
        """A copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]
