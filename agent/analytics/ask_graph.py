"""The `ask` agent as a LangGraph `StateGraph`: a model node and a tools node in a loop, bounded.

    START → model ─┬─(tool calls)→ tools ─┬─→ model
                   └─(answer, stop)→ END  └─(stop)→ END

Contracts:
- State holds the conversation (`messages`, OpenAI wire dicts, appended by a reducer, so a checkpointer
  keeps a session's history) and, per question, `stop` and `answer`. The system prompt is not stored:
  the model node puts it first in every request.
- Per-question bookkeeping (tool calls used, tokens, the clock, the trace) lives in a `Budget` the nodes
  close over; nodes are factory-built plain functions returning partial updates; routers are typed as
  `Literal` node names.
- Bounds (`AskLimits`): before each model call, time and tokens; before each tool call, the tool-call count
  and time. A bound hit sets `stop` and `answer` to `bound_message`; tool calls left unrun get a tool
  message saying so, so the stored conversation stays well formed for the next question of a session.
- Tools run through `agent.analytics.tools.call` (validated; errors go back to the model as results).
"""

from __future__ import annotations

import json
import math
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agent.analytics import tools
from agent.analytics.chat import ChatModel, ChatTurn
from agent.analytics.context import ToolContext
from agent.analytics.limits import AskLimits, Stop, TraceStep, bound_message
from agent.analytics.models import ToolError
from agent.errors import LLMUnavailable

MODEL: Literal["model"] = "model"
TOOLS: Literal["tools"] = "tools"
RESULT_CAP = 12_000
"""Characters of one tool result the model reads (longer results are cut, saying so)."""

SYSTEM_PROMPT = """You are tradegraph's analytics assistant. You answer questions about crypto markets, \
backtests, recorded runs and the trading agent's decisions using ONLY the tools given; never use numbers \
from memory. You are read-only: you cannot place orders, record runs or change settings.
Rules:
- Call list_market_data first if you do not know which symbols, timeframes and dates are stored.
- Dates are UTC (YYYY-MM-DD); windows are [start, end).
- Every tool result starts with its call number, e.g. "#3 statistics: {...}". In your answer, state each \
figure with the call that produced it, e.g. "volatility 54.1% [#3]".
- If a tool returns {"error": ...}, read the message, fix the arguments and call again.
- Keep the answer short: the figures asked for, with their definitions when a tool states them."""


class AskState(TypedDict):
    """The conversation and the current question's outcome."""

    messages: Annotated[list[dict[str, Any]], operator.add]
    stop: Stop | None
    answer: str


@dataclass
class Budget:
    """One question's use of its bounds, and its trace."""

    limits: AskLimits
    clock: Callable[[], float] = time.monotonic
    """Seconds, monotonic (tests pass a fake clock)."""
    started: float = math.nan
    tool_calls: int = 0
    tokens: int = 0
    model_calls: int = 0
    steps: list[TraceStep] = field(default_factory=list)

    def __post_init__(self) -> None:
        """The question starts now."""
        if math.isnan(self.started):
            self.started = self.clock()

    def elapsed(self) -> float:
        """Seconds since the question started."""
        return self.clock() - self.started

    def model_bound(self) -> Stop | None:
        """The bound that forbids another model call, if any."""
        if self.elapsed() >= self.limits.max_seconds:
            return "time"
        if self.tokens >= self.limits.max_tokens:
            return "tokens"
        return None

    def tool_bound(self) -> Stop | None:
        """The bound that forbids another tool call, if any."""
        if self.tool_calls >= self.limits.max_tool_calls:
            return "tool_calls"
        if self.elapsed() >= self.limits.max_seconds:
            return "time"
        return None


