"""Where files go: tradegraph used from a folder outside the checkout keeps its database, downloads, reports
and logs together under that folder's `data/` (or the configured `data_dir`), records absolute report
paths, and finds the bundled sample through the same fallback on every path."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from agent.cli import main as cli
from agent.cli.main import app
from agent.config import DEFAULT_DATA_DIR, load_settings
from agent.db.models import Run
from agent.db.session import open_db
from agent.market.candles import read_feather
from agent.testing.exchange_emulator import ExchangeEmulator

runner = CliRunner()


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder outside the checkout, with no configuration and the default database."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("TRADEGRAPH_DATABASE_URL")  # the autouse fixture's; here the default is under test
    return folder


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["tradegraph", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    captured = capsys.readouterr()
    return int(done.value.code or 0), captured.out + captured.err


def _report_paths(db: Path) -> list[str]:
    engine, factory = open_db(f"sqlite:///{db}")
    try:
        with factory() as session:
            return [
                str(p) for p in session.scalars(select(Run.report_path).where(Run.report_path.is_not(None)))
            ]
    finally:
        engine.dispose()


def test_everything_a_command_writes_is_under_the_working_folders_data(
    work: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: Callable[..., ExchangeEmulator],
) -> None:
    home = work / "data"
    args = ["backtest", "--strategy", "sma_cross", "--symbol", "BTC/USDT", "--timeframe", "1d", "--start",
            "2024-01-01"]  # fmt: skip
    bt = runner.invoke(app, args)
    assert bt.exit_code == 0, bt.output
    report = Path(bt.output.split("report: ")[1].split()[0])
    assert report.is_absolute() and report.is_file() and report.parent.parent == home / "reports"
    assert _report_paths(home / "tradegraph.db") == [str(report)]

    args = ["run", "--replay", "--speed", "360000", "--start", "2025-09-19 17:00", "--strategy", "sma_cross",
            "-p", "fast=5", "-p", "slow=20"]  # fmt: skip
    code, out = _main(monkeypatch, capsys, *args)
    assert code == 0, out
    assert "daemon" in (home / "logs" / "daemon.log").read_text()

    emu = emulator(
        {"BTC/USDT": read_feather(DEFAULT_DATA_DIR / "binance" / "BTC_USDT-1h.feather").iloc[-50:]}
    )
    monkeypatch.setenv("TRADEGRAPH_EXCHANGE__API_URL", emu.url)
    got = runner.invoke(app, ["data", "download", "--exchange", "binance", "--symbols", "BTC/USDT",
                              "--since", "2025-09-18"])  # fmt: skip
    assert got.exit_code == 0, got.output
    assert (home / "store" / "binance" / "BTC_USDT-1h.feather").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["data"], "nothing lands beside data/"
    assert {p.name for p in home.iterdir()} <= {"tradegraph.db", "reports", "logs", "store"} | {
        p.name for p in home.glob("tradegraph.db*")
    }


def test_a_configured_data_dir_holds_the_reports_too(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (work / "tradegraph.toml").write_text('data_dir = "../state"\n')
    state = (work / ".." / "state").resolve()
    assert load_settings().data_dir.resolve() == state
    args = ["backtest", "--strategy", "sma_cross", "--symbol", "ETH/USDT", "--timeframe", "1d", "--start",
            "2025-01-01"]  # fmt: skip
    bt = runner.invoke(app, args)
    assert bt.exit_code == 0, bt.output
    (path,) = _report_paths(state / "tradegraph.db")
    assert Path(path).is_absolute() and Path(path).resolve().is_relative_to(state / "reports")
    assert not (work / "data").exists() and not (work / "reports").exists()
