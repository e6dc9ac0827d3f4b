"""Request hashing and the `llm_calls` store: the audit log of every LLM call and the response cache.

Contracts:
- `request_hash(payload)` = sha256 of the canonical JSON (sorted keys, compact, UTF-8) of the request
  payload from `profiles.request_payload`: model, messages, schema, sampling parameters, profile extras.
  `request_key(payload, prompt)` = that hash and the messages' stored form (`agent.db.prompts.PromptText`)
  from one serialisation of the messages, none when `prompt` (which must be `prompt_text` of the payload's
  messages) is given.
- One row per attempt (retries, the repair retry, the shrink retry) and one per cache hit (`from_cache`).
  All rows of one decision share the `request_hash` of the decision's first request, so the answer a repair
  or shrink finally produced is served for that request next time; each row's `request` JSON says which
  attempt it was (`attempt`) and holds what was actually sent (cache hits point at their source row), its
  messages stored once per distinct prompt in `llm_prompts` and named by `messages_hash` (`agent.db.prompts`).
  A record's `prompt`, when set, must be `prompt_text` of its payload's messages: it is stored as is, not
  recomputed; otherwise the messages are serialised and hashed once per distinct messages object in the batch
  (the tries of one request share theirs).
- Only rows with `error IS NULL`, `from_cache = false` and `request.cacheable = true` are served.
  `cacheable` is set on successful parses written in cache mode `write`/`readwrite`; abstentions are kept
  for audit but never served.
- `lookup` answers many hashes in one query (per 2,000 hashes); `insert_many` writes many rows in one
  transaction (one Core insert for the prompts, one for the calls) and returns their ids in input order.
  `store_prompts` writes prompts ahead of their calls (the gateway does, while the request is in flight);
  `insert_many` then skips the prompts this store wrote (nothing ever deletes a stored prompt), so the
  write after an answer holds only the call rows. All three block: the gateway runs them in a worker
  thread; they are thread-safe.
- Text from the model (response, reasoning, error, model name) is stored through `agent.textsafe.for_storage`.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from agent.db.models import LLMCall
from agent.db.prompts import (
    PromptText,
    canonical_messages,
    prompt_text,
    split_messages,
    store_prompts,
    text_digest,
)
from agent.db.session import transaction
from agent.textsafe import for_storage

_LOOKUP_CHUNK = 2000  # bind parameters per query: well inside SQLite (32766) and PostgreSQL (65535)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text: sorted keys, no whitespace, UTF-8, NaN refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def request_hash(payload: dict[str, Any]) -> str:
    """The cache key of one request payload: hex sha256 of `canonical_json(payload)`.

    The text is assembled key by key so that the `response_format` (with its schema, most of the bytes),
    which `profiles` shares between requests, is serialised once rather than once per request.
    """
    return text_digest(_request_text(payload, None)[0])


@dataclass(frozen=True)
class RequestKey:
    """A request's cache key and its messages' stored form (None for a payload without messages)."""

    hash: str
    prompt: PromptText | None


def request_key(payload: dict[str, Any], prompt: PromptText | None = None) -> RequestKey:
    """`request_hash(payload)` and `prompt_text(payload["messages"])` from one serialisation of the messages;
    `prompt`, when given, is taken as that text (see the module contract)."""
    text, messages = _request_text(payload, prompt)
    if messages is not None and prompt is None:
        prompt = PromptText(text_digest(messages), messages)
    return RequestKey(text_digest(text), prompt if messages is not None else None)


def _request_text(payload: dict[str, Any], prompt: PromptText | None) -> tuple[str, str | None]:
    """`canonical_json(payload)` and the canonical JSON of its messages (None without), key by key."""
    parts, messages = [], None
    for key in sorted(payload):
        value = payload[key]
        if key == "messages":
            text = messages = prompt.text if prompt is not None else canonical_messages(value)
        elif key == "response_format":
            text = _shared_canonical(value)
        else:
            text = canonical_json(value)
        parts.append(f"{canonical_json(key)}:{text}")
    return "{" + ",".join(parts) + "}", messages


_SHARED: dict[int, tuple[Any, str]] = {}


def _shared_canonical(obj: dict[str, Any]) -> str:
    """`canonical_json(obj)`, memoised by identity (the entry holds `obj`, so its id cannot be reused).

    Only objects that are never mutated may be passed: `profiles` hands out memoised response formats.
    """
    hit = _SHARED.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    text = canonical_json(obj)
    if len(_SHARED) >= 4096:
        _SHARED.clear()
    _SHARED[id(obj)] = (obj, text)
    return text


@dataclass
class CallRecord:
    """One `llm_calls` row to be written."""

    request_hash: str
    prompt_hash: str
    endpoint: str
    profile: str
    model: str
    request: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    response_text: str | None = None
    reasoning: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    from_cache: bool = False
    prompt: PromptText | None = None
    """`prompt_text` of the payload's messages when the caller has it (`request_key`); else computed."""


@dataclass(frozen=True)
class CachedAnswer:
    """A servable answer found in `llm_calls`."""

    id: int
    model: str
    response_text: str
    reasoning: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    latency_ms: float | None


STORED_MEMO = 1024
"""How many recently stored prompt digests a `CallStore` remembers (a prompt is stored ahead of its call)."""


