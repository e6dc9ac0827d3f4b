"""Read what the endpoint answered: the HTTP outcome of a call, then the answer as a `TradeDecision`.

Contracts:
- `read_completion` takes the chat-completion JSON (not the SDK's objects: it has no typed field for the
  reasoning, and building them costs more CPU than the rest of a call) and returns an `Outcome` with the
  content, the reasoning (vLLM's `reasoning`, or `reasoning_content` from older servers), finish reason and
  usage (incl. `prompt_tokens_details.cached_tokens` when the server reports it).
- `classify_transport` names a failure with no HTTP answer: a deadline is "timeout" (not retried), a failed
  or dropped connection "connection error: ..." (retried); judged by the root cause, because the SDK's
  aiohttp transport reports a refused connection as a connect *timeout*.
- `classify_status` names an HTTP error: a 400 mentioning the context length is "context too long" (match
  on status + substrings, as message texts vary between versions); 429 and 5xx are retryable endpoint faults;
  401/403/404 are endpoint faults; any other status is neither.
- `parse_answer` never raises. It returns a `Parsed` with either a decision or a failure reason, whose
  prefix names the kind: "reasoning only, no content", "cut off by max_tokens", "empty answer",
  "invalid json: ...", "schema: ...".
- Tolerance is deliberately small: surrounding whitespace and one markdown code fence are stripped
  (unconstrained endpoints add them); nothing is guessed or defaulted. A wrong symbol or a disallowed action
  is not a parse failure: the risk layer rejects and records those.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import openai
from pydantic import ValidationError

from agent.llm.faults import LLMFault
from agent.llm.schema import TradeDecision

CONTEXT_MARKERS = ("context length", "maximum context length", "maximum input length", "max_model_len")
"""Substrings of a 400 that mean "prompt too long" across vLLM versions and llama.cpp."""
try:
    from aiohttp import ClientConnectionError as _AIOHTTP_CONNECTION_ERRORS
except ImportError:  # pragma: no cover - aiohttp comes with ccxt
    _AIOHTTP_CONNECTION_ERRORS = OSError  # type: ignore[misc, assignment]

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```$", re.DOTALL)
_DETAIL_MAX = 200


@dataclass(frozen=True)
class Parsed:
    """Outcome of parsing one answer: `decision` on success, else `error`."""

    decision: TradeDecision | None
    error: str | None


def parse_answer(content: str | None, finish_reason: str | None, reasoning: str | None = None) -> Parsed:
    """Parse and validate one answer.

    Args:
        content: `message.content` as returned (may be None).
        finish_reason: The choice's finish reason ("stop", "length", ...).
        reasoning: The reasoning trace, if any (only used to name the failure).

    Returns:
        A `Parsed` with the decision, or the reason it was refused.
    """
    text = (content or "").strip()
    if not text:
        if finish_reason == "length":
            return Parsed(None, "cut off by max_tokens")
        if reasoning:
            return Parsed(None, "reasoning only, no content")
        return Parsed(None, "empty answer")
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:  # fast path: pydantic parses and validates in one pass (cache hits and good answers)
        return Parsed(TradeDecision.model_validate_json(text), None)
    except ValidationError:
        pass  # below, name the failure precisely
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if finish_reason == "length":
            return Parsed(None, "cut off by max_tokens")
        return Parsed(None, f"invalid json: {e.msg} at char {e.pos}")
    if not isinstance(data, dict):
        return Parsed(None, f"schema: expected a JSON object, got {type(data).__name__}")
    try:
        return Parsed(TradeDecision.model_validate(data), None)
    except ValidationError as e:
        return Parsed(None, f"schema: {describe_validation(e)}")


def describe_validation(e: ValidationError) -> str:
    """A short one-line summary of a pydantic validation error (first errors, field paths)."""
    parts = []
    for err in e.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = len(e.errors()) - 3
    text = "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return text[:_DETAIL_MAX]


@dataclass
class Outcome:
    """What one HTTP attempt produced: an answer, or an error with how to react to it."""

    error: str | None = None
    content: str | None = None
    reasoning: str | None = None
    finish_reason: str | None = None
    model: str | None = None
    usage: tuple[int | None, int | None, int | None] = (None, None, None)
    """(prompt_tokens, completion_tokens, cached_tokens)."""
    latency_ms: float | None = None
    retryable: bool = False
    endpoint_fault: bool = False
    """Counts towards the circuit breaker."""
    fault: LLMFault | None = None
    """The kind of failure when `error` is set."""


def read_completion(data: Any, latency_ms: float) -> Outcome:
    """The `Outcome` of a chat-completion response body."""
    try:
        choice = data["choices"][0]
        msg = choice["message"]
    except (KeyError, IndexError, TypeError):
        return Outcome(error="bad response: no choices", latency_ms=latency_ms, fault=LLMFault.ENVELOPE)
    reasoning = msg.get("reasoning") or msg.get("reasoning_content")
    usage = data.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    content = msg.get("content")
    return Outcome(
        content=content if isinstance(content, str) else None,
        reasoning=reasoning if isinstance(reasoning, str) else None,
        finish_reason=choice.get("finish_reason"),
        model=data.get("model"),
        usage=(usage.get("prompt_tokens"), usage.get("completion_tokens"), details.get("cached_tokens")),
        latency_ms=latency_ms,
    )


def classify_status(status: int, message: str, latency_ms: float | None = None) -> Outcome:
    """The `Outcome` of an HTTP error status with its message."""
    if status == 400 and any(m in message for m in CONTEXT_MARKERS):
        return Outcome(error="context too long", latency_ms=latency_ms, fault=LLMFault.OVERSIZE)
    if status == 429 or status >= 500:
        return Outcome(
            error=f"http {status}",
            latency_ms=latency_ms,
            retryable=True,
            endpoint_fault=True,
            fault=LLMFault.HTTP_STATUS,
        )
    fault = status in (401, 403, 404)
    return Outcome(
        error=f"http {status}: {message[:_DETAIL_MAX]}",
        latency_ms=latency_ms,
        endpoint_fault=fault,
        fault=LLMFault.HTTP_STATUS,
    )


_TRANSPORT = LLMFault.TRANSPORT


def classify_transport(e: BaseException, latency_ms: float) -> Outcome:
    """A deadline ("timeout", not retried) or a failed connection (retried), judged by the root cause.

    The SDK's aiohttp transport reports a refused or dropped connection as a connect *timeout*, so the
    exception type alone would misname it: a socket error under it means the connection failed.
    """
    cause: BaseException | None = e.__cause__
    while cause is not None and not isinstance(cause, TimeoutError):
        if isinstance(cause, OSError | _AIOHTTP_CONNECTION_ERRORS):
            error = f"connection error: {_first_line(cause)}"
            return Outcome(
                error=error, latency_ms=latency_ms, retryable=True, endpoint_fault=True, fault=_TRANSPORT
            )
        cause = cause.__cause__
    if isinstance(e, TimeoutError | openai.APITimeoutError):
        return Outcome(error="timeout", latency_ms=latency_ms, endpoint_fault=True, fault=LLMFault.TRANSPORT)
    error = f"connection error: {_first_line(e.__cause__ or e)}"
    return Outcome(error=error, latency_ms=latency_ms, retryable=True, endpoint_fault=True, fault=_TRANSPORT)


def _first_line(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:_DETAIL_MAX]
