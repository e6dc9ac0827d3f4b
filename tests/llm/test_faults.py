"""Every abstained gateway result carries its typed fault kind, set where the gateway abstains."""

from __future__ import annotations

import json

import pytest

from agent.config import LLMSettings
from agent.llm.faults import LLMFault
from agent.llm.gateway import LLMGateway
from agent.llm.schema import DecisionRequest
from agent.testing.vllm_emulator import Reply, VLLMEmulator
from tests.llm.answers import GOOD

REQUEST = DecisionRequest("BTC/USDT", ({"role": "user", "content": "bar"},), "p")


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("http_500", LLMFault.HTTP_STATUS),
        ("http_429", LLMFault.HTTP_STATUS),
        ("timeout", LLMFault.TRANSPORT),
        ("context_length", LLMFault.OVERSIZE),
        ("malformed_json", LLMFault.PARSE),
        ("schema_violation", LLMFault.PARSE),
        ("reasoning_only", LLMFault.PARSE),
        ("bad_body", LLMFault.ENVELOPE),
    ],
)
def test_each_fault_has_its_kind(fault: str, kind: LLMFault) -> None:
    llm = LLMSettings(profile="vllm", model="nemotron", max_retries=0, timeout_s=0.5)
    with VLLMEmulator() as emu, LLMGateway(llm, emu.base_url) as gw:
        emu.set_responder(lambda body: fault)
        result = gw.decide_one_sync(REQUEST)
    assert result.abstained and result.fault is kind


def test_a_valid_answer_has_no_fault_and_an_open_circuit_has_its_own() -> None:
    llm = LLMSettings(profile="vllm", model="nemotron", max_retries=0, circuit_failures=1)
    with VLLMEmulator() as emu, LLMGateway(llm, emu.base_url) as gw:
        emu.script(Reply(content=json.dumps(GOOD)), "http_500")
        ok, failed, refused = (gw.decide_one_sync(REQUEST) for _ in range(3))
    assert not ok.abstained and ok.fault is None
    assert failed.fault is LLMFault.HTTP_STATUS
    assert refused.fault is LLMFault.CIRCUIT_OPEN and refused.reason == "circuit open"
