"""Dates on the command line are ISO 8601 only: `01/02/2025` is refused (one line, exit 2), never read as
2 January or 1 February."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from agent.cli import main as cli
from agent.cli.dates import is_iso
from tests.daemon.helpers import data_dir


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = data_dir(tmp_path)
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(folder))
    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", f"sqlite:///{folder / 'tradegraph.db'}")
    monkeypatch.setenv("TRADEGRAPH_STRATEGY", "sma_cross")
    return folder


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["tradegraph", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return int(done.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "option", "value"),
    [
        (["backtest", "-s", "sma_cross", "--symbol", "BTC/USDT", "--start"], "--start", "01/02/2025"),
        (["backtest", "-s", "sma_cross", "--symbol", "BTC/USDT", "--end"], "--end", "2025/01/02"),
        (["sweep", "-s", "sma_cross", "--grid", "fast=5,10", "--start"], "--start", "2 Jan 2025"),
        (["check-lookahead", "-s", "sma_cross", "--end"], "--end", "01-02-2025"),
        (["run", "--replay", "--start"], "--start", "01/02/2025"),
        (["run", "--replay", "--end"], "--end", "yesterday"),
        (["tick", "--at"], "--at", "01/02/2025 10:00"),
        (["data", "download", "--symbols", "BTC/USDT", "--since"], "--since", "01/02/2025"),
        (["data", "download", "--symbols", "BTC/USDT", "--until"], "--until", "20250102"),
    ],
)
def test_a_date_not_in_iso_form_is_refused_with_one_line_and_exit_2(
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    option: str,
    value: str,
) -> None:
    code, err = _main(monkeypatch, capsys, *args, value)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {option} {value!r} is not an ISO date; use YYYY-MM-DD")
    assert not (env / "tradegraph.db").exists() and not (env / "store").exists()


def test_iso_dates_are_accepted(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    args = ["backtest", "-s", "sma_cross", "--symbol", "BTC/USDT", "--no-report"]
    for start, end in (("2025-09-01", "2025-09-10"), ("2025-09-01 00:00", "2025-09-10T00:00:00Z")):
        result = CliRunner().invoke(cli.app, [*args, "--start", start, "--end", end])
        assert result.exit_code == 0, result.output
        assert "2025-09-01 00:00 to 2025-09-09 23:00 UTC" in result.output  # the window's first and last bar


@given(st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)), st.booleans())
def test_every_iso_timestamp_is_accepted(when: datetime, aware: bool) -> None:
    value = when.replace(tzinfo=UTC) if aware else when
    assert is_iso(value.isoformat()) and is_iso(value.date().isoformat())
    assert is_iso(value.isoformat(sep=" ", timespec="minutes"))


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1)))
def test_no_day_or_month_first_form_is_accepted(day: date) -> None:
    for text in (
        f"{day:%m/%d/%Y}",
        f"{day:%d/%m/%Y}",
        f"{day:%d-%m-%Y}",
        f"{day:%d.%m.%Y}",
        f"{day:%Y/%m/%d}",
    ):
        assert not is_iso(text), text
    assert not is_iso(f"{day:%Y%m%d}")  # the basic form (no dashes) is refused too