def make_nodes(model: ChatModel, ctx: ToolContext, budget: Budget) -> tuple[Any, Any]:
    """The model node and the tools node, closed over the model, the tool context and the budget."""
    schemas = tools.openai_tools()

    def model_node(state: AskState) -> dict[str, Any]:
        stop = budget.model_bound()
        if stop is not None:
            return {"stop": stop, "answer": bound_message(stop, budget.limits, _last_text(state))}
        remaining = budget.limits.max_seconds - budget.elapsed()
        max_tokens = min(budget.limits.answer_tokens, budget.limits.max_tokens - budget.tokens)
        try:
            turn = model.turn(
                [{"role": "system", "content": SYSTEM_PROMPT}, *state["messages"]],
                schemas,
                max_tokens,
                remaining,
            )
        except LLMUnavailable as e:
            return {"stop": "model_error", "answer": f"The model could not be reached: {e}"}
        budget.model_calls += 1
        budget.tokens += turn.tokens
        update: dict[str, Any] = {"messages": [assistant_message(turn)]}
        if not turn.tool_calls:
            update |= {"stop": "answered", "answer": turn.content}
        return update

    def tools_node(state: AskState) -> dict[str, Any]:
        calls = state["messages"][-1].get("tool_calls") or []
        out: list[dict[str, Any]] = []
        stop: Stop | None = None
        for c in calls:
            stop = stop or budget.tool_bound()
            if stop is not None:
                out.append(_tool_message(c["id"], f"not run: the question hit its bound ({stop})"))
                continue
            out.append(_run(ctx, budget, c["id"], c["function"]["name"], c["function"]["arguments"]))
        update: dict[str, Any] = {"messages": out}
        if stop is not None:
            update |= {"stop": stop, "answer": bound_message(stop, budget.limits, _last_text(state))}
        return update

    return model_node, tools_node


def _run(ctx: ToolContext, budget: Budget, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    budget.tool_calls += 1
    n = budget.tool_calls
    t0 = budget.clock()
    result = tools.call(ctx, name, arguments)
    text = tools.result_text(result)
    if len(text) > RESULT_CAP:
        text = text[:RESULT_CAP] + f" [... cut: {len(text) - RESULT_CAP} more characters; narrow the call]"
    try:
        args = json.loads(arguments or "{}")
    except ValueError:
        args = {"_raw": arguments}
    budget.steps.append(
        TraceStep(
            n=n,
            tool=name,
            arguments=args if isinstance(args, dict) else {"_raw": arguments},
            ok=not isinstance(result, ToolError),
            summary=result.error if isinstance(result, ToolError) else _summary(text),
            ms=(budget.clock() - t0) * 1000,
        )
    )
    return _tool_message(call_id, f"#{n} {name}: {text}")


def _summary(text: str, width: int = 160) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _tool_message(call_id: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def assistant_message(turn: ChatTurn) -> dict[str, Any]:
    """The model's turn as an OpenAI assistant message (with its tool calls)."""
    msg: dict[str, Any] = {"role": "assistant", "content": turn.content}
    if turn.tool_calls:
        msg["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in turn.tool_calls
        ]
    return msg


def _last_text(state: AskState) -> str:
    for m in reversed(state["messages"]):
        if m.get("role") == "assistant" and m.get("content"):
            return str(m["content"])
    return ""


def after_model(state: AskState) -> Literal["tools", "__end__"]:
    """Run the tools the model asked for, unless the question ended."""
    return "__end__" if state.get("stop") else "tools"


def after_tools(state: AskState) -> Literal["model", "__end__"]:
    """Back to the model, unless a bound ended the question."""
    return "__end__" if state.get("stop") else "model"


def build_graph(
    model: ChatModel, ctx: ToolContext, budget: Budget, checkpointer: BaseCheckpointSaver[Any] | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The compiled ask graph."""
    model_node, tools_node = make_nodes(model, ctx, budget)
    graph: StateGraph[Any, Any, Any, Any] = StateGraph(AskState)
    graph.add_node(MODEL, model_node)
    graph.add_node(TOOLS, tools_node)
    graph.add_edge(START, MODEL)
    graph.add_conditional_edges(MODEL, after_model)
    graph.add_conditional_edges(TOOLS, after_tools)
    return graph.compile(checkpointer=checkpointer)
