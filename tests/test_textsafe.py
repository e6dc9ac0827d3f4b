"""Model text is data: `agent.textsafe`'s four contracts, and the ledger storing hostile text on SQLite and
PostgreSQL (a NUL used to crash the PostgreSQL insert and wedge the daemon on that bar; a lone surrogate
crashed the run with a traceback on SQLite)."""

from __future__ import annotations

import html
import io
from collections.abc import Iterator

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent.broker import Bar, BarOutcome, FillTerms, process_bar
from agent.db.models import Decision, LLMCall, RiskEvent
from agent.db.session import open_db
from agent.ledger import DecisionEntry, TickRecord, start_run, write_tick
from agent.llm.cache import CallRecord, CallStore
from agent.llm.schema import Analysis, DecisionRequest, DecisionResult
from agent.textsafe import csv_cell, csv_frame, for_html, for_plain_terminal, for_storage, for_terminal
from tests.risk.world import BTC, RULES, T0, World, decision

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
"""Any code points, NUL, controls and lone surrogates included."""

HOSTILE = "[bold]x[/bold] [/bold] \x1b[2J\x1b]0;owned\x07 \r\x00 \ud800 \u202eevil :smile: =HYPERLINK(1)"


# ---------------------------------------------------------------------------------------------- storage


def test_for_storage_replaces_nul_and_lone_surrogates_only() -> None:
    assert for_storage("a\x00b\ud800c\udfffd") == "a\ufffdb\ufffdc\ufffdd"
    assert for_storage(None) is None
    kept = "tab\tnewline\n[bold] \x1b[2J é 😀 \u202e"
    assert for_storage(kept) == kept, "storage keeps everything the database can hold, verbatim"
    once = for_storage(HOSTILE)
    assert for_storage(once) == once and len(once) == len(HOSTILE)
    once.encode("utf-8")  # storable: no lone surrogate left


@given(ANY_TEXT)
def test_for_storage_output_is_always_storable(text: str) -> None:
    out = for_storage(text)
    out.encode("utf-8")
    assert "\x00" not in out and len(out) == len(text) and for_storage(out) == out


# ---------------------------------------------------------------------------------------------- terminal


def _render(cell: object) -> str:
    table = Table()
    table.add_column("rationale", overflow="fold")
    table.add_row(cell)  # type: ignore[arg-type]
    out = io.StringIO()
    Console(file=out, width=400, force_terminal=True, color_system=None).print(table)
    return out.getvalue()


def test_for_terminal_prints_markup_literally_and_no_control_bytes() -> None:
    shown = _render(for_terminal(HOSTILE))
    assert "[bold]x[/bold] [/bold]" in shown
    assert ":smile:" in shown, "emoji codes are not substituted either"
    assert "\\x1b[2J" in shown and "\\x1b]0;owned\\x07" in shown and "\\x0d\\x00" in shown
    assert "\\u202e" in shown and "\ufffd" in shown
    assert not any(ord(c) < 32 and c != "\n" for c in shown)
    plain = for_plain_terminal(HOSTILE)
    assert "\x1b" not in plain and "\r" not in plain and "\x00" not in plain
    plain.encode("utf-8")
    assert for_plain_terminal("line one\n\tline two") == "line one\n\tline two"


@given(ANY_TEXT)
def test_for_terminal_output_never_holds_a_control_character(text: str) -> None:
    out = for_plain_terminal(text)
    out.encode("utf-8")
    assert all(c in "\n\t" or not (ord(c) < 32 or 0x7F <= ord(c) <= 0x9F) for c in out)
    assert for_terminal(text).plain == out


# ---------------------------------------------------------------------------------------------- csv


@pytest.mark.parametrize("text", ["=1+2", "+1", "-1+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1", "\r=1"])
def test_csv_text_cells_that_start_a_formula_are_neutralised(text: str) -> None:
    assert csv_cell(text) == "'" + text


@pytest.mark.parametrize("value", [-1.5, -3, 0.0, None, float("nan"), "plain", "a=b", "", "'=1"])
def test_csv_numbers_and_harmless_text_are_unchanged(value: object) -> None:
    assert csv_cell(value) is value


