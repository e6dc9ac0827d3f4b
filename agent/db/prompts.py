"""Prompt storage: the messages of LLM calls live once per distinct prompt in `llm_prompts`, and each
`llm_calls` row names the messages it sent (`messages_hash`), so the audit log grows by the answers, not by a
full copy of a long prompt per attempt, retry and rerun.

Contracts:
- `canonical_messages(messages)` = their canonical JSON (sorted keys, no whitespace, UTF-8, NaN refused);
  `prompt_digest(messages)` = its hex sha256, which the context builder uses as the prompt hash (through
  `prompt_text`), so a first attempt's `messages_hash` equals its decision's prompt hash.
  `prompt_text(messages)` = both, as a `PromptText`: what is stored, computed from one serialisation.
- `split_messages(request)` takes the messages out of a call's `request` JSON (`request["payload"]
  ["messages"]`, as the gateway records what it sent) without changing the dict it was given, and returns
  them as they are (not copied, not hashed); a request without messages (a cache hit) gives None.
- `store_prompts(session, prompts)` inserts the `PromptText`s not stored yet, in the caller's transaction, in
  one statement; a prompt stored by a concurrent writer meanwhile is skipped, never an error (ON CONFLICT DO
  NOTHING). The column holds the canonical JSON text itself (not serialised again), so the stored text is
  exactly what its key hashes.
- `prompt_messages(session, digest)` reads them back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Table, Text, bindparam, cast, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from agent.db.models import LLMPrompt, utcnow


@dataclass(frozen=True)
class PromptText:
    """A prompt's messages in their stored form: the canonical JSON text and its digest (the key)."""

    digest: str
    text: str


def canonical_messages(messages: Sequence[Any]) -> str:
    """The canonical JSON text of `messages` (see the module contract)."""
    return json.dumps(
        list(messages), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def text_digest(text: str) -> str:
    """Hex sha256 of `text` in UTF-8."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_text(messages: Sequence[Any]) -> PromptText:
    """`messages` as stored: one serialisation, hashed."""
    text = canonical_messages(messages)
    return PromptText(text_digest(text), text)


def prompt_digest(messages: Sequence[Any]) -> str:
    """The key of `messages` in `llm_prompts`."""
    return text_digest(canonical_messages(messages))


def split_messages(request: dict[str, Any]) -> tuple[dict[str, Any], list[Any] | None]:
    """(request without its messages, the messages); (request, None) without any."""
    payload = request.get("payload")
    if not isinstance(payload, dict) or "messages" not in payload:
        return request, None
    stripped = {k: v for k, v in payload.items() if k != "messages"}
    return {**request, "payload": stripped}, payload["messages"]


def _insert_prompts(dialect: str) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING of (`key`, `text`, `at`) rows, the text as the JSON value."""
    table = LLMPrompt.__table__
    assert isinstance(table, Table)
    text = bindparam("text", type_=Text)
    if dialect == "postgresql":
        values = {
            "prompt_hash": bindparam("key"),
            "messages": cast(text, JSON),
            "created_at": bindparam("at"),
        }
        return postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=["prompt_hash"])
    values = {"prompt_hash": bindparam("key"), "messages": text, "created_at": bindparam("at")}
    return sqlite.insert(table).values(values).on_conflict_do_nothing(index_elements=["prompt_hash"])


_INSERTS = {dialect: _insert_prompts(dialect) for dialect in ("postgresql", "sqlite")}


def store_prompts(session: Session, prompts: Iterable[PromptText]) -> None:
    """Insert the prompts not stored yet (see the module contract)."""
    now = utcnow()
    rows = [{"key": p.digest, "text": p.text, "at": now} for p in {p.digest: p for p in prompts}.values()]
    if not rows:
        return
    conn = session.connection()
    conn.execute(_INSERTS.get(conn.dialect.name, _INSERTS["sqlite"]), rows)


def prompt_messages(session: Session, digest: str) -> list[Any] | None:
    """The messages stored under `digest`, or None."""
    return session.scalar(select(LLMPrompt.messages).where(LLMPrompt.prompt_hash == digest))
