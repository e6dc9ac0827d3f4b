"""`request_key`: the request hash and the prompt's stored form (`agent.db.prompts.PromptText`) from one
serialisation of the messages."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from agent.db import prompts
from agent.db.prompts import prompt_text
from agent.llm import cache
from agent.llm.cache import canonical_json, request_hash, request_key
from tests.llm.test_cache import payload


def test_request_key_is_the_request_hash_and_the_prompt_text() -> None:
    body = {**payload(), "messages": [{"role": "user", "content": 'prix en € "cité" ✓'}]}
    key = request_key(body)
    assert key.hash == request_hash(body) == hashlib.sha256(canonical_json(body).encode()).hexdigest()
    assert key.prompt == prompt_text(body["messages"])


def test_a_request_without_messages_has_no_prompt() -> None:
    body = {k: v for k, v in payload().items() if k != "messages"}
    key = request_key(body)
    assert key.hash == request_hash(body) and key.prompt is None


def test_a_given_prompt_text_is_not_serialised_again(monkeypatch: pytest.MonkeyPatch) -> None:
    body = payload()
    given = prompt_text(body["messages"])
    expected = request_hash(body)

    def refuse(messages: Any) -> str:
        raise AssertionError("serialised again")

    monkeypatch.setattr(prompts, "canonical_messages", refuse)
    monkeypatch.setattr(cache, "canonical_messages", refuse)
    key = request_key(body, given)
    assert key.hash == expected and key.prompt is given
