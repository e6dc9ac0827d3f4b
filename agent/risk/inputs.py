"""Inputs of the risk stages: what `allowance` and `apply_limits` read about one symbol's market and about a
proposal, as typed records built by the caller (the graph, a test, a notebook).

Contracts:
- Immutable; the risk functions never read the whole `Settings`: they get these records, the `risk` section
  (`agent.config.RiskSettings`) and, where a decision's symbol is checked, the configured symbols.
- `Market.price` is the symbol's mark at the close of bar t (the same number as `marks[symbol]` in the book
  the caller values); `costs` is what the fills pay (`TradeCosts.of_market(rules, settings.broker)`, the
  fee and slippage the broker charges).
- `Proposal.source` is a `models.DecisionSource` (a stored value such as "rule" is accepted and converted);
  only `DecisionSource.RULE` changes how limits apply (`limits.rule_limits`).
- `Proposal.alias` and `price_scale` describe the prompt under leakage control (real price = prompt
  price × scale); `trailing_stop` is a rule's trailing distance (source "rule" only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.risk.models import DecisionSource

if TYPE_CHECKING:
    from agent.llm.schema import TradeDecision
    from agent.market.exchange import MarketRules
    from agent.risk.book import TradeCosts


@dataclass(frozen=True)
class Market:
    """One symbol's market at the close of bar `bar_ts`, as the risk layer reads it."""

    symbol: str
    bar_ts: int
    price: float
    """The close of bar t: the mark the decision is made at."""
    atr: float
    """The symbol's ATR at bar t (NaN while warming up)."""
    rules: MarketRules
    costs: TradeCosts


@dataclass(frozen=True)
class Proposal:
    """A decision to check, with what the risk layer must know about where it came from."""

    decision: TradeDecision
    source: DecisionSource = DecisionSource.LLM
    alias: str | None = None
    """The symbol's name in the prompt under leakage control (the decision may name it instead)."""
    price_scale: float = 1.0
    """Real price = prompt price × `price_scale` (leakage control; 1 otherwise)."""
    trailing_stop: float | None = None
    """A rule's trailing-stop distance for its entry (source "rule")."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", DecisionSource(self.source))  # a stored value is accepted too
