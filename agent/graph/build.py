"""Wiring of the agent graph: nodes, edges and routers — nothing else.

    observe → settle → screen ─┬─► analyse ─► decide → risk ─┬─► execute → record
                               └──────────────►┘             └──────────────►┘

- `screen` routes to `analyse` only when the strategy consults the LLM and at least one symbol has an
  action other than HOLD available (no call when HOLD is the only option).
- `risk` routes to `execute` only when some symbol's target changes; rejections and holds skip execution.
- Nodes come from `agent.graph.nodes.make_nodes(runtime)`; the checkpointer from `agent.graph.checkpoint`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agent.graph import names
from agent.graph.mode import StrategyMode
from agent.graph.state import Node, TickState

NODES = (
    names.OBSERVE,
    names.SETTLE,
    names.SCREEN,
    names.ANALYSE,
    names.DECIDE,
    names.RISK,
    names.EXECUTE,
    names.RECORD,
)
"""Every node, in the order data flows through them."""


def route_after_screen(state: TickState) -> names.AfterScreen:
    """Ask the model only if it has something to decide."""
    uses_llm = StrategyMode.of(state.get("strategy", "")).asks_model
    open_choice = any(a.llm_needed for a in state.get("allowances", {}).values())
    return names.ANALYSE if uses_llm and open_choice else names.DECIDE


def route_after_risk(state: TickState) -> names.AfterRisk:
    """Execute only when at least one symbol's target changes."""
    changes = any(r.changes for r in state.get("final", {}).values())
    return names.EXECUTE if changes else names.RECORD


def build_graph(
    nodes: Mapping[str, Node], checkpointer: BaseCheckpointSaver[Any] | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the tick graph from its node functions."""
    graph: StateGraph[Any, Any, Any, Any] = StateGraph(TickState)
    for name in NODES:
        graph.add_node(name, nodes[name])
    graph.add_edge(START, names.OBSERVE)
    graph.add_edge(names.OBSERVE, names.SETTLE)
    graph.add_edge(names.SETTLE, names.SCREEN)
    graph.add_conditional_edges(names.SCREEN, route_after_screen, [names.ANALYSE, names.DECIDE])
    graph.add_edge(names.ANALYSE, names.DECIDE)
    graph.add_edge(names.DECIDE, names.RISK)
    graph.add_conditional_edges(names.RISK, route_after_risk, [names.EXECUTE, names.RECORD])
    graph.add_edge(names.EXECUTE, names.RECORD)
    graph.add_edge(names.RECORD, END)
    return graph.compile(checkpointer=checkpointer)


def mermaid() -> str:
    """The graph as a Mermaid diagram (`tradegraph graph`)."""
    all_nodes = dict.fromkeys(NODES, _noop)
    return str(build_graph(all_nodes).get_graph().draw_mermaid())


def _noop(state: TickState) -> TickState:
    return {}
