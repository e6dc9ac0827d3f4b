"""Reading the model traffic behind a decision back from the ledger: the prompt it saw and the call's answer.

Contracts (read-only, rows detached as plain records):
- `call_messages(factory, call_id)`: the chat messages the call sent (`llm_prompts`, stored once per
  distinct prompt); a cache hit sent none, so the messages of the first call with the same request
  (`request_hash`) are given; None when no such prompt is stored (older runs).
- `llm_call(factory, call_id)`: the call's model, answer text, reasoning, finish reason, tokens, latency,
  error and whether it came from the cache; None for an unknown id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import LLMCall, LLMPrompt


@dataclass(frozen=True)
class CallRecord:
    """One stored LLM call, as the ledger holds it."""

    id: int
    model: str
    response_text: str | None
    reasoning: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    error: str | None
    from_cache: bool


def call_messages(factory: sessionmaker[Session], call_id: int) -> list[dict[str, Any]] | None:
    """The messages the call sent (or its cached twin's), or None."""
    with factory() as session:
        call = session.get(LLMCall, call_id)
        if call is None:
            return None
        digest = call.messages_hash or session.scalar(
            select(LLMCall.messages_hash)
            .where(LLMCall.request_hash == call.request_hash, LLMCall.messages_hash.is_not(None))
            .order_by(LLMCall.id)
            .limit(1)
        )
        if digest is None:
            return None
        messages = session.scalar(select(LLMPrompt.messages).where(LLMPrompt.prompt_hash == digest))
    return list(messages) if messages is not None else None


def llm_call(factory: sessionmaker[Session], call_id: int) -> CallRecord | None:
    """The stored call, or None."""
    with factory() as session:
        row = session.get(LLMCall, call_id)
        if row is None:
            return None
        return CallRecord(
            id=row.id,
            model=row.model,
            response_text=row.response_text,
            reasoning=row.reasoning,
            finish_reason=row.finish_reason,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            latency_ms=row.latency_ms,
            error=row.error,
            from_cache=bool(row.from_cache),
        )
