"""Request hashing and the llm_calls cache: identical reruns cost no call, one lookup query, modes."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from agent.config import LLMSettings
from agent.db.models import LLMCall
from agent.db.prompts import prompt_text
from agent.db.session import open_db
from agent.llm import profiles
from agent.llm.cache import CallRecord, CallStore, canonical_json, request_hash
from agent.llm.gateway import LLMGateway
from agent.llm.schema import DecisionRequest, DecisionResult
from agent.testing.vllm_emulator import VLLMEmulator


def request(i: int = 0) -> DecisionRequest:
    messages = ({"role": "system", "content": "You trade crypto."}, {"role": "user", "content": f"bar {i}"})
    return DecisionRequest("BTC/USDT", messages, prompt_hash=f"p{i}")


def settings(**kw: Any) -> LLMSettings:
    base: dict[str, Any] = {"profile": "vllm", "model": "nemotron", "max_retries": 0, "thinking": "on"}
    return LLMSettings(**{**base, **kw})


@pytest.fixture
def emu() -> Iterator[VLLMEmulator]:
    with VLLMEmulator() as e:
        yield e


@pytest.fixture
def db(db_url: str) -> Iterator[tuple[Engine, CallStore]]:
    engine, factory = open_db(db_url)
    yield engine, CallStore(factory)
    engine.dispose()


def same(a: DecisionResult, b: DecisionResult) -> bool:
    keys = ("decision", "abstained", "reason", "response_text", "reasoning", "model", "prompt_tokens")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def payload(**kw: Any) -> dict[str, Any]:
    llm = settings(**kw)
    req = request()
    return profiles.request_payload(
        llm, "nemotron", list(req.messages), profiles.decision_schema(req, llm.profile)
    )


def test_request_hash_is_canonical_and_covers_every_input() -> None:
    base = payload()
    assert request_hash(base) == hashlib.sha256(canonical_json(base).encode()).hexdigest()
    assert request_hash(base) == request_hash(json.loads(json.dumps(base)))  # memo by identity is exact
    assert request_hash(base) == request_hash(dict(reversed(list(base.items()))))
    assert len(request_hash(base)) == 64
    variants = [
        payload(temperature=0.5),
        payload(top_p=0.5),
        payload(seed=1),
        payload(max_tokens=100),
        payload(thinking="off"),
        payload(thinking="low"),
        payload(profile="llamacpp"),
    ]
    assert len({request_hash(v) for v in [base, *variants]}) == len(variants) + 1
    other_model = {**base, "model": "other"}
    other_msgs = {**base, "messages": [{"role": "user", "content": "bar 1"}]}
    assert request_hash(other_model) != request_hash(base) != request_hash(other_msgs)


def test_identical_rerun_is_served_from_cache_with_zero_calls(
    emu: VLLMEmulator, db: tuple[Engine, CallStore]
) -> None:
    _, store = db
    reqs = [request(i) for i in range(6)]
    first = LLMGateway(settings(), emu.base_url, store=store).decide_many_sync(reqs)
    assert emu.call_count == 6 and not any(r.abstained for r in first)
    again = LLMGateway(settings(), emu.base_url, store=store).decide_many_sync(reqs)
    assert emu.call_count == 6
    assert all(same(a, b) for a, b in zip(first, again, strict=True))
    assert all(r.from_cache for r in again) and not any(r.from_cache for r in first)
    ids = {r.llm_call_id for r in first} | {r.llm_call_id for r in again}
    assert len(ids) == 12 and None not in ids
    with store._factory() as s:  # noqa: SLF001
        hits = list(s.scalars(select(LLMCall).where(LLMCall.from_cache.is_(True))))
    assert len(hits) == 6 and all(h.request["attempt"] == "cache" for h in hits)
    assert {h.request["source_id"] for h in hits} == {r.llm_call_id for r in first}


def test_all_hashes_are_looked_up_in_one_query(emu: VLLMEmulator, db: tuple[Engine, CallStore]) -> None:
    engine, store = db
    reqs = [request(i) for i in range(40)]
    LLMGateway(settings(), emu.base_url, store=store).decide_many_sync(reqs)
    statements: list[str] = []
    commits: list[int] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    event.listen(engine, "commit", lambda *a: commits.append(1))
    LLMGateway(settings(), emu.base_url, store=store).decide_many_sync(reqs)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "llm_calls" in s]
    assert len(selects) == 1
    assert len(commits) == 1  # all 40 cache-hit rows are written in one transaction


def test_abstentions_are_recorded_but_never_served(emu: VLLMEmulator, db: tuple[Engine, CallStore]) -> None:
    _, store = db
    emu.set_responder(lambda body: "malformed_json")
    first = LLMGateway(settings(), emu.base_url, store=store).decide_many_sync([request()])
    assert first[0].abstained and emu.call_count == 2
    emu.set_responder(None)
    again = LLMGateway(settings(), emu.base_url, store=store).decide_many_sync([request()])
    assert emu.call_count == 3 and not again[0].abstained and not again[0].from_cache


def test_repaired_answer_is_served_for_the_original_request(
    emu: VLLMEmulator, db: tuple[Engine, CallStore]
) -> None:
    _, store = db
    emu.script("malformed_json")
    first = LLMGateway(settings(), emu.base_url, store=store).decide_many_sync([request()])
    again = LLMGateway(settings(), emu.base_url, store=store).decide_many_sync([request()])
    assert emu.call_count == 2 and again[0].from_cache and same(first[0], again[0])


@pytest.mark.parametrize(
    ("first_mode", "second_mode", "second_calls"),
    [
        ("readwrite", "readwrite", 0),
        ("write", "read", 0),
        ("write", "write", 2),  # write never reads
        ("off", "readwrite", 2),  # off neither reads nor makes answers servable
        ("read", "readwrite", 2),  # read-only runs do not add servable answers
        ("readwrite", "off", 2),
    ],
)
def test_cache_modes(
    emu: VLLMEmulator, sqlite_url: str, first_mode: str, second_mode: str, second_calls: int
) -> None:
    engine, factory = open_db(sqlite_url)
    store = CallStore(factory)
    reqs = [request(1), request(2)]
    LLMGateway(settings(cache_mode=first_mode), emu.base_url, store=store).decide_many_sync(reqs)
    before = emu.call_count
    LLMGateway(settings(cache_mode=second_mode), emu.base_url, store=store).decide_many_sync(reqs)
    assert emu.call_count - before == second_calls
    assert store.count() == 4  # every call and every hit is recorded, whatever the mode
    engine.dispose()


def test_changed_settings_miss_the_cache(emu: VLLMEmulator, sqlite_url: str) -> None:
    engine, factory = open_db(sqlite_url)
    store = CallStore(factory)
    LLMGateway(settings(), emu.base_url, store=store).decide_many_sync([request()])
    LLMGateway(settings(temperature=0.2), emu.base_url, store=store).decide_many_sync([request()])
    assert emu.call_count == 2
    engine.dispose()


def test_store_lookup_returns_newest_servable_row(db: tuple[Engine, CallStore]) -> None:
    _, store = db

    def rec(h: str, text: str, cacheable: bool = True, error: str | None = None) -> CallRecord:
        return CallRecord(h, "p", "e", "vllm", "m", {"cacheable": cacheable}, response_text=text, error=error)

    ids = store.insert_many(
        [
            rec("a", "1"),
            rec("a", "2"),
            rec("a", "3", cacheable=False),
            rec("b", "x", error="schema: bad"),
            rec("c", "y", cacheable=False),
        ]
    )
    assert ids == sorted(ids) and len(set(ids)) == 5
    found = store.lookup(["a", "b", "c", "d"])
    assert set(found) == {"a"} and found["a"].response_text == "2" and found["a"].id == ids[1]
    assert store.insert_many([]) == []


def test_a_prompt_is_stored_while_its_request_is_in_flight(
    emu: VLLMEmulator, db: tuple[Engine, CallStore]
) -> None:
    """The long prompt text goes to `llm_prompts` while the server works on the request; once the answer is
    in, only the small call row is written (a stateful bar waits for that write). The rows are the same."""
    engine, store = db
    committed = threading.Event()
    statements: list[tuple[bool, str]] = []
    answered = threading.Event()
    event.listen(engine, "commit", lambda *_: committed.set())
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append((answered.is_set(), a[2])))

    stored_in_flight: list[bool] = []

    def responder(body: dict[str, Any]) -> None:  # runs when the request reaches the server
        stored_in_flight.append(committed.wait(10))  # bounded: the prompt is stored in flight, or never
        answered.set()

    emu.set_responder(responder)
    (result,) = LLMGateway(settings(), emu.base_url, store=store).decide_many_sync([request(7)])
    assert stored_in_flight == [True] and not result.abstained
    before = [s for after, s in statements if not after and "llm_prompts" in s]
    after = [s for after, s in statements if after]
    assert any(s.lstrip().upper().startswith("INSERT") for s in before)
    assert not any("llm_prompts" in s for s in after)  # the answer's write: the call row only
    with engine.connect() as conn:
        row = conn.execute(select(LLMCall.messages_hash).where(LLMCall.id == result.llm_call_id)).one()
    assert row.messages_hash == prompt_text(list(request(7).messages)).digest
