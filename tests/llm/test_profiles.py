"""Endpoint profiles are rows of one registry: a new dialect is one `Profile` row, read where it matters."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.config import PROJECT_ROOT, LLMSettings, Settings, load_settings
from agent.errors import ConfigError
from agent.llm import profiles
from agent.llm.gateway import LLMGateway
from agent.llm.local_server import resolve_endpoint
from agent.llm.profiles import PROFILES, Profile, profile_of
from agent.llm.schema import DecisionRequest
from agent.llm.tokens import FallbackTokenCounter, ServerTokenCounter, counter_for_settings
from agent.testing.vllm_emulator import VLLMEmulator

# A hypothetical fourth server (say, SGLang behind an OpenAI-style proxy): strict json_schema, the newer
# token-limit key, Qwen-style thinking switches in chat_template_kwargs, vLLM's tokenize dialect, and a
# schema keyword it mishandles.
SGLANG = Profile(
    name="sglang",
    structured_output="json_schema",
    token_limit_key="max_completion_tokens",
    thinking_kwargs=True,
    tokenize="vllm",
    drop_keywords=("maxLength",),
    grammar_bounds=False,
    embedded=False,
)


@pytest.fixture
def sglang() -> Iterator[Profile]:
    PROFILES[SGLANG.name] = SGLANG
    try:
        yield SGLANG
    finally:
        del PROFILES[SGLANG.name]


def test_a_fourth_profile_is_one_row_and_the_gateway_runs_with_it(sglang: Profile) -> None:
    llm = LLMSettings(profile="sglang", model="nemotron", max_retries=0, max_tokens=300, thinking="low")
    request = DecisionRequest("BTC/USDT", ({"role": "user", "content": "bar"},), "p")
    with VLLMEmulator() as emu, LLMGateway(llm, emu.base_url) as gw:
        result = gw.decide_one_sync(request)
        (body,) = emu.calls
    assert not result.abstained, result.reason
    assert body["max_completion_tokens"] == 300 and "max_tokens" not in body
    assert body["chat_template_kwargs"] == {"enable_thinking": True, "low_effort": True}
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert "maxLength" not in json.dumps(fmt) and "pattern" not in json.dumps(fmt)


def test_the_row_is_read_by_token_counting_and_the_endpoint_resolution(sglang: Profile) -> None:
    settings = Settings(llm={"profile": "sglang", "base_url": "http://gpu:30000/v1"})
    counter = counter_for_settings(settings)
    assert isinstance(counter, FallbackTokenCounter) and isinstance(counter.primary, ServerTokenCounter)
    with pytest.raises(ConfigError, match="llm.base_url is required with profile 'sglang'"):
        with resolve_endpoint(LLMSettings(profile="sglang")):
            pass


def test_an_unregistered_profile_is_refused_naming_the_registered_ones() -> None:
    # the settings sit below agent.llm, so the name is checked where it is used: one line naming the key
    settings = load_settings(llm={"profile": "sglang"})
    with pytest.raises(ConfigError, match=r"llm\.profile: unknown .*'sglang'.*vllm, llamacpp, openai"):
        profile_of(settings.llm.profile)


def test_the_three_rows_say_what_the_servers_need() -> None:
    vllm, llamacpp, openai = (profile_of(n) for n in ("vllm", "llamacpp", "openai"))
    assert (vllm.structured_output, vllm.token_limit_key, vllm.thinking_kwargs) == (
        "json_schema",
        "max_tokens",
        True,
    )
    assert llamacpp.structured_output == "json_object" and llamacpp.grammar_bounds and llamacpp.embedded
    assert openai.token_limit_key == "max_completion_tokens" and openai.tokenize is None
    assert [p.embedded for p in PROFILES.values()].count(True) == 1


def test_no_profile_is_matched_by_name_outside_the_registry() -> None:
    """Variants are rows: code reads a row's fields, it never compares a profile's name."""
    pattern = re.compile(r"""profile\s*(==|!=|\bin\b|\bnot in\b)|\.profile\s*\)\s*(==|!=)""")
    offenders = []
    for path in sorted((PROJECT_ROOT / "agent").rglob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{Path(path).relative_to(PROJECT_ROOT)}:{n}: {line.strip()}")
    assert offenders == []


def test_the_request_shape_per_row_is_unchanged_for_the_existing_profiles() -> None:
    request = DecisionRequest("BTC/USDT", ({"role": "user", "content": "x"},), "p", max_exposure=0.4)
    for name, key, fmt_type in (
        ("vllm", "max_tokens", "json_schema"),
        ("llamacpp", "max_tokens", "json_object"),
        ("openai", "max_completion_tokens", "json_schema"),
    ):
        llm = LLMSettings(profile=name, thinking="on")
        schema = profiles.decision_schema(request, name)
        payload = profiles.request_payload(llm, "m", list(request.messages), schema)
        assert payload[key] == llm.max_tokens and payload["response_format"]["type"] == fmt_type
        assert ("chat_template_kwargs" in payload) is (name == "vllm")
