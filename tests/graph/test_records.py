"""The graph's closed sets are enums (decision source, LLM status, strategy mode), and they survive a
checkpoint round trip through LangGraph's serializer without an 'unregistered type' warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

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
    assert PendingTarget.from_dict(pending.to_dict()) == pending
