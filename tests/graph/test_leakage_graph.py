"""Leakage control through the graph: every prompt names the asset by the same alias, and each answer still
reaches the symbol it was asked about, with its price scale (two symbols in one tick)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from agent.db.models import Decision
from agent.db.session import open_db
from agent.graph.backtest import run_agent_backtest
from agent.testing.vllm_emulator import VLLMEmulator
from tests.graph.helpers import emulator_settings, short_source


def test_two_symbols_under_leakage_control_are_each_decided(sqlite_url: str, tmp_path: Path) -> None:
    with VLLMEmulator(latency_s=0.0, max_model_len=32768) as emu:
        settings = emulator_settings(sqlite_url, emu.base_url, llm={"leakage_control": True})
        run = run_agent_backtest(
            settings,
            strategy="llm",
            start=None,
            end=None,
            last_bars=6,
            reports_dir=tmp_path,
            show_progress=False,
            source=short_source(settings),
        )
        prompts = "\n".join(m["content"] for body in emu.calls for m in body["messages"])
    assert "BTC" not in prompts and "ETH" not in prompts and "ASSET_A" in prompts
    engine, factory = open_db(sqlite_url)
    try:
        with factory() as s:
            rows = s.execute(
                select(Decision.symbol, Decision.source, Decision.prompt_hash).where(
                    Decision.run_id == run.run_id
                )
            ).all()
    finally:
        engine.dispose()
    asked = {(symbol, source) for symbol, source, prompt_hash in rows if prompt_hash}
    assert {("BTC/USDT", "llm"), ("ETH/USDT", "llm")} <= asked