def test_csv_frame_touches_text_columns_only() -> None:
    frame = pd.DataFrame({"pnl": [-12.5, 3.0], "n": [-1, 2], "why": ["=cmd()", "-ok"], "side": ["buy", None]})
    out = csv_frame(frame)
    assert out["pnl"].tolist() == [-12.5, 3.0] and out["n"].tolist() == [-1, 2]
    assert out["why"].tolist() == ["'=cmd()", "'-ok"]
    assert out["side"].iloc[0] == "buy" and pd.isna(out["side"].iloc[1])
    assert frame["why"].tolist() == ["=cmd()", "-ok"], "the input frame is left alone"


# ---------------------------------------------------------------------------------------------- html


def test_for_html_truncates_before_escaping() -> None:
    text = "a&b<c>\"d'" * 5
    for limit in range(len(text) + 2):
        out = for_html(text, limit)
        expected = text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
        assert html.unescape(out) == expected, limit  # no entity cut in half, nothing double-escaped
        assert "<" not in out and ">" not in out and '"' not in out and "'" not in out
    assert for_html("&" * 10, 5) == "&amp;" * 4 + "…"
    assert for_html("x\x00\x1b[2J\ud800", None) == "x\\x00\\x1b[2J\ufffd"


@given(st.text(st.sampled_from("&<>\"'ab"), max_size=40), st.integers(0, 45))
def test_for_html_never_cuts_an_entity(text: str, limit: int) -> None:
    expected = text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
    assert html.unescape(for_html(text, limit)) == expected


# ---------------------------------------------------------------------------------------------- ledger


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_db(db_url)
    yield factory
    engine.dispose()


def _settled(world: World) -> BarOutcome:
    bars = {s: Bar(m, m, m, m, 1.0) for s, m in world.marks.items()}
    return process_bar(
        world.portfolio, bars, {}, T0, {s: RULES for s in bars}, FillTerms.of(world.settings), "w"
    )


@pytest.mark.parametrize("bad", ["\x00", "\ud800"], ids=["nul", "lone_surrogate"])
def test_hostile_text_is_stored_sanitised(factory: sessionmaker[Session], bad: str) -> None:
    """Every text column of a decision, its risk events and the LLM call row takes NUL and lone surrogates."""
    start_run(factory, "bad", kind="paper", strategy="llm", symbols=[BTC], timeframe="1h")
    world = World()
    text = f"buy{bad}now [bold]"
    proposal = decision("buy", 5.0, rationale=text, invalidation=text)  # 5x: an out-of-range rejection
    result = world.limit(proposal)
    request = DecisionRequest(symbol=BTC, messages=(), prompt_hash="p" * 64)
    llm = DecisionResult(
        request=request,
        decision=proposal,
        abstained=True,
        reason=f"schema: {text}",
        model=f"nemo{bad}",
        reasoning=f"think{bad}",
    )
    write_tick(factory, TickRecord("bad", T0, _settled(world), (DecisionEntry(result, Analysis.of(llm)),)))
    clean = for_storage(text)
    with factory() as session:
        row = session.scalars(select(Decision).where(Decision.run_id == "bad")).one()
        assert (row.rationale, row.invalidation, row.abstain_reason) == (clean, clean, f"schema: {clean}")
        assert (row.model, row.reasoning) == ("nemo\ufffd", "think\ufffd")
        assert session.scalars(select(RiskEvent).where(RiskEvent.decision_id == row.id)).all()
    store = CallStore(factory)
    [call_id] = store.insert_many(
        [
            CallRecord(
                request_hash="r" * 64,
                prompt_hash="p" * 64,
                endpoint="http://127.0.0.1/v1",
                profile="vllm",
                model=f"nemo{bad}",
                run_id="bad",
                response_text=f'{{"rationale": "{bad}"}}',
                reasoning=f"r{bad}",
                error=f"invalid json{bad}",
                request={"messages": [{"role": "user", "content": f"held {bad}"}]},
            )
        ]
    )
    with factory() as session:
        call = session.get(LLMCall, call_id)
        assert call is not None
        assert (call.model, call.reasoning, call.error) == ("nemo\ufffd", "r\ufffd", "invalid json\ufffd")
        assert call.response_text == '{"rationale": "\ufffd"}'
