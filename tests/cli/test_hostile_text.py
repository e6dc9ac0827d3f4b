"""Hostile model text through the whole agent: stored, shown by `tradegraph decisions` and `status`, exported
to decisions.csv and shown in report.html, it stays inert data (never markup, escape sequences, formulas or
a half-cut HTML entity), and NUL or lone surrogates in the model's answer never stop a run."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from agent.backtest.charts import script
from agent.cli.main import app
from agent.db.models import Decision, LLMCall
from agent.db.session import open_db
from agent.graph.backtest import run_agent_backtest
from agent.testing.vllm_emulator import Reply, VLLMEmulator
from tests.graph.helpers import emulator_settings, short_source

MARKUP = "[bold]x[/bold] [/bold] \x1b[2J\x1b]0;owned\x07"
_HEAD = "=HYPERLINK(1) " + MARKUP + " "
RATIONALE = _HEAD + "y" * (297 - len(_HEAD)) + "&" * 20
"""Starts a formula, holds markup and escape sequences, and puts `&`s where the report's 300-character cut
falls (one long word: the emulator counts tokens by words and punctuation)."""


def _symbol(body: dict[str, Any]) -> str:
    return str(body["response_format"]["json_schema"]["schema"]["properties"]["symbol"]["enum"][0])


def _answer(symbol: str, rationale: str, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "action": "hold",
        "target_exposure": 0.0,
        "confidence": 0.5,
        "stop_loss": None,
        "take_profit": None,
        "invalidation": rationale[:100],
        "rationale": rationale,
        **extra,
    }


def _run(db_url: str, reports: Path, responder: Any) -> str:
    with VLLMEmulator(latency_s=0.0, max_model_len=32768) as emu:
        emu.set_responder(responder)
        settings = emulator_settings(db_url, emu.base_url)
        run = run_agent_backtest(
            settings,
            strategy="llm",
            start=None,
            end=None,
            last_bars=2,
            reports_dir=reports,
            show_progress=False,
            source=short_source(settings, 10),
        )
    return run.run_id


@dataclass(frozen=True)
class HostileRun:
    url: str
    run_id: str
    report_dir: Path


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> HostileRun:
    """Two bars: BTC answers the hostile rationale; ETH answers broken JSON (abstains)."""
    tmp = tmp_path_factory.mktemp("hostile")
    url = f"sqlite:///{tmp / 'hostile.db'}"

    def responder(body: dict[str, Any]) -> Reply | dict[str, Any]:
        symbol = _symbol(body)
        return _answer(symbol, RATIONALE) if symbol == "BTC/USDT" else Reply(content="{oops [bold]")

    run_id = _run(url, tmp / "reports", responder)
    return HostileRun(url, run_id, tmp / "reports" / run_id)


@pytest.fixture
def cli(hostile_run: HostileRun, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", hostile_run.url)
    monkeypatch.setenv("COLUMNS", "400")
    yield CliRunner()


def _assert_inert(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output, "no escape sequence reaches the terminal"
    assert "[bold]x[/bold] [/bold]" in output, "markup shown as typed, the unbalanced tag included"
    assert "\\x1b[2J" in output, "the escape sequence is shown, visibly escaped"


def test_decisions_shows_hostile_text_literally(cli: CliRunner, hostile_run: HostileRun) -> None:
    result = cli.invoke(app, ["decisions", "--run-id", hostile_run.run_id])
    assert result.exit_code == 0, result.output
    _assert_inert(result.output)
    assert "[abstained: invalid json" in result.output, "the abstention prefix is not eaten as markup"


def test_status_shows_hostile_text_literally(cli: CliRunner, hostile_run: HostileRun) -> None:
    result = cli.invoke(app, ["status", "--run-id", hostile_run.run_id])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "[bold]x[/bold]" in result.output


def test_decisions_csv_neutralises_formulas_but_keeps_numbers(hostile_run: HostileRun) -> None:
    with open(hostile_run.report_dir / "decisions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    btc = [r for r in rows if r["symbol"] == "BTC/USDT"]
    assert btc and all(r["rationale"].startswith("'=HYPERLINK(1)") for r in btc)
    for r in rows:
        float(r["confidence"]), float(r["bar_ts"])  # numbers stay numbers
    with open(hostile_run.report_dir / "orders.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            assert not any(str(v).startswith(("=", "+", "@")) for v in r.values())


def test_report_html_cuts_before_escaping(hostile_run: HostileRun) -> None:
    page = (hostile_run.report_dir / "report.html").read_text(encoding="utf-8")
    assert page.count(script()) == 1, "plotly.js, inline once: JavaScript, not text, so it is left out below"
    page = page.replace(script(), "")
    assert re.search(r"&(?!amp;|lt;|gt;|quot;|#x27;)", page) is None, "every & starts a whole entity"
    assert "[bold]x[/bold] [/bold]" in page and "\\x1b[2J" in page
    assert "\x1b" not in page and "\x07" not in page, "control characters are shown escaped, not raw"


def test_nul_and_lone_surrogates_from_the_model_never_stop_a_run(db_url: str, tmp_path: Path) -> None:
    """On PostgreSQL a NUL crashed the insert (the daemon retried that bar forever); on SQLite a lone
    surrogate crashed the run."""

    def responder(body: dict[str, Any]) -> Reply:
        # the schema refuses a lone surrogate in the answer's fields (an abstention); the reasoning takes any
        content = json.dumps(_answer(_symbol(body), "nul \x00 [bold]"))
        return Reply(content=content, reasoning="thinking \x00 \ud800")

    run_id = _run(db_url, tmp_path, responder)
    engine, factory = open_db(db_url)
    try:
        with factory() as session:
            rows = session.scalars(select(Decision).where(Decision.run_id == run_id)).all()
            calls = session.scalars(select(LLMCall).where(LLMCall.run_id == run_id)).all()
    finally:
        engine.dispose()
    assert rows and all(r.rationale == "nul \ufffd [bold]" and not r.abstained for r in rows)
    assert all(r.reasoning == "thinking \ufffd \ufffd" for r in rows)
    assert calls and all(c.reasoning == "thinking \ufffd \ufffd" for c in calls)


def test_error_lines_escape_control_characters(tmp_path: Path) -> None:
    """An error quoting outside text (here a file name) prints one line with no raw escape sequence."""
    import subprocess
    import sys

    name = str(tmp_path / "a\x1b[2Jb")
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "data", "check", "--file", name],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "\x1b" not in proc.stderr
    assert proc.stderr.strip().endswith("a\\x1b[2Jb"), proc.stderr
