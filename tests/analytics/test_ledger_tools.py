"""The ledger tools against the database read directly: runs, figures, trades, decisions, and one decision
explained; and the tools' database refuses writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, text

from agent.analytics import tools
from agent.analytics.context import ToolContext
from agent.analytics.models import ToolError
from agent.db.models import Decision, Fill, LLMCall, LLMPrompt, Order, Run
from agent.db.session import open_db
from tests.analytics.conftest import Ledger


@pytest.fixture
def lctx(ledger: Ledger) -> ToolContext:
    return ToolContext(ledger.settings)


def call(ctx: ToolContext, name: str, **args: object) -> dict[str, object]:
    result = tools.call(ctx, name, args)
    assert not isinstance(result, ToolError), result
    return result.model_dump()


def test_runs_and_their_stored_figures(ledger: Ledger, lctx: ToolContext) -> None:
    ids = {r["id"] for r in call(lctx, "list_runs")["runs"]}  # type: ignore[union-attr,index]
    assert ids == {ledger.backtest_id, ledger.agent_id}
    engine, factory = open_db(ledger.url)
    with factory() as s:
        stored = s.get(Run, ledger.backtest_id)
        assert stored is not None
        metrics = stored.metrics
    engine.dispose()
    out = call(lctx, "compare_runs", ids=[ledger.backtest_id, ledger.agent_id])
    first = out["runs"][0]  # type: ignore[index]
    assert first["metrics"]["sharpe"] == pytest.approx(metrics["strategy"]["sharpe"])
    assert first["buy_and_hold"]["total_return"] == pytest.approx(metrics["buy_and_hold"]["total_return"])
    bad = tools.call(lctx, "compare_runs", {"ids": ["bt-nope"]})
    assert isinstance(bad, ToolError) and "no run with id 'bt-nope'" in bad.error


def test_trades_and_decisions_match_the_tables(ledger: Ledger, lctx: ToolContext) -> None:
    engine, factory = open_db(ledger.url)
    with factory() as s:
        fills = s.execute(
            select(Fill.amount, Fill.price, Fill.fee).where(Fill.run_id == ledger.agent_id)
        ).all()
        orders = s.scalar(select(text("count(*)")).select_from(Order).where(Order.run_id == ledger.agent_id))
        decisions = list(s.scalars(select(Decision).where(Decision.run_id == ledger.agent_id)))
    engine.dispose()
    out = call(lctx, "run_trades", run_id=ledger.agent_id)
    assert out["orders"] == orders and out["filled"] == len(fills)
    assert out["fees"] == pytest.approx(sum(f.fee for f in fills))
    assert out["notional"] == pytest.approx(sum(f.amount * f.price for f in fills))
    out = call(lctx, "run_decisions", run_id=ledger.agent_id, symbol="ETH/USDT", limit=2)
    eth = [d for d in decisions if d.symbol == "ETH/USDT"]
    assert out["decisions"] == len(eth) == 8 and len(out["rows"]) == 2  # type: ignore[arg-type]
    assert out["by_action"] == pd.Series([d.action for d in eth]).value_counts().to_dict()


def test_explain_a_decision(ledger: Ledger, lctx: ToolContext) -> None:
    engine, factory = open_db(ledger.url)
    with factory() as s:
        d = s.scalars(
            select(Decision)
            .where(Decision.run_id == ledger.agent_id, Decision.symbol == "BTC/USDT")
            .order_by(Decision.bar_ts)
        ).first()
        assert d is not None and d.llm_call_id is not None
        llm = s.get(LLMCall, d.llm_call_id)
        assert llm is not None
        prompt = s.get(LLMPrompt, llm.messages_hash)
        decision_id, bar_ts, response = d.id, d.bar_ts, llm.response_text
        messages = prompt.messages if prompt else None
    engine.dispose()
    at = pd.Timestamp(bar_ts, unit="ms", tz="UTC")
    out = call(
        lctx, "explain_decision", run_id=ledger.agent_id, symbol="BTC/USDT", at=at.isoformat(), horizon=3
    )
    assert out["decision"]["id"] == decision_id  # type: ignore[index]
    assert out["answer"] == response
    assert messages and out["prompt"][-1]["content"] == messages[-1]["content"][:4000]  # type: ignore[index]
    full = call(lctx, "explain_decision", run_id=ledger.agent_id, decision_id=decision_id, text_chars=10**6)
    assert [m["content"] for m in full["prompt"]] == [m["content"] for m in messages]  # type: ignore[union-attr,index]
    from tests.analytics.conftest import raw

    close = raw("BTC/USDT")["close"]
    after = out["aftermath"]
    i = close.index.get_loc(at)
    assert after["close_at_decision"] == close.iloc[i]  # type: ignore[index]
    assert after["price_return"] == pytest.approx(close.iloc[i + 3] / close.iloc[i] - 1)  # type: ignore[index]
    assert after["next_decision"]["time"] == (at + pd.Timedelta(hours=1)).isoformat()  # type: ignore[index]


def test_the_tools_database_refuses_writes(ledger: Ledger, lctx: ToolContext) -> None:
    from sqlalchemy.exc import OperationalError

    with lctx.factory() as s, pytest.raises(OperationalError, match="readonly"):
        s.execute(text("DELETE FROM runs"))
        s.commit()


def test_llm_usage_of_a_run(ledger: Ledger, lctx: ToolContext) -> None:
    engine, factory = open_db(ledger.url)
    with factory() as s:
        calls = list(s.scalars(select(LLMCall).where(LLMCall.run_id == ledger.agent_id)))
    engine.dispose()
    usage = call(lctx, "llm_usage", run_id=ledger.agent_id)["usage"]
    assert usage["llm_requests"] == len(calls) == 16  # type: ignore[index]
    assert usage["prompt_tokens"] == sum(c.prompt_tokens or 0 for c in calls)  # type: ignore[index]


def test_charts_of_a_run_and_a_backtest(ledger: Ledger, tmp_path: pytest.TempPathFactory) -> None:
    ctx = ToolContext(ledger.settings, reports_dir=tmp_path)  # type: ignore[arg-type]
    run = call(ctx, "chart", kind="run", run_id=ledger.agent_id, symbols=["BTC/USDT"])
    bt = call(ctx, "chart", symbols=["BTC/USDT"], strategy="sma_cross", start="2025-06-01", end="2025-07-01")
    price = call(ctx, "chart", kind="price", symbols=["ETH/USDT"], start="2025-06-01", end="2025-06-08")
    for out in (run, bt):
        png = open(str(out["png"]), "rb").read()
        assert png.startswith(b"\x89PNG")
    for out in (run, bt, price):
        html = open(str(out["html"]), encoding="utf-8").read()
        assert "<script type='text/javascript'>" in html and "<script src=" not in html  # plotly.js inline
    assert str(price["png"]).endswith(".png") and Path(str(price["png"])).read_bytes()[:4] == b"\x89PNG"
    assert "sma_cross" in str(bt["title"])
    bad = tools.call(ctx, "chart", {"kind": "run", "symbols": ["BTC/USDT"]})
    assert isinstance(bad, ToolError) and "needs run_id" in bad.error


@pytest.mark.postgres
def test_the_tools_database_refuses_writes_on_postgresql(pg_url: str) -> None:
    from sqlalchemy.exc import InternalError

    from agent.config import load_settings

    engine, _ = open_db(pg_url)  # migrated to head
    engine.dispose()
    ctx = ToolContext(load_settings(database_url=pg_url))
    assert tools.call(ctx, "list_runs", {}).model_dump() == {"runs": []}
    with ctx.factory() as s, pytest.raises(InternalError, match="read-only transaction"):
        s.execute(text("DELETE FROM runs"))
    ctx.close()
