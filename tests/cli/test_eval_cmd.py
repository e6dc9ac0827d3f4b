"""`tradegraph eval` from the command line: a rule campaign prints its cells, its table and the report's
path, then `runs compare` reads the cells back; a missing or bad campaign file is one line and a non-zero
exit, with nothing recorded."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from agent.config import DEFAULT_DATA_DIR

CAMPAIGN = """
[campaign]
name = "cli"
timeframe = "1d"
symbols = ["ETH/USDT"]

[[windows]]
name = "q1"
regime = "bull"
start = "2024-01-01"
end = "2024-04-01"

[[strategies]]
name = "sma"
spec = "sma_cross"

[[strategies]]
name = "bollinger"
spec = "bollinger_reversion"
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "binance").symlink_to(DEFAULT_DATA_DIR / "binance", target_is_directory=True)
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(folder))
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "c.toml"
    path.write_text(CAMPAIGN, encoding="utf-8")
    return path


def test_eval_prints_the_cells_the_table_and_the_report(env: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(env)])
    out = result.output
    assert result.exit_code == 0, out
    assert "[1/2] q1/ETH/USDT/sma: done" in out and "[2/2] q1/ETH/USDT/bollinger: done" in out
    for text in ("q1 (bull) · ETH/USDT", "buy & hold", "cash", "p vs B&H", "deflated Sharpe", "report.html"):
        assert text in out, text
    report = Path(out.split("report: ")[-1].split()[0])
    assert report.exists() and (report.parent / "table.csv").exists()
    ids = [line.split("(")[-1].rstrip(")") for line in out.splitlines() if line.startswith("[")]
    compared = CliRunner().invoke(app, ["runs", "compare", *ids])
    assert compared.exit_code == 0 and "Sharpe" in compared.output, compared.output

    again = CliRunner().invoke(app, ["eval", str(env)])
    assert again.exit_code == 0 and "[1/2] q1/ETH/USDT/sma: read back" in again.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "does not exist"),
        (CAMPAIGN.replace('name = "cli"', 'name = "cli"\nunknown = 1'), "unknown"),
        (CAMPAIGN.replace('"sma_cross"', '"no_such"'), "unknown strategy 'no_such'"),
    ],
)
def test_a_bad_campaign_is_one_line_and_records_nothing(
    env: Path, tmp_path: Path, text: str | None, message: str
) -> None:
    path = tmp_path / "bad.toml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "eval", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], done.stderr
    db = tmp_path / "tradegraph.db"  # the tests' database (conftest)
    if db.exists():
        with sqlite3.connect(db) as con:
            assert con.execute("select count(*) from runs").fetchone() == (0,)
