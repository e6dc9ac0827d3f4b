"""The fault matrix: every way the endpoint can answer badly, through the real `openai` client over real
HTTP (the vLLM emulator), the real gateway, the agent graph, the risk layer, the paper broker and the ledger.

Each case ends in a recorded abstained HOLD (the configured fallback is `hold`) and no order, and nothing
from it is ever served from the cache; hostile text in an otherwise valid answer (NUL, terminal escapes,
Rich markup, raw newlines) is a valid HOLD, stored without crashing either database (lone surrogates are
not Unicode text: that answer is refused). A positive control shows the harness does place orders for a
valid buy. The oversized case is also measured: a child process's peak RSS for one decision stays within
100 MB of the fault-free run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from agent.config import Settings, load_settings
from agent.db.models import Decision, LLMCall, Order, Run
from agent.db.session import open_db
from agent.graph.factory import load_source, open_agent
from agent.graph.runner import TickOutcome
from agent.market.source import FrameSource
from agent.runs.lifecycle import RunKind, new_run_id
from agent.testing.vllm_emulator import FAULTS, OVERSIZED_BYTES, VLLMEmulator

SYMBOL = "BTC/USDT"  # the emulator's hostile answers are written for this symbol
BARS = 2  # an order decided at the first bar would fill at the second


@dataclass(frozen=True)
class Case:
    """One fault: its emulator name and how the decision must end."""

    fault: str
    reason: str | None
    """Prefix of the abstain reason; None = a valid HOLD (hostile text in a valid answer)."""


CASES = [
    Case("timeout", "timeout"),
    Case("http_500", "http 500"),
    Case("http_503", "http 503"),
    Case("http_429", "http 429"),
    Case("context_length", "context too long"),
    Case("malformed_json", "invalid json: "),
    Case("schema_violation", "schema: "),
    Case("reasoning_only", "reasoning only, no content"),
    Case("length", "cut off by max_tokens"),
    Case("prose", "invalid json: "),
    Case("bad_body", "bad response: "),
    Case("usage_string", "bad response: usage.prompt_tokens"),
    Case("usage_list", "bad response: usage"),
    Case("model_object", "bad response: model"),
    Case("choices_object", "bad response: choices"),
    Case("content_parts", "bad response: choices.0.message.content"),
    Case("exposure_bool", "schema: target_exposure"),
    Case("exposure_string", "schema: target_exposure"),
    Case("stop_bool", "schema: stop_loss"),
    Case("duplicate_keys", "invalid json: duplicate key 'action'"),
    Case("oversized", "response too large: "),
    Case("oversized_declared", "response too large: "),
    Case("raw_newline", None),
    Case("nul_text", None),
    Case("lone_surrogate", "schema: invalidation"),  # not Unicode text: pydantic refuses the string
    Case("escape_sequences", None),
    Case("rich_markup", None),
]
UNSTORABLE = ("\x00", *(chr(c) for c in (0xD800, 0xDBFF, 0xDC00, 0xDFFF)))


def test_the_matrix_covers_every_emulator_fault() -> None:
    assert {c.fault for c in CASES} == set(FAULTS)


@pytest.fixture(scope="module")
def emu() -> Iterator[VLLMEmulator]:
    with VLLMEmulator() as e:
        yield e


@pytest.fixture(scope="module")
def source() -> FrameSource:
    settings = load_settings(symbols=[SYMBOL])
    full = load_source(settings)
    frame = full.history(SYMBOL, full.last_ts(SYMBOL))
    return FrameSource({SYMBOL: frame[frame.index >= frame.index[-1] - pd.Timedelta(days=20)]})


def matrix_settings(db_url: str, base_url: str) -> Settings:
    llm = {
        "profile": "vllm",
        "base_url": base_url,
        "model": "nemotron",
        "context_tokens": 1500,
        "max_retries": 1,
        "timeout_s": 5.0,  # "timeout" is a hang; under load a real answer must still arrive in time
        "circuit_failures": 100,
    }
    return load_settings(database_url=db_url, llm=llm, symbols=[SYMBOL], fallback="hold")


def run_bars(settings: Settings, source: FrameSource) -> tuple[str, list[TickOutcome]]:
    times = source.bar_times()[-BARS:]
    run_id = new_run_id(RunKind.AGENT_BACKTEST)
    with open_agent(
        settings, run_id=run_id, kind="backtest", strategy="llm", source=source, start_ts=times[0]
    ) as runner:
        outcomes = [runner.tick(ts) for ts in times]
    return run_id, outcomes


def ledger(db_url: str, run_id: str) -> tuple[list[Decision], list[Order], list[LLMCall], Run | None]:
    engine, factory = open_db(db_url)
    try:
        with factory() as s:
            decisions = list(
                s.scalars(select(Decision).where(Decision.run_id == run_id).order_by(Decision.id))
            )
            orders = list(s.scalars(select(Order).where(Order.run_id == run_id)))
            calls = list(s.scalars(select(LLMCall).where(LLMCall.run_id == run_id).order_by(LLMCall.id)))
            return decisions, orders, calls, s.get(Run, run_id)
    finally:
        engine.dispose()


@pytest.mark.parametrize("case", CASES, ids=[c.fault for c in CASES])
def test_every_fault_ends_in_a_recorded_hold_and_no_order(
    emu: VLLMEmulator, source: FrameSource, db_url: str, case: Case
) -> None:
    emu.reset()
    emu.set_responder(lambda body: case.fault)
    settings = matrix_settings(db_url, emu.base_url)
    run_id, outcomes = run_bars(settings, source)
    decisions, orders, calls, run = ledger(db_url, run_id)

    assert run is not None and [o.status for o in outcomes] == ["done"] * BARS
    assert len(decisions) == BARS and all(d.symbol == SYMBOL and d.action == "hold" for d in decisions)
    assert orders == [] and sum(o.orders for o in outcomes) == 0, "invalid output placed an order"
    assert calls, "every call is on record"
    for text in (t for c in calls for t in (c.response_text, c.reasoning, c.error, c.model) if t):
        assert not any(ch in text for ch in UNSTORABLE)
    if case.reason is None:  # hostile text in a valid answer: a valid HOLD, its text stored safely
        assert not any(d.abstained for d in decisions), [d.abstain_reason for d in decisions]
        assert all(d.rationale and not any(ch in d.rationale for ch in UNSTORABLE) for d in decisions)
        assert all(c.error is None and c.request["cacheable"] for c in calls)
        return
    for d in decisions:
        assert d.abstained and d.abstain_reason is not None, d
        assert d.abstain_reason.startswith(case.reason), d.abstain_reason
        assert d.llm_call_id is not None
    assert all(c.error for c in calls) and not any(c.request.get("cacheable") for c in calls)
    assert all(len(c.response_text or "") <= settings.llm.max_response_bytes for c in calls)


def test_the_harness_places_orders_for_a_valid_buy(
    emu: VLLMEmulator, source: FrameSource, sqlite_url: str
) -> None:
    """Positive control: without a fault the same harness trades (so "no order" above means something)."""
    buy = {
        "symbol": SYMBOL,
        "action": "buy",
        "target_exposure": 0.3,
        "confidence": 0.8,
        "stop_loss": None,
        "take_profit": None,
        "invalidation": "",
        "rationale": "breakout",
    }
    emu.reset()
    emu.set_responder(lambda body: buy)
    run_id, outcomes = run_bars(matrix_settings(sqlite_url, emu.base_url), source)
    decisions, orders, _, _ = ledger(sqlite_url, run_id)
    assert decisions and not any(d.abstained for d in decisions)
    assert orders and sum(o.orders for o in outcomes) > 0


# ------------------------------------------------------------------ memory: the oversized answer is not read

CHILD = """
import resource, sys
from agent.config import LLMSettings
from agent.db.session import open_db
from agent.llm.cache import CallStore
from agent.llm.gateway import LLMGateway
from agent.llm.schema import DecisionRequest

