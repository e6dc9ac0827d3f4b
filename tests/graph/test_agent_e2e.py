"""The agent end to end against the vLLM emulator: trades happen, the ledger balances at every bar, and a
rerun is served from the response cache with zero calls and an identical ledger."""

from __future__ import annotations

from pathlib import Path

from agent.db.session import open_db
from agent.graph.backtest import AgentBacktest, run_agent_backtest
from agent.testing.vllm_emulator import VLLMEmulator
from tests.graph.helpers import assert_ledger_identities, emulator_settings, ledger, short_source


def test_200_bars_two_symbols_balance_and_rerun_from_cache(sqlite_url: str, tmp_path: Path) -> None:
    with VLLMEmulator(latency_s=0.0, max_num_seqs=16, max_model_len=32768) as emu:
        settings = emulator_settings(sqlite_url, emu.base_url)
        source = short_source(settings)

        def run() -> AgentBacktest:
            return run_agent_backtest(
                settings,
                strategy="llm",
                start=None,
                end=None,
                last_bars=200,
                reports_dir=tmp_path,
                show_progress=False,
                source=source,
            )

        first = run()
        calls_after_first = len(emu.calls)
        second = run()
        assert len(emu.calls) == calls_after_first, "the rerun must be served from the cache"
    assert calls_after_first > 0
    engine, factory = open_db(sqlite_url)
    try:
        a, b = ledger(factory, first.run_id), ledger(factory, second.run_id)
    finally:
        engine.dispose()
    assert len(a["balances"]) == 200
    assert (a["fills"]["side"] == "buy").any() and (a["fills"]["side"] == "sell").any(), "trades happen"
    assert_ledger_identities(a, settings.broker.initial_cash)
    for key in a:
        assert a[key].equals(b[key]), f"rerun differs in {key}"
    assert first.report.exists() and "buy &amp; hold" in first.report.read_text()
    assert second.metrics["strategy"]["cache_hits"] == first.metrics["strategy"]["llm_calls"]


def test_a_budget_too_small_for_the_state_abstains_without_calling(sqlite_url: str, tmp_path: Path) -> None:
    with VLLMEmulator(latency_s=0.0) as emu:
        settings = emulator_settings(sqlite_url, emu.base_url, llm={"context_tokens": 600})
        run = run_agent_backtest(
            settings,
            strategy="llm",
            start=None,
            end=None,
            last_bars=3,
            reports_dir=tmp_path,
            show_progress=False,
            source=short_source(settings),
        )
        assert emu.calls == []
    engine, factory = open_db(sqlite_url)
    try:
        from agent.evaluation.frames import decisions_frame

        decisions = decisions_frame(factory, run.run_id)
    finally:
        engine.dispose()
    assert len(decisions) == 6 and decisions["abstained"].all()
    assert decisions["abstain_reason"].str.startswith("context budget too small").all()
    assert decisions["final_exposure"].isna().all()
