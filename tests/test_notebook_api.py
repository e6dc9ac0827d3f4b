"""The notebook API (`agent.notebook`, re-exported from `agent`): each function returns what the CLI's code
path records, model-facing functions go through the real gateway against the vLLM emulator, and bad input is
one `TradegraphError` before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

import agent as tg
from agent.backtest.service import BacktestRequest, run_request
from agent.config import load_settings
from agent.db.models import Decision, LLMCall, Run
from agent.db.session import open_db
from agent.errors import ConfigError, DataError, StrategyError
from agent.testing.vllm_emulator import VLLMEmulator
from strategies.base import FloatArray, Strategy

AT = "2025-09-17 10:30"  # inside the bar that opened 10:00 UTC
HISTORY = 400  # bars of history before the first bar: keeps prompt building fast


class HalfIn(Strategy):
    """Half invested on every bar (module level, so the registry can rebuild it by `module:Class`)."""

    name = "half_in"

    def warmup_bars(self) -> int:
        """No indicator."""
        return 0

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """0.5 everywhere."""
        return np.full(len(candles), 0.5)


class PeekNextClose(Strategy):
    """Leaky on purpose: long when the *next* close is higher."""

    name = "peek_next_close"

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """Uses close[t+1] at bar t."""
        up = candles["close"].shift(-1) > candles["close"]
        return up.to_numpy(dtype=np.float64)


def _emulator_settings(db_url: str, base_url: str, **extra: Any) -> dict[str, Any]:
    llm = {"profile": "vllm", "base_url": base_url, "model": "nemotron", "context_tokens": 1600}
    return {"database_url": db_url, "llm": llm} | extra


def _buy_everything(body: dict[str, Any]) -> dict[str, Any]:
    symbol = body["response_format"]["json_schema"]["schema"]["properties"]["symbol"]["enum"][0]
    return {"symbol": symbol, "action": "buy", "target_exposure": 1.0, "confidence": 0.8,
            "rationale": "all in, no stop"}  # fmt: skip


def _count(db_url: str, model: Any, **where: Any) -> int:
    engine, factory = open_db(db_url)
    try:
        with factory() as s:
            stmt = select(func.count()).select_from(model)
            for key, value in where.items():
                stmt = stmt.where(getattr(model, key) == value)
            return int(s.scalar(stmt) or 0)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------ market data


def test_list_and_load_bundled_candles() -> None:
    files = tg.list_data()
    btc = files[(files.symbol == "BTC/USDT") & (files.timeframe == "1h")].iloc[0]
    frame = tg.load_candles("BTC/USDT", "1h", start="2025-09-01", end="2025-09-02")
    assert btc["source"] == "bundled" and btc["rows"] > 8000
    assert len(frame) == 24 and list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.index[0] == pd.Timestamp("2025-09-01", tz="UTC") and str(frame.index.tz) == "UTC"
    with pytest.raises(DataError):
        tg.load_candles("DOGE/USDT", "1h")


# -------------------------------------------------------------------------------------- rule backtests


def test_run_backtest_is_the_cli_path_and_is_recorded(sqlite_url: str, tmp_path: Path) -> None:
    settings = {"database_url": sqlite_url}
    bt = tg.run_backtest("sma_cross", "BTC/USDT", "1d", start="2023-01-01", settings=settings, fast=10,
                         slow=30, reports_dir=tmp_path / "reports")  # fmt: skip
    cli = run_request(
        BacktestRequest("sma_cross", {"fast": "10", "slow": "30"}, ["BTC/USDT"], "1d", start="2023-01-01"),
        load_settings(**settings),
        None,
    )
    assert list(bt.metrics.columns) == ["strategy", "buy_and_hold", "cash"]
    assert bt.metrics["strategy"].to_dict() == pytest.approx(cli.comparison["strategy"], nan_ok=True)
    assert bt.equity.index[0] == pd.Timestamp("2023-01-01", tz="UTC")
    assert bt.equity["strategy"].iloc[-1] == bt.metrics.loc["final_equity", "strategy"]
    assert bt.equity["buy_and_hold"].iloc[-1] == bt.metrics.loc["final_equity", "buy_and_hold"]
    assert (bt.equity["cash"] == 10_000.0).all()
    assert len(bt.trades) == bt.metrics.loc["trades", "strategy"] + bt.metrics.loc["open_trades", "strategy"]
    assert bt.report_path is not None and bt.report_path.is_file()
    assert _count(sqlite_url, Run, id=bt.run_id, status="done", kind="backtest") == 1
    assert bt.figure().axes, "the equity figure has axes"


def test_strategy_classes_and_instances_run_through_the_registry(sqlite_url: str) -> None:
    settings = {"database_url": sqlite_url}
    by_class = tg.run_backtest(HalfIn, "ETH/USDT", "1d", start="2024-01-01", settings=settings)
    by_instance = tg.run_backtest(HalfIn(), "ETH/USDT", "1d", start="2024-01-01", settings=settings)
    assert by_class.equity.equals(by_instance.equity)
    assert by_class.result.targets.max() == pytest.approx(0.5)
    assert 0.4 < by_class.metrics.loc["exposure", "strategy"] < 0.6

    class Local(HalfIn):
        name = "local"

    with pytest.raises(ConfigError, match="module level"):
        tg.run_backtest(Local, "ETH/USDT", "1d", settings=settings)
    with pytest.raises(StrategyError, match="unknown parameter"):
        tg.run_backtest("sma_cross", "ETH/USDT", "1d", settings=settings, fats=3)
    with pytest.raises(ConfigError, match="BASE/QUOTE"):
        tg.run_backtest("sma_cross", "ETHUSDT", "1d", settings=settings)
    assert _count(sqlite_url, Run) == 2, "nothing recorded for bad input"


def test_sweep_ranks_every_trial_and_records_them(sqlite_url: str) -> None:
    table = tg.sweep("sma_cross", {"fast": [5, 10, 60], "slow": [30, 50]}, "BTC/USDT", "1d",
                     start="2023-01-01", settings={"database_url": sqlite_url})  # fmt: skip
    assert table.attrs["trials"] == 4 and table.attrs["skipped"] == 2  # fast=60 is not below slow
    assert list(table["rank"]) == [1, 2, 3, 4]
    assert table["sharpe"].is_monotonic_decreasing
    assert table.pivot(index="fast", columns="slow", values="sharpe").shape == (2, 2)
    assert table.attrs["luck_sharpe"] > 0
    assert _count(sqlite_url, Run, kind="sweep") == 4


def test_lookahead_check_flags_only_the_leaky_strategy() -> None:
    found = tg.check_lookahead(["sma_cross", PeekNextClose], ["BTC/USDT", "ETH/USDT"], "1d", samples=6)
    by_strategy = found.groupby("strategy")["lookahead"].all()
    assert list(found["symbol"]) == ["BTC/USDT", "ETH/USDT"] * 2
    assert not by_strategy["sma_cross(fast=20, slow=50)"]
    assert by_strategy["peek_next_close()"]
    assert (found["cuts"] > 0).all()


# ------------------------------------------------------------------------------------------- the agent


def test_build_context_is_the_prompt_ask_model_sends(sqlite_url: str) -> None:
    with VLLMEmulator() as emu:
        settings = _emulator_settings(sqlite_url, emu.base_url)
        ctx = tg.build_context("BTC/USDT", AT, history_bars=HISTORY, settings=settings)
        assert len(emu.calls) == 0, "building the context asks no model"
        answer = tg.ask_model("BTC/USDT", AT, history_bars=HISTORY, settings=settings)
        sent = emu.calls
    assert ctx.bar == pd.Timestamp("2025-09-17 10:00", tz="UTC")
    assert [m["role"] for m in ctx.messages] == ["system", "user"]
    assert "BTC/USDT" in ctx.text and "2025-09-17 10:00" in ctx.text and "2025-09-17 11:00" not in ctx.text
    assert ctx.tokens <= ctx.budget == 1600
    assert list(ctx.blocks.columns) == ["block", "bars", "first", "last"]
    assert len(sent) == 1 and sent[0]["messages"] == [dict(m) for m in ctx.messages]
    assert answer.decision["prompt_hash"] == ctx.prompt_hash
    assert answer.decision["source"] == "llm" and answer.decision["symbol"] == "BTC/USDT"
    assert json.loads(answer.response_text or "")["symbol"] == "BTC/USDT"
    assert _count(sqlite_url, Run, id=answer.run_id, kind="notebook", status="done") == 1


def test_credentials_in_urls_are_never_recorded(sqlite_url: str, tmp_path: Path) -> None:
    from agent.config import LLMSettings
    from agent.llm.cache import CallStore
    from agent.llm.gateway import LLMGateway
    from agent.llm.schema import DecisionRequest

    engine, factory = open_db(sqlite_url)
    try:
        with VLLMEmulator() as emu:
            base_url = emu.base_url.replace("http://", "http://nb-user:nb-pw-1@")
            llm = LLMSettings(profile="vllm", model="nemotron")
            gateway = LLMGateway(llm, base_url, store=CallStore(factory))
            messages = ({"role": "system", "content": "You trade."}, {"role": "user", "content": "bar"})
            gateway.decide_many_sync([DecisionRequest("BTC/USDT", messages, prompt_hash="p")])  # recorded
            gateway.close()
        settings = {"database_url": sqlite_url, "llm": {"base_url": base_url},
                    "exchange": {"api_url": "https://nb-token-2@proxy.example"}}  # fmt: skip
        run = tg.run_agent("BTC/USDT", bars=2, strategy="sma_cross", settings=settings, reports_dir=tmp_path)
        with factory() as s:
            config = s.get_one(Run, run.run_id).config
            endpoints = list(s.scalars(select(LLMCall.endpoint)))
    finally:
        engine.dispose()
    assert endpoints == [base_url.replace("nb-pw-1", "***")]
    assert config["llm"]["base_url"] == base_url.replace("nb-pw-1", "***")
    assert config["exchange"]["api_url"] == "https://***@proxy.example"
    assert "nb-pw-1" not in json.dumps(config) and "nb-token-2" not in json.dumps(config)


def test_ask_model_returns_the_risk_layers_clamps(sqlite_url: str) -> None:
    with VLLMEmulator() as emu:
        emu.set_responder(_buy_everything)
        settings = _emulator_settings(sqlite_url, emu.base_url)
        answer = tg.ask_model("ETH/USDT", AT, history_bars=HISTORY, settings=settings)
    d = answer.decision
    cap = load_settings().risk.max_position_exposure
    assert d["action"] == "buy" and d["target_exposure"] == 1.0, "the proposal is kept as made"
    assert 0 < d["final_exposure"] <= cap
    assert {"exposure_cap", "stop_loss_default"} <= set(answer.clamps["kind"])
    assert pd.notna(d["stop_loss"]) and d["stop_loss"] > 0, "the default stop was applied"
    assert "sent" in answer.verdict and f"{len(answer.clamps)} clamp" in answer.verdict


def test_local_model_settings_send_every_call_to_the_server() -> None:
    from agent.llm.local_server import LocalLLMServer

    model = tg.LocalModel(LocalLLMServer())  # not started: only its address is used here
    overrides = model.settings(context_tokens=1600, profile="vllm")
    llm = load_settings(**overrides).llm
    assert (llm.profile, llm.base_url, llm.context_tokens) == ("llamacpp", model.base_url, 1600)
    assert model.base_url.startswith("http://127.0.0.1:") and model.base_url.endswith("/v1")
    model.stop()  # idempotent, also for a server that never started


def test_bars_outside_the_data_are_refused(sqlite_url: str) -> None:
    settings = {"database_url": sqlite_url, "llm": {"context_tokens": 1600}}
    with pytest.raises(DataError, match="the data covers"):
        tg.build_context("BTC/USDT", "2030-01-01", settings=settings)
    with pytest.raises(DataError, match="the data covers"):
        tg.ask_model("BTC/USDT", "2001-01-01", settings=settings)
    with pytest.raises(ConfigError):
        tg.run_agent("BTC/USDT", bars=2, start="2025-09-01", end="2025-09-02", settings=settings)
    with pytest.raises(ConfigError):
        tg.run_agent("BTC/USDT", bars=0, settings=settings)
    with pytest.raises(ConfigError, match="no run yet"):
        tg.read_decisions(settings=settings)
    assert _count(sqlite_url, Run) == 0


def test_run_agent_reads_back_and_reruns_from_the_cache(sqlite_url: str, tmp_path: Path) -> None:
    before = matplotlib.get_backend()
    matplotlib.use("pdf")  # stands in for a notebook's inline backend, which reports must not switch off
    try:
        with VLLMEmulator() as emu:
            emu.set_responder(_buy_everything)
            settings = _emulator_settings(sqlite_url, emu.base_url)
            first = tg.run_agent(["BTC/USDT", "ETH/USDT"], bars=4, start="2025-09-17 08:00",
                                 history_bars=HISTORY, settings=settings, reports_dir=tmp_path)  # fmt: skip
            calls = len(emu.calls)
            again = tg.run_agent(["BTC/USDT", "ETH/USDT"], bars=4, end="2025-09-17 12:00",
                                 history_bars=HISTORY, settings=settings, reports_dir=tmp_path)  # fmt: skip
            assert len(emu.calls) == calls, "the rerun is served from the response cache"
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use(before)
    assert first.report_path.is_file() and first.report_path.parent == tmp_path / first.run_id
    assert list(first.ticks["status"]) == ["done"] * 4
    assert first.metrics.loc["llm_calls", "agent"] == calls > 0
    assert again.metrics.loc["cache_hits", "agent"] == calls and again.metrics.loc["llm_calls", "agent"] == 0
    equity = tg.read_equity(first.run_id, settings=settings)
    assert list(equity.index) == list(first.ticks["bar"])
    assert equity["equity"].iloc[-1] == pytest.approx(first.ticks["equity"].iloc[-1])
    assert tg.read_equity(settings=settings).equals(tg.read_equity(again.run_id, settings=settings))
    decisions = tg.read_decisions(first.run_id, settings=settings)
    assert len(decisions) == _count(sqlite_url, Decision, run_id=first.run_id) > 0
    rows = tg.calibration(first.run_id, per_decision=True, settings=settings)
    buckets = tg.calibration(first.run_id, settings=settings)
    assert len(rows) > 0 and (rows["action"] == "buy").all()
    assert rows["directional_return"].equals(rows["next_return"])
    assert buckets["decisions"].sum() == len(rows)
    assert buckets["mean_directional_return"].iloc[0] == pytest.approx(rows["directional_return"].mean())
