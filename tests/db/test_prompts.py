"""`llm_calls` growth is bounded: a prompt's messages are stored once per distinct prompt, however many calls
(retries, reruns with the cache off, other runs) sent it; each call still names the exact messages it sent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session, sessionmaker

from agent.config import LLMSettings
from agent.db import prompts
from agent.db.prompts import PromptText, prompt_digest, prompt_messages, prompt_text
from agent.db.session import open_db
from agent.llm import cache
from agent.llm.cache import CallRecord, CallStore
from agent.llm.gateway import LLMGateway
from agent.llm.schema import DecisionRequest
from agent.testing.vllm_emulator import VLLMEmulator

MARKER = "MARKET-HISTORY-0f3a9c"


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_db(db_url)
    yield factory
    engine.dispose()


def _request(i: int) -> DecisionRequest:
    messages = (
        {"role": "system", "content": "You trade crypto."},
        {"role": "user", "content": f"{MARKER} {'candle ' * 200} bar {i}"},
    )
    return DecisionRequest("BTC/USDT", messages, prompt_hash=f"p{i}")


def _copies(factory: sessionmaker[Session], needle: str) -> int:
    """How many stored copies of `needle` the LLM audit tables hold."""
    with factory() as session:
        tables = set(inspect(session.connection()).get_table_names())
        texts = list(session.execute(text("SELECT CAST(request AS TEXT) FROM llm_calls")).scalars())
        if "llm_prompts" in tables:
            texts += list(session.execute(text("SELECT CAST(messages AS TEXT) FROM llm_prompts")).scalars())
    return sum(t.count(needle) for t in texts if t)


def test_two_calls_with_the_same_prompt_store_its_messages_once(factory: sessionmaker[Session]) -> None:
    llm = LLMSettings(profile="vllm", model="nemotron", max_retries=0, cache_mode="off")
    store = CallStore(factory)
    with VLLMEmulator() as emu:
        for _ in range(2):  # e.g. two runs over the same bar with the cache off
            LLMGateway(llm, emu.base_url, store=store).decide_many_sync([_request(1)])
        LLMGateway(llm, emu.base_url, store=store).decide_many_sync([_request(2)])
    assert store.count() == 3
    assert _copies(factory, "bar 1") == 1 and _copies(factory, "bar 2") == 1


def test_each_call_names_the_messages_it_sent(factory: sessionmaker[Session]) -> None:
    from agent.db.models import LLMCall, LLMPrompt

    llm = LLMSettings(profile="vllm", model="nemotron", max_retries=0, cache_mode="off")
    store = CallStore(factory)
    with VLLMEmulator() as emu:
        LLMGateway(llm, emu.base_url, store=store).decide_many_sync([_request(1), _request(2)])
    with factory() as session:
        rows = session.query(LLMCall, LLMPrompt).join(
            LLMPrompt, LLMCall.messages_hash == LLMPrompt.prompt_hash
        )
        sent = sorted(prompt.messages[1]["content"][-5:] for _call, prompt in rows)
    assert sent == ["bar 1", "bar 2"]


def _record(messages: list[dict[str, str]], attempt: str = "first", **kw: Any) -> CallRecord:
    payload = {"model": "m", "messages": messages, "temperature": 0.0}
    request = {"attempt": attempt, "try": 0, "cacheable": False, "payload": payload}
    return CallRecord("r" * 64, "p" * 64, "http://e", "vllm", "m", request, response_text="{}", **kw)


MESSAGES = [
    {"role": "system", "content": 'Prix en € — "quoted", back\\slash, tab\t, ünïcode ✓'},
    {"role": "user", "content": "BTC/USDT 1h\n" + "candle " * 50},
]


def test_messages_are_stored_as_their_canonical_json(factory: sessionmaker[Session]) -> None:
    (call_id,) = CallStore(factory).insert_many([_record(MESSAGES)])
    expected = json.dumps(MESSAGES, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    with factory() as session:
        digest = session.scalar(text(f"SELECT messages_hash FROM llm_calls WHERE id = {call_id}"))
        stored = session.scalar(text("SELECT CAST(messages AS TEXT) FROM llm_prompts"))
        assert prompt_messages(session, digest) == MESSAGES
    assert stored == expected, "the stored text is the one its key hashes"
    assert digest == hashlib.sha256(expected.encode("utf-8")).hexdigest() == prompt_digest(MESSAGES)


def test_retries_of_one_payload_serialise_its_messages_once(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[int] = []
    real = prompts.prompt_text

    def counting(messages: Sequence[Any]) -> PromptText:
        made.append(len(messages))
        return real(messages)

    monkeypatch.setattr(cache, "prompt_text", counting)
    first = _record(MESSAGES)
    retry = _record(MESSAGES, "first")
    retry.request["payload"] = first.request["payload"]  # the gateway's tries share one payload
    ids = CallStore(factory).insert_many([first, retry, _record([{"role": "user", "content": "other"}])])
    assert len(ids) == 3 and made == [2, 1]
    with factory() as session:
        assert session.scalar(text("SELECT COUNT(*) FROM llm_prompts")) == 2


def test_a_prompt_text_on_the_record_is_stored_without_serialising_again(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    given = prompt_text(MESSAGES)

    def refuse(messages: Sequence[Any]) -> PromptText:
        raise AssertionError("serialised again")

    monkeypatch.setattr(cache, "prompt_text", refuse)
    (call_id,) = CallStore(factory).insert_many([_record(MESSAGES, prompt=given)])
    with factory() as session:
        digest = session.scalar(text(f"SELECT messages_hash FROM llm_calls WHERE id = {call_id}"))
        assert digest == given.digest and prompt_messages(session, digest) == MESSAGES
