"""The graph's closed sets are enums (decision source, LLM status, strategy mode), and they survive a
checkpoint round trip through LangGraph's serializer without an 'unregistered type' warning."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from agent.graph.checkpoint import open_checkpointer
from agent.graph.mode import StrategyKind, StrategyMode
from agent.graph.state import LLMStatus
from agent.risk.models import DecisionSource


@pytest.mark.parametrize(
    ("name", "kind", "asks_model"),
    [
        ("llm", StrategyKind.LLM, True),
        ("hybrid", StrategyKind.HYBRID, True),
        ("sma_cross", StrategyKind.RULE, False),
    ],
)
def test_strategy_mode_of_a_configured_name(name: str, kind: StrategyKind, asks_model: bool) -> None:
    mode = StrategyMode.of(name)
    assert mode.kind is kind and mode.name == name and mode.asks_model is asks_model


def test_closed_sets_keep_their_stored_values() -> None:
    assert [s.value for s in DecisionSource] == ["llm", "rule", "hybrid", "fallback", "risk"]
    assert {s.value for s in LLMStatus} == {"ok", "unavailable", "skipped"}


def test_enums_round_trip_through_the_sqlite_checkpointer_without_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'ck.db'}"
    with open_checkpointer(url) as saver:
        serde = saver.serde
        for value in (LLMStatus.UNAVAILABLE, DecisionSource.FALLBACK):
            with caplog.at_level(logging.WARNING):
                back = serde.loads_typed(serde.dumps_typed({"v": value}))
            assert back["v"] is value
    assert not [r for r in caplog.records if "unregistered" in r.getMessage().lower()], caplog.text


def test_a_pending_target_carries_the_risk_results_target_exposure_by_that_name() -> None:
    from agent.broker.models import PendingTarget
    from agent.llm.schema import Action, hold
    from agent.risk.models import RiskResult

    decision = hold("BTC/USDT", "test")
    result = RiskResult(
        "BTC/USDT", DecisionSource.LLM, decision, Action.BUY, 0.4, 0.1, None, None, "", rejected=False
    )
    pending = PendingTarget.from_result(result, 1_000)
    assert pending is not None and pending.target_exposure == result.target_exposure == 0.4


class _CheckingSerializer(JsonPlusSerializer):
    """The checkpoint serializer, checking that every value it writes reads back exactly (same types,
    tuples still tuples, NaN still NaN: compared by `repr`) and recording the state keys it saw."""

    seen: ClassVar[set[str]] = set()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        data = super().dumps_typed(obj)
        back = self.loads_typed(data)
        assert repr(back) == repr(obj), f"checkpoint round trip changed {type(obj).__name__}"
        values = obj.values() if isinstance(obj, dict) else (obj,)
        self.seen.update(type(v).__name__ for v in values)
        return data


@pytest.mark.parametrize(("strategy", "trades"), [("llm", True), ("hybrid", False), ("sma_cross", True)])
def test_every_value_a_real_tick_checkpoints_reads_back_exactly(
    strategy: str, trades: bool, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph state is typed records, not dicts: each node's output goes through LangGraph's serializer
    and comes back equal, for the model's, the hybrid's and a rule's path (trading bars included), ticked
    as the daemon ticks (with mid-tick checkpoints)."""
    from agent.graph import checkpoint
    from agent.graph.factory import open_agent
    from agent.testing.vllm_emulator import VLLMEmulator
    from tests.graph.helpers import emulator_settings, short_source

    def checking() -> JsonPlusSerializer:
        return _CheckingSerializer(allowed_msgpack_modules=checkpoint.STATE_TYPES)

    monkeypatch.setattr(checkpoint, "serializer", checking)
    _CheckingSerializer.seen.clear()
    with VLLMEmulator(latency_s=0.0, max_num_seqs=8, max_model_len=32768) as emu:
        settings = emulator_settings(sqlite_url, emu.base_url)
        source = short_source(settings)
        with open_agent(settings, run_id="rec", kind="paper", strategy=strategy, source=source) as runner:
            assert runner.checkpointer is not None
            outcomes = [runner.tick(t) for t in source.bar_times(None, None)[-40:]]
    assert any(o.fills for o in outcomes) is trades, "a trading window carries orders and fills"
    expected = {"PortfolioState", "Bar", "BarOutcome", "Allowance", "Proposal", "RiskResult"}
    expected |= {"PendingTarget"} if trades else set()
    expected |= {"Analysis"} if strategy == "llm" else set()
    assert expected <= _CheckingSerializer.seen
