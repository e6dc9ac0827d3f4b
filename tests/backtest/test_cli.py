"""`tradegraph backtest | sweep | check-lookahead | runs` end to end, and their one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from agent.db.session import open_db
from agent.errors import ConfigError, DataError, StrategyError, TradegraphError
from agent.runs.catalog import list_runs

WINDOW = ["--timeframe", "1h", "--start", "2025-01-01", "--end", "2025-03-01"]

LEAKY = """
import numpy as np
from strategies.base import Strategy


class Leaky(Strategy):
    name = "leaky"

    def signal(self, candles):
        close = candles["close"].to_numpy()
        out = np.zeros(len(close))
        out[:-1] = close[1:] > close[:-1]
        return out
"""


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", url)
    return url


def _runs(url: str) -> list:
    engine, factory = open_db(url)
    try:
        return list_runs(factory, limit=100)
    finally:
        engine.dispose()


def test_backtest_prints_summary_writes_report_and_records_the_run(db: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "--strategy",
            "sma_cross",
            "--symbol",
            "BTC/USDT",
            *WINDOW,
            "--param",
            "fast=10",
            "--param",
            "slow=30",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "buy & hold" in result.output and "Sharpe" in result.output
    report = tmp_path / result.output.split("report: ")[1].strip()
    assert (
        report.exists()
        and (report.parent / "equity.png").exists()
        and (report.parent / "trades.csv").exists()
    )
    (run,) = _runs(db)
    assert (run.kind, run.status, run.strategy, run.symbols, run.timeframe) == (
        "backtest",
        "done",
        "sma_cross",
        ["BTC/USDT"],
        "1h",
    )
    assert run.params["fast"] == 10 and run.metrics["buy_and_hold"]["total_return"] is not None
    assert run.start_ts == 1735689600000 and run.report_path == str(report)  # absolute, under data_dir
    assert report.is_relative_to(tmp_path / "data" / "reports")


def test_several_symbols_then_runs_list_and_show(db: str) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "backtest",
            "-s",
            "rsi_reversion",
            "--symbols",
            "BTC/USDT,ETH/USDT",
            *WINDOW,
            "--no-report",
            "--fill",
            "same_close",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "report:" not in result.output
    (run,) = _runs(db)
    assert run.symbols == ["BTC/USDT", "ETH/USDT"] and run.config["engine"]["fill"] == "same_close"
    listed = runner.invoke(app, ["runs", "list"])
    assert listed.exit_code == 0 and run.id[:10] in listed.output
    shown = runner.invoke(app, ["runs", "show", run.id])
    assert shown.exit_code == 0 and "rsi_reversion" in shown.output and "max drawdown" in shown.output


def test_sweep_skips_invalid_combinations_ranks_and_warns(db: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            "sweep",
            "--strategy",
            "sma_cross",
            "--grid",
            "fast=5,10",
            "--grid",
            "slow=10,20",
            "--symbol",
            "BTC/USDT",
            *WINDOW,
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3 trials (grid), 1 invalid grid combinations skipped" in result.output
    assert "best of 3 trials" in result.output and "selection bias" in result.output
    runs = _runs(db)
    assert len(runs) == 3 and {r.kind for r in runs} == {"sweep"}
    assert sorted(r.config["rank"] for r in runs) == [1, 2, 3]


def test_check_lookahead_passes_builtins_and_fails_a_leaky_file(tmp_path: Path) -> None:
    ok = CliRunner().invoke(
        app, ["check-lookahead", "--strategy", "donchian_breakout", "--symbol", "BTC/USDT"]
    )
    assert ok.exit_code == 0 and "no look-ahead" in ok.output
    (tmp_path / "leaky.py").write_text(LEAKY)
    bad = CliRunner().invoke(app, ["check-lookahead", "--strategy", "leaky.py:Leaky", "--symbol", "BTC/USDT"])
    assert bad.exit_code == 1 and "look-ahead detected" in bad.output


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (["--strategy", "nope"], StrategyError, "unknown strategy 'nope'"),
        (["--strategy", "sma_cross", "--param", "fast=x"], StrategyError, "invalid parameter fast='x'"),
        (
            ["--strategy", "sma_cross", "--param", "fast=60"],
            StrategyError,
            "fast (60) must be below slow (50)",
        ),
        (
            ["--strategy", "sma_cross", "--start", "2025-02-01", "--end", "2025-01-01"],
            ConfigError,
            "empty date range",
        ),
        (
            ["--strategy", "sma_cross", "--start", "2021-01-01", "--end", "2021-02-01"],
            DataError,
            "no 1h candles for BTC/USDT between 2021-01-01 and 2021-02-01; the data covers 2024-09-19",
        ),
        (["--strategy", "sma_cross", "--symbol", "DOGE/USDT"], DataError, "no 1h candles for DOGE/USDT"),
        (["--strategy", "sma_cross", "--fee", "5"], ConfigError, "--fee 5.0: must be a rate"),
    ],
)
def test_bad_input_is_one_line_exit_1_and_writes_nothing(
    db: str, tmp_path: Path, args: list[str], error: type, message: str
) -> None:
    argv = ["backtest", *args] if "--symbol" in args else ["backtest", "--symbol", "BTC/USDT", *args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1
    assert isinstance(result.exception, error) and isinstance(result.exception, TradegraphError)
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert not (tmp_path / "reports").exists()
    assert not Path(db.removeprefix("sqlite:///")).exists()


def test_bad_input_as_a_real_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGRAPH_")}
    env["TRADEGRAPH_DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli.main",
            "backtest",
            "--strategy",
            "sma_cross",
            "--symbol",
            "BTC/USDT",
            "--start",
            "2025-02-01",
            "--end",
            "2025-01-01",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: empty date range: --start 2025-02-01 is not before --end 2025-01-01"
    ]
    assert proc.stdout == ""
