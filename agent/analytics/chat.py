"""The model seam of the `ask` agent: one chat-completion turn with tools, over the openai client.

Contracts:
- `ChatModel.turn(messages, tools, max_tokens, timeout_s)` sends one chat-completion request (tools with
  `tool_choice="auto"`, vLLM's and OpenAI's format) and returns a `ChatTurn`: the text, the tool calls
  (id, function name, raw JSON arguments), the tokens the server reported, the finish reason. Transport
  and HTTP errors raise `LLMUnavailable` with one line.
- `OpenAIChat` uses the configured endpoint (`settings.llm`: base URL, key, model, sampling, timeout) and
  its profile row (`agent.llm.profiles`): the token-limit key (`max_tokens`, or `max_completion_tokens` for
  `openai`), and `chat_template_kwargs.enable_thinking` only on profiles with thinking switches (vLLM),
  and reads reasoning from `reasoning` or `reasoning_content` (vLLM's old and new field).
- Tests give a fake or the vLLM emulator; no network in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai
from openai.types.chat import ChatCompletion

from agent.config import LLMSettings
from agent.errors import LLMUnavailable


@dataclass(frozen=True)
class ToolCallRequest:
    """One tool call the model asked for."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatTurn:
    """What one model call returned."""

    content: str
    tool_calls: tuple[ToolCallRequest, ...] = ()
    tokens: int = 0
    finish_reason: str | None = None
    reasoning: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ChatModel(Protocol):
    """One chat turn with tools."""

    model: str

    def turn(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        max_tokens: int,
        timeout_s: float,
    ) -> ChatTurn: ...


class OpenAIChat:
    """`ChatModel` over the openai client and the configured endpoint."""

    def __init__(self, llm: LLMSettings, base_url: str, model: str) -> None:
        """A client for `base_url` serving `model`."""
        from agent.llm.profiles import profile_of

        self.llm = llm
        self.model = model
        profile = profile_of(llm.profile)
        self._thinking = profile.thinking_kwargs
        self._limit_key = profile.token_limit_key
        self._client = openai.OpenAI(
            api_key=llm.api_key.get_secret_value() or "EMPTY", base_url=base_url, max_retries=llm.max_retries
        )

    def turn(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        max_tokens: int,
        timeout_s: float,
    ) -> ChatTurn:
        """One request (see the module contract)."""
        extra: dict[str, Any] = {}
        if self._thinking:
            extra["chat_template_kwargs"] = {"enable_thinking": self.llm.thinking != "off"}
        try:
            completions: Any = self._client.chat.completions  # messages and tools are wire dicts
            resp: ChatCompletion = completions.create(
                model=self.model,
                messages=list(messages),
                tools=list(tools),
                tool_choice="auto",
                **{self._limit_key: max_tokens},
                temperature=self.llm.temperature,
                top_p=self.llm.top_p,
                seed=self.llm.seed,
                timeout=timeout_s,
                extra_body=extra or None,
            )
        except openai.APIError as e:
            raise LLMUnavailable(f"model call failed: {' '.join(str(e).split())[:300]}") from None
        choice = resp.choices[0]
        msg = choice.message
        calls = tuple(
            ToolCallRequest(c.id, c.function.name, c.function.arguments or "{}")
            for c in (msg.tool_calls or [])
            if c.type == "function"
        )
        reasoning = getattr(msg, "reasoning", None) or getattr(msg, "reasoning_content", None)
        tokens = resp.usage.total_tokens if resp.usage else 0
        return ChatTurn(msg.content or "", calls, tokens, choice.finish_reason, reasoning)
