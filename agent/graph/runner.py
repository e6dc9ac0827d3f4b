"""Runs the graph one tick at a time: the single entry point the backtest, the daemon and notebooks share.

Contracts:
- `AgentRunner.tick(bar_ts)` processes the closed bar `bar_ts` for every symbol exactly once per run:
  a bar at or before the last recorded one is `already_done`; a tick interrupted mid-graph resumes from its
  checkpoint (`resumed`); a tick whose data could not be settled is `skipped` with its reason recorded.
  Once the graph ran to its end (the ledger committed), the tick's checkpoint thread is deleted
  (`agent.ledger.checkpoints.prune_tick`): checkpoints are kept only for ticks in flight.
- `AgentRunner.discard(bar_ts)` deletes the tick's checkpoint thread (a poisoned one: the next `tick` of
  that bar starts from scratch); True when there was a checkpoint (even an unreadable one) to delete.
- `open_runner(...)` builds the runtime from the ledger, so a restarted process continues the same run with
  the same book, pending orders and decision memory (bit-identical prompts after a restart).
- Only the clock (which `bar_ts` is passed) and the candle source differ between modes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.config import Settings
from agent.db.models import Decision
from agent.db.session import open_db
from agent.graph.build import build_graph
from agent.graph.checkpoint import open_checkpointer, tick_thread_id
from agent.graph.nodes import make_nodes
from agent.graph.runtime import RECENT_DECISIONS, AgentRuntime
from agent.ledger.checkpoints import prune_tick
from agent.ledger.reader import LedgerReader
from agent.ledger.writer import start_run
from agent.llm.protocol import ContextBuilder, DecisionGateway, PastDecision
from agent.llm.schema import Action
from agent.market.binance_spot import unified_market
from agent.market.exchange import MarketRules, market_rules
from agent.market.source import CandleSource
from agent.risk.breakers import CONTROLLED_KINDS
from agent.risk.models import DecisionSource
from strategies.base import Strategy

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

Status = Literal["done", "resumed", "already_done", "skipped"]


@dataclass(frozen=True)
class TickOutcome:
    """What one call to `tick` did."""

    run_id: str
    bar_ts: int
    status: Status
    reason: str | None = None
    orders: int = 0
    fills: int = 0
    equity: float | None = None


def replay_rules(settings: Settings, symbols: Sequence[str]) -> dict[str, MarketRules]:
    """Binance spot trading rules for the bundled symbols, with fee overrides from `[broker]`."""
    return {
        s: market_rules(
            unified_market(s), taker_fee=settings.broker.taker_fee, maker_fee=settings.broker.maker_fee
        )
        for s in symbols
    }


class AgentRunner:
    """The compiled graph bound to a runtime, and an optional checkpointer."""

    def __init__(self, runtime: AgentRuntime, checkpointer: Any | None = None) -> None:
        self.rt = runtime
        self.checkpointer = checkpointer
        self.graph = build_graph(make_nodes(runtime), checkpointer)

    @property
    def run_id(self) -> str:
        """The run this runner advances."""
        return self.rt.run_id

    def last_processed_bar(self) -> int | None:
        """The last bar the ledger holds for this run."""
        return self.rt.last_bar

    def discard(self, bar_ts: int) -> bool:
        """Delete the checkpoint thread of `bar_ts` (see the module contract)."""
        if self.checkpointer is None:
            return False
        config = {"configurable": {"thread_id": tick_thread_id(self.rt.run_id, bar_ts)}}
        try:
            present = next(iter(self.checkpointer.list(config, limit=1)), None) is not None
        except Exception:  # noqa: BLE001 - a checkpoint that cannot even be read is there, and poisoned
            present = True
        if present:
            self.checkpointer.delete_thread(tick_thread_id(self.rt.run_id, bar_ts))
        return present

    def tick(self, bar_ts: int) -> TickOutcome:
        """Process the closed bar `bar_ts` (see the module contract)."""
        rt = self.rt
        if rt.last_bar is not None and bar_ts <= rt.last_bar:
            return TickOutcome(rt.run_id, bar_ts, "already_done")
        config: RunnableConfig = {"configurable": {"thread_id": tick_thread_id(rt.run_id, bar_ts)}}
        status: Status = "done"
        if self.checkpointer is not None and self.graph.get_state(config).next:
            final = self.graph.invoke(None, config)
            status = "resumed"
        else:
            initial = {"run_id": rt.run_id, "bar_ts": bar_ts, "symbols": rt.symbols, "strategy": rt.strategy}
            final = self.graph.invoke(initial, config)
        prune_tick(self.checkpointer, tick_thread_id(rt.run_id, bar_ts))  # ran to its end: the ledger has it
        outcome = final.get("outcome")
        if not final.get("recorded") or outcome is None:
            reason = final.get("settle_error") or "; ".join(
                f"{s}: {why}" for s, why in final.get("skipped", {}).items()
            )
            return TickOutcome(rt.run_id, bar_ts, "skipped", reason or "not recorded")
        orders, fills = len(outcome.orders), len(outcome.fills)
        return TickOutcome(rt.run_id, bar_ts, status, None, orders, fills, outcome.equity)


def load_recent(
    factory: sessionmaker[Session], run_id: str, symbols: Sequence[str]
) -> dict[str, list[PastDecision]]:
    """The decision memory of a run as the record node built it (for bit-identical prompts on resume)."""
    out: dict[str, list[PastDecision]] = {}
    with factory() as session:
        for symbol in symbols:
            rows = session.scalars(
                select(Decision)
                .where(Decision.run_id == run_id, Decision.symbol == symbol)
                .where(Decision.source != DecisionSource.RISK.value)
                .order_by(Decision.bar_ts.desc())
                .limit(RECENT_DECISIONS)
            ).all()
            out[symbol] = [
                PastDecision(
                    int(r.bar_ts),
                    Action(r.action),
                    float(r.target_exposure or 0.0),
                    float(r.confidence or 0.0),
                    (r.rationale or "")[:200],
                )
                for r in reversed(rows)
            ]
    return out


@contextmanager
def open_runner(
    settings: Settings,
    *,
    run_id: str,
    kind: str,
    strategy: str,
    source: CandleSource,
    rules: Mapping[str, MarketRules],
    gateway: DecisionGateway | None = None,
    builder: ContextBuilder | None = None,
    budget_tokens: int | None = None,
    rule: Strategy | None = None,
    checkpoint: bool = True,
    params: dict[str, Any] | None = None,
    start_ts: int | None = None,
    end_ts: int | None = None,
    factory: sessionmaker[Session] | None = None,
) -> Iterator[AgentRunner]:
    """A runner for `run_id`, created or resumed from the ledger, with checkpoints in the same database."""
    with ExitStack() as stack:
        if factory is None:
            engine, factory = open_db(settings.db_url)
            stack.callback(engine.dispose)
        start_run(
            factory,
            run_id,
            kind=kind,
            strategy=strategy,
            symbols=settings.symbols,
            timeframe=settings.timeframe,
            params=params or {},
            config=settings.masked_dump(),
            start_ts=start_ts,
            end_ts=end_ts,
        )
        resume = LedgerReader(factory, settings).load_state(run_id)
        runtime = AgentRuntime(
            settings=settings,
            run_id=run_id,
            strategy=strategy,
            source=source,
            rules=rules,
            factory=factory,
            portfolio=resume.state,
            gateway=gateway,
            builder=builder,
            budget_tokens=budget_tokens,
            rule=rule,
            operated=kind in CONTROLLED_KINDS,
            pending=dict(resume.pending),
            last_bar=resume.bar_ts,
        )
        for symbol, decisions in load_recent(factory, run_id, settings.symbols).items():
            for d in decisions:
                runtime.remember(symbol, d)
        saver = stack.enter_context(open_checkpointer(settings.db_url)) if checkpoint else None
        yield AgentRunner(runtime, saver)
