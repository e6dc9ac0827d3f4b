"""A scripted tool-calling model for the vLLM emulator: plays the part of Nemotron in demos and tests of
`tradegraph ask` when no real endpoint is configured.

Usage::

    plans = [Plan("volatility", (ToolCall("statistics", {"symbol": "ETH/USDT"}),),
                  lambda r: f"ETH volatility {r[1]['volatility']:.1%} [#1]")]
    with VLLMEmulator() as emu:
        emu.set_responder(analyst(plans))
        tg.ask("ETH volatility?", settings={"llm": {"profile": "vllm", "base_url": emu.base_url}})

Contracts:
- For each request, the question is the last user message; the first `Plan` whose `keyword` it contains
  (case-insensitive) is followed. With no tool result since that question, the model answers the plan's
  tool calls (vLLM's `tool_calls` format); once results are there, it answers `plan.answer(results)`, the
  results parsed from the tool messages (`#n name: {json}`) by call number. A question no plan matches is
  answered with a sentence saying so. Every figure in an answer therefore comes from a tool result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.testing.vllm_emulator import Reply, Responder, ToolCall

Results = Mapping[int, Mapping[str, Any]]


@dataclass(frozen=True)
class Plan:
    """The tool calls a question gets, and how the answer is written from their results."""

    keyword: str
    calls: tuple[ToolCall, ...]
    answer: Callable[[Results], str]


def tool_results(messages: Sequence[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """The tool results after the last user message, by call number."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    out: dict[int, dict[str, Any]] = {}
    for m in messages[last_user + 1 :]:
        if m.get("role") == "tool":
            head, _, payload = str(m.get("content")).partition(": ")
            out[int(head.split()[0].lstrip("#"))] = json.loads(payload)
    return out


def analyst(plans: Sequence[Plan]) -> Responder:
    """An emulator responder following `plans` (see the module contract)."""

    def respond(body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        question = next((str(m["content"]) for m in reversed(messages) if m.get("role") == "user"), "")
        plan = next((p for p in plans if p.keyword.lower() in question.lower()), None)
        if plan is None:
            return Reply(content="I have no tool plan for that question.")
        results = tool_results(messages)
        return Reply(content=plan.answer(results)) if results else Reply(tool_calls=plan.calls)

    return respond
