"""A run's strategy mode: the configured strategy name (`llm`, `hybrid` or a rule strategy's name) as a
typed record.

Contracts:
- `StrategyMode.of(name)` never fails: `llm` and `hybrid` are the model's modes, any other name is a rule
  strategy (whether it exists is checked where it is loaded, `agent.graph.factory.rule_strategy`).
- `asks_model` is True exactly for `llm` and `hybrid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StrategyKind(StrEnum):
    """Who proposes a run's targets."""

    LLM = "llm"
    HYBRID = "hybrid"
    """The rule proposes, the model confirms or vetoes."""
    RULE = "rule"


@dataclass(frozen=True)
class StrategyMode:
    """A run's strategy: its kind and the configured name (the rule strategy's name for `RULE`)."""

    kind: StrategyKind
    name: str

    @classmethod
    def of(cls, name: str) -> StrategyMode:
        """The mode of the configured strategy `name`."""
        kind = StrategyKind(name) if name in (StrategyKind.LLM, StrategyKind.HYBRID) else StrategyKind.RULE
        return cls(kind, name)

    @property
    def asks_model(self) -> bool:
        """True for the modes that ask the model (`llm`, `hybrid`)."""
        return self.kind is not StrategyKind.RULE
