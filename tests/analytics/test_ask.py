"""The ask agent against the vLLM emulator speaking vLLM's tool-call format: a multi-step question whose every
figure is checked against pandas, a bad symbol corrected after the tool error, bounds stopping a looping
model, the ledger left untouched, and sessions continued through the checkpointer."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, inspect, select, table

from agent.analytics.ask import ask
from agent.analytics.ask_graph import Budget, build_graph
from agent.analytics.chat import OpenAIChat
from agent.analytics.context import ToolContext
from agent.analytics.limits import AskLimits
from agent.config import Settings, load_settings
from agent.db.session import open_db
from agent.testing.vllm_emulator import Reply, ToolCall, VLLMEmulator
from tests.analytics.conftest import Ledger, cut, raw

WINDOW = {"start": "2025-06-01", "end": "2025-07-01"}


@pytest.fixture
def emu() -> Iterator[VLLMEmulator]:
    with VLLMEmulator() as e:
        yield e


def settings_for(emu: VLLMEmulator, tmp_path: Path, db_url: str | None = None) -> Settings:
    llm = {
        "profile": "vllm",
        "base_url": emu.base_url,
        "model": "nemotron",
        "max_retries": 0,
        "timeout_s": 10.0,
    }
    return load_settings(
        database_url=db_url or f"sqlite:///{tmp_path / 'ask.db'}", llm=llm, data_dir=str(tmp_path / "data")
    )


def tool_results(body: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The tool results the request carries, by call number (`#n name: {json}`)."""
    out = {}
    for m in body["messages"]:
        if m["role"] == "tool":
            head, _, payload = m["content"].partition(": ")
            out[int(head.split()[0][1:])] = json.loads(payload)
    return out


def final_answer(body: dict[str, Any]) -> Reply:
    """What a model would write from the results it was given: each figure with its call."""
    r = tool_results(body)
    text = (
        f"BTC/USDT closed at {r[1]['last_close']} [#1]. Its annualised volatility was "
        f"{r[2]['volatility']} and its max drawdown {r[2]['max_drawdown']} [#2]. sma_cross(10, 30) closed "
        f"{r[3]['metrics']['trades']:g} trades [#3]; buy and hold returned "
        f"{r[3]['buy_and_hold']['total_return']} [#3]."
    )
    return Reply(content=text)


