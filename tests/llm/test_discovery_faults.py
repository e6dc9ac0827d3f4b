"""Model discovery against a misbehaving endpoint: a total deadline, odd model cards, and a bounded budget."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.config import LLMSettings, Settings
from agent.errors import LLMUnavailable
from agent.llm.context import DEFAULT_CONTEXT_LEN, budget_from_settings
from agent.llm.discovery import discover
from agent.llm.gateway import LLMGateway
from agent.llm.schema import DecisionRequest, DecisionResult
from agent.testing.vllm_emulator import VLLMEmulator


def llm(**kw: object) -> LLMSettings:
    return LLMSettings(**{"profile": "vllm", "model": None, **kw})  # type: ignore[arg-type]


@pytest.fixture
def emu() -> Iterator[VLLMEmulator]:
    with VLLMEmulator(hang_s=60) as e:
        yield e


@pytest.mark.parametrize("kind", ["drip", "hang"])
def test_a_dripping_or_hanging_model_list_is_cut_at_the_total_deadline(emu: VLLMEmulator, kind: str) -> None:
    """A byte every 20 ms keeps every read alive; only a deadline over the whole discovery stops it."""
    emu.models_fault = kind
    with pytest.raises(LLMUnavailable, match="within 0.5 s"):
        discover(emu.base_url, llm(), timeout_s=0.5)
    assert emu.requests == [("GET", "/v1/models")]


@pytest.mark.parametrize("kind", ["drip", "hang", "http_500", "garbage"])
def test_a_bad_tokenize_probe_does_not_fail_discovery(emu: VLLMEmulator, kind: str) -> None:
    emu.tokenize_fault = kind
    emu.drip_s = 0.2  # the probe's answer would take seconds
    info = discover(emu.base_url, llm(), timeout_s=1.0)
    assert info.model == "nemotron" and info.max_model_len == 32768 and info.tokenize is None


@pytest.mark.parametrize("kind", ["nan_max_model_len", "inf_max_model_len"])
def test_a_non_finite_max_model_len_counts_as_not_reported(emu: VLLMEmulator, kind: str) -> None:
    emu.models_fault = kind
    info = discover(emu.base_url, llm(), timeout_s=5)
    assert info.model == "nemotron"
    assert info.max_model_len is None and info.context_source.startswith("not reported")
    settings = Settings(llm={"profile": "vllm", "base_url": emu.base_url})
    assert budget_from_settings(settings, info.max_model_len) == DEFAULT_CONTEXT_LEN - 512 - 256


@pytest.mark.parametrize("configured", [None, "nemotron"])
def test_a_model_list_of_plain_strings_is_understood(emu: VLLMEmulator, configured: str | None) -> None:
    emu.models_fault = "plain_strings"
    info = discover(emu.base_url, llm(model=configured), timeout_s=5)
    assert info.model == "nemotron" and info.models == ("nemotron",) and info.max_model_len is None


def test_no_reported_context_length_gives_a_bounded_budget() -> None:
    remote = Settings(llm={"profile": "vllm", "base_url": "http://gpu:8000/v1", "max_tokens": 1000})
    assert DEFAULT_CONTEXT_LEN == 8192
    assert budget_from_settings(remote) == 8192 - 1000 - 256
    assert budget_from_settings(remote, max_model_len=262_144) == 262_144 - 1000 - 256


def _ask(gw: LLMGateway) -> DecisionResult:
    return gw.decide_one_sync(DecisionRequest("BTC/USDT", ({"role": "user", "content": "bar"},), "p"))


def test_the_gateway_discovers_a_model_from_plain_strings(emu: VLLMEmulator) -> None:
    emu.models_fault = "plain_strings"
    with LLMGateway(llm(), emu.base_url) as gw:
        result = _ask(gw)
    assert not result.abstained and emu.calls[0]["model"] == "nemotron"


def test_the_gateway_abstains_when_discovery_drips_past_its_deadline(emu: VLLMEmulator) -> None:
    emu.models_fault = "drip"
    with LLMGateway(llm(timeout_s=0.5), emu.base_url) as gw:
        result = _ask(gw)
    assert result.abstained and result.reason is not None
    assert result.reason.startswith("model discovery failed")
    assert emu.call_count == 0
