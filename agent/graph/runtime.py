"""What the graph's nodes need besides the state: dependencies and the run's in-memory book.

Contracts:
- `AgentRuntime` is built once per run (backtest, daemon lifetime, notebook session) by `agent.graph.runner`.
- Its book (`portfolio`, `pending`, `recent`, `last_bar`) always equals what the ledger holds after the last
  recorded tick: the record node updates it only after the ledger write committed, and a restarted process
  rebuilds it from the ledger (`agent.ledger.reader`).
- Nodes never change the runtime except through `commit_tick`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from agent.broker.models import PendingTarget
from agent.config import Settings
from agent.graph.stream import DecisionStream
from agent.llm.protocol import ContextBuilder, DecisionGateway, PastDecision
from agent.market.exchange import MarketRules
from agent.market.source import CandleSource
from agent.portfolio import PortfolioState
from strategies.base import Strategy

RECENT_DECISIONS = 8
"""How many past decisions per symbol the prompt may show."""


@dataclass
class AgentRuntime:
    """Dependencies of the nodes, and the run's book between ticks."""

    settings: Settings
    run_id: str
    strategy: str
    """llm | hybrid | a rule strategy's name."""
    source: CandleSource
    rules: Mapping[str, MarketRules]
    factory: sessionmaker[Session]
    portfolio: PortfolioState
    gateway: DecisionGateway | None = None
    builder: ContextBuilder | None = None
    budget_tokens: int | None = None
    rule: Strategy | None = None
    """The rule strategy (rule runs, hybrid runs, and the `fallback = "rule"` path)."""
    operated: bool = True
    """Whether the operator's controls in the database (kill switch, pause) apply to this run: live runs
    (`agent.risk.breakers.CONTROLLED_KINDS`). A run they cannot stop does not read them at every tick."""
    pending: dict[str, PendingTarget] = field(default_factory=dict)
    recent: dict[str, deque[PastDecision]] = field(default_factory=dict)
    last_bar: int | None = None
    next_bar: Callable[[int], int | None] | None = None
    """The bar after t when the run knows its bars ahead (an agent backtest in the stateful prompt mode, whose
    analyse node prepares that bar's market part while bar t's answers are on their way); None live."""
    stream: DecisionStream | None = None
    """Stateless decisions requested ahead (agent backtests in the stateless prompt mode); None: per tick."""
    llm_calls: int = 0
    cache_hits: int = 0
    tokens: int = 0
    abstentions: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    """Prompt tokens the server reported as served from its prefix cache."""
    unused_calls: int = 0
    """Answers requested ahead that no settled bar used (`DecisionStream`, stateless prompt mode)."""
    latencies_ms: list[float] = field(default_factory=list)
    """Latency of every answer the endpoint gave this run (cache hits excluded)."""
    elapsed_s: float = 0.0
    """Wall time spent driving bars (agent backtests)."""

    @property
    def symbols(self) -> list[str]:
        """Symbols this run trades."""
        return list(self.settings.symbols)

    def recent_for(self, symbol: str) -> tuple[PastDecision, ...]:
        """The symbol's latest decisions, oldest first."""
        return tuple(self.recent.get(symbol, ()))

    def remember(self, symbol: str, decision: PastDecision) -> None:
        """Append a decision to the symbol's short memory (point in time: only what happened by now)."""
        self.recent.setdefault(symbol, deque(maxlen=RECENT_DECISIONS)).append(decision)

    def commit_tick(self, bar_ts: int, portfolio: PortfolioState, pending: dict[str, PendingTarget]) -> None:
        """Adopt the state the ledger now holds for `bar_ts`."""
        self.portfolio = portfolio
        self.pending = pending
        self.last_bar = bar_ts
