"""Read what the endpoint answered: the HTTP outcome of a call, then the answer as a `TradeDecision`.

Contracts:
- `read_body` decodes the HTTP body of a completion with `loads` (below) and `read_completion` checks its
  shape with strict typed records (not the SDK's objects: they have no typed field for the reasoning, and
  building them costs more CPU than the rest of a call): `choices` a non-empty list whose first `message`
  is an object; `content`, `reasoning` (vLLM's; `reasoning_content` from older servers), `finish_reason`
  and `model` strings or null; `usage` an object or null whose token counts (incl.
  `prompt_tokens_details.cached_tokens`) are non-negative integers or null. Unknown fields are ignored.
  Anything else, e.g. `"prompt_tokens": "12"`, a list `usage` or an object `model`, is an `Outcome` with
  error "bad response: <where>: <what>" and no content; so is a `content` or `reasoning` longer than
  `max_chars` ("response too large: ..."). Neither raises.
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
  (unconstrained endpoints add them), and raw control characters (newlines, tabs) inside JSON strings are
  accepted (small models write them unescaped; the meaning is plain). Nothing is guessed, coerced or
  defaulted: a duplicated key (at any depth), NaN/Infinity and nesting deeper than Python's recursion
  limit are "invalid json: ..."; a boolean or a string where a number is expected is "schema: ..." (see
  `schema.TradeDecision`; `prices_as_text=True` for the llama.cpp profile, whose schema asks for decimal
  strings). A wrong symbol or a disallowed action is not a parse failure: the risk layer rejects and
  records those.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import openai
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.llm.faults import LLMFault
from agent.llm.schema import PRICES_AS_TEXT, TradeDecision

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


class DuplicateKey(ValueError):
    """A JSON object names the same key twice (which value was meant is unknowable)."""


def loads(text: str | bytes) -> Any:
    """Strict-where-it-matters JSON: raw control characters inside strings are accepted; duplicated keys,
    NaN and ±Infinity are refused (`ValueError`); too deep nesting raises `RecursionError`."""
    return json.loads(text, strict=False, object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_answer(
    content: str | None,
    finish_reason: str | None,
    reasoning: str | None = None,
    *,
    prices_as_text: bool = False,
) -> Parsed:
    """Parse and validate one answer.

    Args:
        content: `message.content` as returned (may be None).
        finish_reason: The choice's finish reason ("stop", "length", ...).
        reasoning: The reasoning trace, if any (only used to name the failure).
        prices_as_text: The schema sent asked for prices as decimal strings (llama.cpp profile).

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
    try:  # not pydantic's own JSON parser: it keeps the last of duplicated keys and refuses raw newlines
        data = loads(text)
    except json.JSONDecodeError as e:
        if finish_reason == "length":
            return Parsed(None, "cut off by max_tokens")
        return Parsed(None, f"invalid json: {e.msg} at char {e.pos}")
    except (ValueError, RecursionError) as e:
        return Parsed(None, f"invalid json: {_first_line(e) if str(e) else 'nested too deeply'}")
    if not isinstance(data, dict):
        return Parsed(None, f"schema: expected a JSON object, got {type(data).__name__}")
    try:
        context = PRICES_AS_TEXT if prices_as_text else None
        return Parsed(TradeDecision.model_validate(data, context=context), None)
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


class _Shape(BaseModel):
    """A part of the completion envelope: strict types, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class _Details(_Shape):
    cached_tokens: int | None = Field(None, ge=0)


class _Usage(_Shape):
    prompt_tokens: int | None = Field(None, ge=0)
    completion_tokens: int | None = Field(None, ge=0)
    prompt_tokens_details: _Details | None = None


class _Message(_Shape):
    content: str | None = None
    reasoning: str | None = None
    reasoning_content: str | None = None


class _Choice(_Shape):
    message: _Message
    finish_reason: str | None = None


class _Completion(_Shape):
    choices: list[_Choice] = Field(min_length=1)
    model: str | None = None
    usage: _Usage | None = None


def read_body(body: bytes, latency_ms: float, max_chars: int | None = None) -> Outcome:
    """The `Outcome` of a chat-completion HTTP body (bytes): `loads`, then `read_completion`."""
    try:
        data = loads(body)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError too
        return Outcome(
            error=f"bad response: {_first_line(e) if str(e) else 'nested too deeply'}",
            latency_ms=latency_ms,
            fault=LLMFault.ENVELOPE,
        )
    return read_completion(data, latency_ms, max_chars)


def read_completion(data: Any, latency_ms: float, max_chars: int | None = None) -> Outcome:
    """The `Outcome` of a chat-completion response body (decoded JSON; see the module contract)."""
    try:
        completion = _Completion.model_validate(data)
    except ValidationError as e:
        error = f"bad response: {describe_validation(e)}"
        return Outcome(error=error, latency_ms=latency_ms, fault=LLMFault.ENVELOPE)
    choice = completion.choices[0]
    msg = choice.message
    reasoning = msg.reasoning or msg.reasoning_content
    for name, text in (("content", msg.content), ("reasoning", reasoning)):
        if max_chars is not None and text is not None and len(text) > max_chars:
            return Outcome(
                error=f"response too large: {name} over {max_chars} characters",
                latency_ms=latency_ms,
                fault=LLMFault.ENVELOPE,
            )
    usage = completion.usage or _Usage()
    details = usage.prompt_tokens_details or _Details()
    return Outcome(
        content=msg.content,
        reasoning=reasoning,
        finish_reason=choice.finish_reason,
        model=completion.model,
        usage=(usage.prompt_tokens, usage.completion_tokens, details.cached_tokens),
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
