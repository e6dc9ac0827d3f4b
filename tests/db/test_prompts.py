"""`llm_calls` growth is bounded: a prompt's messages are stored once per distinct prompt, however many calls
(retries, reruns with the cache off, other runs) sent it; each call still names the exact messages it sent."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session, sessionmaker

from agent.config import LLMSettings
from agent.db.session import open_db
from agent.llm.cache import CallStore
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
