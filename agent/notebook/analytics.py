"""The analytics agent and its tools in notebooks: `tg.ask(...)`, and every tool as a plain call.

Contracts:
- `ask` is `tradegraph ask` (`agent.analytics.ask.ask`): the configured endpoint (or `model`, any
  `agent.analytics.chat.ChatModel`), the same tools and bounds, the trace stored under `<data_dir>/ask/`;
  it returns the `AskResult` (answer, how it ended, trace) instead of printing.
- Read-only like the command: the ledger is never written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.notebook.common import SettingsLike, resolve_settings

if TYPE_CHECKING:
    from agent.analytics.chat import ChatModel
    from agent.analytics.limits import AskResult


def ask(
    question: str,
    *,
    session: str | None = None,
    max_tool_calls: int = 12,
    max_tokens: int = 60_000,
    max_seconds: float = 300.0,
    model: ChatModel | None = None,
    settings: SettingsLike = None,
) -> AskResult:
    """Ask the analytics agent a question; the answer cites the tool calls behind its figures.

    Example:
        >>> r = tg.ask("What was BTC/USDT's annualised volatility in 2025-Q1?")  # doctest: +SKIP
        >>> print(r.answer); r.steps[0].tool  # doctest: +SKIP
    """
    from agent.analytics.ask import ask as run_ask
    from agent.analytics.limits import AskLimits

    limits = AskLimits(max_tool_calls=max_tool_calls, max_tokens=max_tokens, max_seconds=max_seconds)
    return run_ask(question, resolve_settings(settings), limits=limits, session=session, model=model)