class CallStore:
    """The `llm_calls` table behind a session factory."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        """Wrap a session factory (from `agent.db.session.open_db`)."""
        self._factory = factory
        self._stored: OrderedDict[str, None] = OrderedDict()
        """Digests of prompts this store committed lately (`STORED_MEMO`): `insert_many` skips them."""
        self._lock = threading.Lock()

    def lookup(self, hashes: Iterable[str]) -> dict[str, CachedAnswer]:
        """The newest servable answer per request hash (hashes without one are absent)."""
        wanted = sorted(set(hashes))
        found: dict[str, CachedAnswer] = {}
        cols = (
            LLMCall.request_hash,
            LLMCall.id,
            LLMCall.model,
            LLMCall.response_text,
            LLMCall.reasoning,
            LLMCall.finish_reason,
            LLMCall.prompt_tokens,
            LLMCall.completion_tokens,
            LLMCall.cached_tokens,
            LLMCall.latency_ms,
        )
        with self._factory() as session:
            for i in range(0, len(wanted), _LOOKUP_CHUNK):
                stmt = (
                    select(*cols)
                    .where(LLMCall.request_hash.in_(wanted[i : i + _LOOKUP_CHUNK]))
                    .where(LLMCall.error.is_(None), LLMCall.from_cache.is_(False))
                    .where(LLMCall.response_text.is_not(None))
                    .where(LLMCall.request["cacheable"].as_boolean().is_(True))
                    .order_by(LLMCall.id)
                )
                for row in session.execute(stmt):
                    key, call_id, model, text, reasoning, finish, prompt, completion, cached, ms = row
                    if text is not None:  # always, by the query; later ids overwrite earlier ones
                        found[key] = CachedAnswer(
                            call_id, model, text, reasoning, finish, prompt, completion, cached, ms
                        )
        return found

    def insert_many(self, records: Sequence[CallRecord]) -> list[int]:
        """Write `records` in one transaction; their new ids, in the same order."""
        if not records:
            return []
        texts: dict[int, PromptText] = {}  # by id of the messages object: the records keep them alive
        rows = [_call_row(record, texts) for record in records]
        with self._lock:
            new = [t for t in texts.values() if t.digest not in self._stored]
        with transaction(self._factory) as session:
            store_prompts(session, new)
            ids = list(session.connection().execute(_INSERT_CALLS, rows).scalars())
        self._remember(new)
        return ids

    def store_prompts(self, prompts: Sequence[PromptText]) -> None:
        """Write `prompts` now, in their own transaction, ahead of the calls that will name them."""
        with self._lock:
            new = [p for p in prompts if p.digest not in self._stored]
        if new:
            with transaction(self._factory) as session:
                store_prompts(session, new)
            self._remember(new)

    def _remember(self, prompts: Sequence[PromptText]) -> None:
        with self._lock:
            for p in prompts:
                self._stored[p.digest] = None
                self._stored.move_to_end(p.digest)
            while len(self._stored) > STORED_MEMO:
                self._stored.popitem(last=False)

    def count(self) -> int:
        """Number of rows (for tests and `tradegraph llm` reports)."""
        from sqlalchemy import func

        with self._factory() as session:
            return int(session.scalar(select(func.count()).select_from(LLMCall)) or 0)


def _table(model: type[LLMCall]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


_INSERT_CALLS = insert(_table(LLMCall)).returning(_table(LLMCall).c.id, sort_by_parameter_order=True)
_TEXT_FIELDS = ("model", "response_text", "reasoning", "finish_reason", "error")


def _call_row(record: CallRecord, texts: dict[int, PromptText]) -> dict[str, Any]:
    """The `llm_calls` row of `record`, its messages out of `request` and their `PromptText` in `texts`."""
    request, messages = split_messages(record.request)
    digest = None
    if messages is not None:  # the messages once per distinct prompt, in llm_prompts
        prompt = record.prompt or texts.get(id(messages)) or prompt_text(messages)
        texts[id(messages)] = prompt
        digest = prompt.digest
    row = {
        "request_hash": record.request_hash,
        "prompt_hash": record.prompt_hash,
        "endpoint": record.endpoint,
        "profile": record.profile,
        "request": request,
        "messages_hash": digest,
        "run_id": record.run_id,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cached_tokens": record.cached_tokens,
        "latency_ms": record.latency_ms,
        "from_cache": record.from_cache,
    }
    for key in _TEXT_FIELDS:  # model text is data: NUL and lone surrogates must not fail the insert
        row[key] = for_storage(getattr(record, key))
    return row


def hit_record(
    hit: CachedAnswer, request_hash: str, prompt_hash: str, endpoint: str, profile: str, run_id: str | None
) -> CallRecord:
    """The audit row of a cache hit: the served answer, `from_cache`, pointing at its source row."""
    return CallRecord(
        request_hash=request_hash,
        prompt_hash=prompt_hash,
        endpoint=endpoint,
        profile=profile,
        model=hit.model,
        request={"attempt": "cache", "source_id": hit.id, "cacheable": False},
        run_id=run_id,
        response_text=hit.response_text,
        reasoning=hit.reasoning,
        finish_reason=hit.finish_reason,
        prompt_tokens=hit.prompt_tokens,
        completion_tokens=hit.completion_tokens,
        cached_tokens=hit.cached_tokens,
        latency_ms=0.0,
        from_cache=True,
    )