base_url, db_url = sys.argv[1], sys.argv[2]
engine, factory = open_db(db_url)
settings = LLMSettings(profile="vllm", model="nemotron", timeout_s=60, max_retries=0)
messages = ({"role": "system", "content": "You trade crypto."}, {"role": "user", "content": "bar 1"})
with LLMGateway(settings, base_url, store=CallStore(factory)) as gateway:
    result = gateway.decide_one_sync(DecisionRequest("BTC/USDT", messages, prompt_hash="rss"))
engine.dispose()
print(result.abstained, result.reason, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, sep="|")
"""


def child_peak_rss_kb(emu: VLLMEmulator, fault: str | None, db_url: str) -> tuple[bool, str, int]:
    """Run one decision in a fresh interpreter; its (abstained, reason, peak RSS in kB)."""
    emu.reset()
    emu.set_responder((lambda body: fault) if fault else None)
    # Through /bin/sh, which forks Python rather than exec'ing it: a process's ru_maxrss includes the peak
    # of the memory image it was exec'ed from, and a direct child of pytest starts from pytest's.
    done = subprocess.run(
        ["/bin/sh", "-c", '"$0" -c "$1" "$2" "$3"; exit $?', sys.executable, CHILD, emu.base_url, db_url],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    abstained, reason, rss = done.stdout.strip().splitlines()[-1].split("|")
    return abstained == "True", reason, int(rss)


def test_an_oversized_answer_costs_no_memory(emu: VLLMEmulator, tmp_path: Path) -> None:
    """Peak RSS of one decision: fault-free vs a 30 MB answer; the difference stays under 100 MB."""
    assert OVERSIZED_BYTES >= 30 * 1024 * 1024
    ok = child_peak_rss_kb(emu, None, f"sqlite:///{tmp_path / 'ok.db'}")
    big = child_peak_rss_kb(emu, "oversized", f"sqlite:///{tmp_path / 'big.db'}")
    print(json.dumps({"fault_free_rss_kb": ok[2], "oversized_rss_kb": big[2]}))
    assert ok[0] is False and big[0] is True and big[1].startswith("response too large")
    assert big[2] - ok[2] < 100 * 1024, (ok, big)