def test_a_multi_step_question_whose_figures_match_pandas(emu: VLLMEmulator, tmp_path: Path) -> None:
    btc = {"symbol": "BTC/USDT", **WINDOW}
    emu.script(
        Reply(tool_calls=(ToolCall("candles", {**btc, "limit": 2}),)),
        Reply(tool_calls=(ToolCall("statistics", btc),)),
        Reply(
            tool_calls=(
                ToolCall(
                    "backtest",
                    {
                        "strategy": "sma_cross",
                        "params": {"fast": 10, "slow": 30},
                        "symbols": ["BTC/USDT"],
                        **WINDOW,
                    },
                ),
            )
        ),  # fmt: skip
        final_answer,
    )
    result = ask("How did BTC do in June 2025, and sma_cross 10/30?", settings_for(emu, tmp_path))
    assert result.stopped == "answered" and result.model_calls == 4
    assert [(s.n, s.tool, s.ok) for s in result.steps] == [(1, "candles", True), (2, "statistics", True),
                                                           (3, "backtest", True)]  # fmt: skip
    # the requests were vLLM tool-calling requests, and the tool results went back under their call ids
    first, last = emu.calls[0], emu.calls[-1]
    assert first["tool_choice"] == "auto" and {t["function"]["name"] for t in first["tools"]} >= {"backtest"}
    ids = [c["id"] for m in last["messages"] if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    assert ids == [m["tool_call_id"] for m in last["messages"] if m["role"] == "tool"]

    numbers = [
        float(x) for x in re.findall(r"-?\d+\.\d+(?:e-?\d+)?|(?<=closed )\d+(?= trades)", result.answer)
    ]
    close = cut(raw("BTC/USDT"), **WINDOW)["close"]
    r = close.pct_change().dropna()
    sig = (raw("BTC/USDT")["close"].rolling(10).mean() > raw("BTC/USDT")["close"].rolling(30).mean()).astype(
        int
    )
    held = pd.concat([sig[sig.index < WINDOW["start"]].tail(1), cut(sig.to_frame(), **WINDOW).iloc[:, 0]])
    exits = int((held.diff() == -1).sum())  # round trips closed (no stops: a trip ends when the signal drops)
    first_open = cut(raw("BTC/USDT"), **WINDOW)["open"].iloc[0]
    hold = (1 - 0.001) / (1 + 5e-4) * close.iloc[-1] / first_open - 1  # taker fee and 5 bps slippage, once
    expected = [close.iloc[-1], r.std() * math.sqrt(8760), (close / close.cummax() - 1).min(), exits, hold]
    assert len(numbers) == len(expected)
    for got, want, tol in zip(numbers, expected, [0, 1e-12, 1e-12, 0, 1e-5], strict=True):
        assert got == pytest.approx(want, rel=tol, abs=tol), (got, want)
    assert (
        result.trace_path
        and json.loads(Path(result.trace_path).read_text())["steps"][2]["tool"] == "backtest"
    )


def test_a_bad_symbol_is_returned_to_the_model_and_corrected(emu: VLLMEmulator, tmp_path: Path) -> None:
    seen: list[str] = []

    def corrected(body: dict[str, Any]) -> Reply:
        seen.append(body["messages"][-1]["content"])
        return Reply(tool_calls=(ToolCall("statistics", {"symbol": "BTC/USDT", **WINDOW}),))

    emu.script(
        Reply(tool_calls=(ToolCall("statistics", {"symbol": "BTC-USD", **WINDOW}),)),
        corrected,
        lambda body: Reply(content=f"volatility {tool_results(body)[2]['volatility']} [#2]"),
    )
    result = ask("BTC volatility in June 2025?", settings_for(emu, tmp_path))
    assert "must look like BASE/QUOTE" in seen[0] and seen[0].startswith('#1 statistics: {"error"')
    assert [s.ok for s in result.steps] == [False, True]
    close = cut(raw("BTC/USDT"), **WINDOW)["close"]
    vol = float(result.answer.split()[1])
    assert vol == pytest.approx(close.pct_change().std() * math.sqrt(8760), rel=1e-12)
    assert result.stopped == "answered"


def test_the_tool_call_bound_stops_a_looping_model(emu: VLLMEmulator, tmp_path: Path) -> None:
    emu.set_responder(lambda body: Reply(tool_calls=(ToolCall("list_market_data", {}),)))
    result = ask("loop", settings_for(emu, tmp_path), limits=AskLimits(max_tool_calls=3))
    assert result.stopped == "tool_calls" and len(result.steps) == 3 and result.model_calls == 4
    assert result.answer.startswith(
        "Stopped before a final answer: it used its 3 tool calls (--max-tool-calls)."
    )


def test_the_token_bound_stops_a_looping_model(emu: VLLMEmulator, tmp_path: Path) -> None:
    emu.set_responder(lambda body: Reply(tool_calls=(ToolCall("list_market_data", {}),)))
    result = ask("loop", settings_for(emu, tmp_path), limits=AskLimits(max_tokens=20_000))
    assert result.stopped == "tokens" and result.tokens >= 20_000
    assert "it used its 20000 tokens (--max-tokens)" in result.answer


def test_the_time_bound_stops_a_looping_model(emu: VLLMEmulator, tmp_path: Path) -> None:
    """A fake clock that advances 10 s per reading: the 25 s bound ends the question between calls."""
    emu.set_responder(lambda body: Reply(tool_calls=(ToolCall("list_market_data", {}),)))
    settings = settings_for(emu, tmp_path)
    ticks = iter(range(0, 10_000, 10))
    budget = Budget(AskLimits(max_seconds=25), clock=lambda: float(next(ticks)))
    ctx = ToolContext(settings)
    graph = build_graph(OpenAIChat(settings.llm, emu.base_url, "nemotron"), ctx, budget)
    final = graph.invoke({"messages": [{"role": "user", "content": "loop"}], "stop": None, "answer": ""})
    ctx.close()
    assert final["stop"] == "time" and "it ran for its 25 s (--max-seconds)" in final["answer"]
    assert budget.tool_calls <= 2


def _counts(url: str) -> dict[str, int]:
    engine, factory = open_db(url, migrate=False)
    names = inspect(engine).get_table_names()
    with factory() as s:
        counts = {n: int(s.scalar(select(func.count()).select_from(table(n))) or 0) for n in names}
    engine.dispose()
    return counts


def test_no_tool_writes_to_the_ledger(emu: VLLMEmulator, tmp_path: Path, ledger: Ledger) -> None:
    """Every ledger tool and a backtest run in one question; the database's row counts do not move."""
    before = _counts(ledger.url)
    calls = [
        ToolCall("list_runs", {}),
        ToolCall("compare_runs", {"ids": [ledger.backtest_id, ledger.agent_id]}),
        ToolCall("run_trades", {"run_id": ledger.agent_id}),
        ToolCall("run_decisions", {"run_id": ledger.agent_id}),
        ToolCall("explain_decision", {"run_id": ledger.agent_id, "symbol": "ETH/USDT"}),
        ToolCall("backtest", {"strategy": "macd", "symbols": ["ETH/USDT"], **WINDOW}),
        ToolCall(
            "sweep", {"strategy": "sma_cross", "symbols": ["BTC/USDT"], "grid": {"fast": [5, 10]}, **WINDOW}
        ),
    ]
    emu.script(Reply(tool_calls=tuple(calls)), Reply(content="done"))
    result = ask("everything", settings_for(emu, tmp_path, ledger.url), limits=AskLimits(max_tool_calls=20))
    assert [s.ok for s in result.steps] == [True] * len(calls), [s.summary for s in result.steps]
    assert _counts(ledger.url) == before and sum(before.values()) > 0


def test_a_session_continues_the_conversation(emu: VLLMEmulator, tmp_path: Path) -> None:
    settings = settings_for(emu, tmp_path)
    emu.script(Reply(content="first answer"), Reply(content="second answer"))
    ask("first question", settings, session="s1")
    ask("second question", settings, session="s1")
    ask("unrelated", settings, session="s2")
    contents = [[m["content"] for m in body["messages"] if m["role"] != "system"] for body in emu.calls]
    assert contents[1] == ["first question", "first answer", "second question"]
    assert contents[2] == ["unrelated"]
