"""`ask`: one question answered by the analytics agent, bounded, traced, read-only.

Contracts:
- `ask(question, settings, ...)` runs the ask graph (`agent.analytics.ask_graph`) once and returns an
  `AskResult`: the answer (or the bound message), how it ended, the trace of tool calls, model calls,
  tokens and seconds.
- The model: `model` if given (a `ChatModel`: tests pass a fake or point settings at the vLLM emulator);
  else the configured endpoint (`settings.llm`: base URL, key, model id, or the first id the server lists),
  or, with no base URL, the embedded llama.cpp model, started for the question and stopped after it.
- Read-only: tools get a `ToolContext` whose database refuses writes. The question writes only its own
  files, never the ledger: the trace as JSON under `<data_dir>/ask/` (`store=True`), and, with
  `session`, the conversation in LangGraph's SQLite checkpointer at `<data_dir>/ask/sessions.sqlite`
  (thread id = the session name), so a later question of the same session sees the earlier ones.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.analytics.ask_graph import AskState, Budget, build_graph
from agent.analytics.chat import ChatModel, OpenAIChat
from agent.analytics.context import ToolContext
from agent.analytics.limits import AskLimits, AskResult
from agent.config import Settings
from agent.errors import ConfigError

_SESSION = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def ask_dir(settings: Settings) -> Path:
    """Where traces and sessions are stored."""
    return Path(settings.data_dir) / "ask"


def ask(
    question: str,
    settings: Settings,
    *,
    limits: AskLimits | None = None,
    session: str | None = None,
    model: ChatModel | None = None,
    store: bool = True,
) -> AskResult:
    """Answer `question` with the analytics tools (see the module contract)."""
    if not question.strip():
        raise ConfigError("ask: the question is empty")
    if session is not None and not _SESSION.match(session):
        raise ConfigError(f"--session {session!r}: use 1-64 letters, digits, '.', '_' or '-'")
    limits = limits or AskLimits()
    ctx = ToolContext(settings)
    try:
        with _model(settings, model) as chat, _checkpointer(settings, session) as saver:
            budget = Budget(limits)
            graph = build_graph(chat, ctx, budget, saver)
            state: AskState = {
                "messages": [{"role": "user", "content": question}],
                "stop": None,
                "answer": "",
            }
            config: Any = {"recursion_limit": 2 * limits.max_tool_calls + 10}
            if session is not None:
                config["configurable"] = {"thread_id": session}
            final = graph.invoke(state, config)
            result = AskResult(
                question=question,
                answer=str(final.get("answer") or ""),
                stopped=final.get("stop") or "answered",
                steps=budget.steps,
                model_calls=budget.model_calls,
                tokens=budget.tokens,
                seconds=budget.elapsed(),
                model=chat.model,
                session=session,
            )
    finally:
        ctx.close()
    if store:
        result = _store(settings, result)
    return result


def _store(settings: Settings, result: AskResult) -> AskResult:
    folder = ask_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.json"
    stored = result.model_copy(update={"trace_path": str(path)})
    path.write_text(stored.model_dump_json(indent=2), encoding="utf-8")
    return stored


@contextmanager
def _model(settings: Settings, given: ChatModel | None) -> Iterator[ChatModel]:
    if given is not None:
        yield given
        return
    llm = settings.llm
    if llm.base_url is not None:
        yield OpenAIChat(llm, llm.base_url, llm.model or _discover(llm.base_url, settings))
        return
    from agent.llm.local_server import LocalLLMServer

    server = LocalLLMServer.from_settings(llm)
    server.start()
    try:
        yield OpenAIChat(llm, server.base_url, llm.model or _discover(server.base_url, settings))
    finally:
        server.stop()


def _discover(base_url: str, settings: Settings) -> str:
    from agent.llm.discovery import discover

    return discover(base_url, settings.llm).model


@contextmanager
def _checkpointer(settings: Settings, session: str | None) -> Iterator[Any]:
    if session is None:
        yield None
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    folder = ask_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(folder / "sessions.sqlite", check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        yield saver
    finally:
        conn.close()
