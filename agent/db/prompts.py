"""Prompt storage: the messages of LLM calls live once per distinct prompt in `llm_prompts`, and each
`llm_calls` row names the messages it sent (`messages_hash`), so the audit log grows by the answers, not by a
full copy of a long prompt per attempt, retry and rerun.

Contracts:
- `prompt_digest(messages)` = hex sha256 of the canonical JSON of the messages (sorted keys, no whitespace,
  UTF-8, NaN refused): the same formula as `agent.llm.context.prompt_hash`, so a first attempt's
  `messages_hash` equals its decision's prompt hash.
- `split_messages(request)` takes the messages out of a call's `request` JSON (`request["payload"]
  ["messages"]`, as the gateway records what it sent) without changing the dict it was given; a request
  without messages (a cache hit) is returned as is, with no digest.
- `store_prompts(session, prompts)` inserts the prompts not stored yet, in the caller's transaction; a
  prompt stored by a concurrent writer meanwhile is skipped, never an error (ON CONFLICT DO NOTHING).
- `prompt_messages(session, digest)` reads them back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from agent.db.models import LLMPrompt, utcnow


def prompt_digest(messages: list[Any]) -> str:
    """The key of `messages` in `llm_prompts`."""
    text = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_messages(request: dict[str, Any]) -> tuple[dict[str, Any], str | None, list[Any] | None]:
    """(request without its messages, their digest, the messages); (request, None, None) without any."""
    payload = request.get("payload")
    if not isinstance(payload, dict) or "messages" not in payload:
        return request, None, None
    messages = list(payload["messages"])
    stripped = {k: v for k, v in payload.items() if k != "messages"}
    return {**request, "payload": stripped}, prompt_digest(messages), messages


def store_prompts(session: Session, prompts: Mapping[str, list[Any]]) -> None:
    """Insert the `digest → messages` not stored yet (see the module contract)."""
    if not prompts:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    rows = [
        {"prompt_hash": digest, "messages": messages, "created_at": now}
        for digest, messages in prompts.items()
    ]
    session.execute(insert(LLMPrompt).on_conflict_do_nothing(index_elements=["prompt_hash"]), rows)


def prompt_messages(session: Session, digest: str) -> list[Any] | None:
    """The messages stored under `digest`, or None."""
    return session.scalar(select(LLMPrompt.messages).where(LLMPrompt.prompt_hash == digest))
