"""`tradegraph check-lookahead`, `tg.check_lookahead` and `--warmup`: exit 2 with one line when nothing can be
checked, every usable bar by default, findings on two symbols, and the warm-up option of `sweep`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import agent as tg
from agent.backtest.lookahead import NoCutPoint
from agent.cli.main import app
from agent.db.session import open_db
from agent.errors import ConfigError
from agent.runs.catalog import list_runs
from strategies.base import FloatArray, Strategy

LEAKY_FILE = """
import numpy as np
from strategies.base import Strategy


class Leaky(Strategy):
    name = "leaky"

    def signal(self, candles):
        return (candles["close"].shift(-1) > candles["close"]).to_numpy(dtype=np.float64)
"""


class NextClosePeek(Strategy):
    """Leaky on purpose: long when the next close is higher (module level: the notebook API rebuilds it)."""

    name = "next_close_peek"

    def signal(self, candles: pd.DataFrame) -> FloatArray:
        """Uses close[t+1] at bar t."""
        return (candles["close"].shift(-1) > candles["close"]).to_numpy().astype(np.float64)


def _lookahead(*args: str) -> list[str]:
    return ["check-lookahead", "--strategy", *args]


def test_no_cut_point_exits_2_with_one_line_saying_why(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGRAPH_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli.main",
            *_lookahead("sma_cross", "--param", "slow=2000", "--symbols", "BTC/USDT,ETH/USDT", "-t", "1d"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env | {"TRADEGRAPH_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: no cut point on BTC/USDT: sma_cross(fast=20, slow=2000) needs 2000 bars of warm-up, but the "
        "data has 1825 bars (2020-09-20 to 2025-09-18), so nothing after a cut can be removed; give more "
        "history (an earlier --start, a longer --warmup) or use a shorter warm-up"
    ]
    assert "no look-ahead" not in proc.stdout


def test_warmup_decides_whether_a_short_window_can_be_checked() -> None:
    window = ["--symbol", "BTC/USDT", "-t", "1h", "--start", "2025-09-19"]  # 23 bars, sma_cross needs 50
    bare = CliRunner().invoke(app, _lookahead("sma_cross", *window, "--warmup", "0"))
    assert bare.exit_code == 2
    assert "no cut point on BTC/USDT" in bare.output and "needs 50 bars of warm-up" in bare.output
    auto = CliRunner().invoke(app, _lookahead("sma_cross", *window))
    assert auto.exit_code == 0, auto.output
    assert (
        "no look-ahead" in auto.output
        and "22 cut points" in auto.output
        and "every usable bar" in auto.output
    )
    bad = CliRunner().invoke(app, _lookahead("sma_cross", *window, "--warmup", "-1"))
    assert isinstance(bad.exception, ConfigError) and "--warmup -1" in str(bad.exception)


def test_builtins_are_checked_at_every_bar_by_default() -> None:
    result = CliRunner().invoke(app, _lookahead("macd", "--symbols", "BTC/USDT,ETH/USDT", "-t", "1d"))
    assert result.exit_code == 0, result.output
    usable = 1825 - 1 - (3 * 26 + 9)
    assert f"{2 * usable} cut points" in result.output and "every usable bar" in result.output


def test_a_leaky_file_is_flagged_on_two_symbols(tmp_path: Path) -> None:
    (tmp_path / "leaky.py").write_text(LEAKY_FILE)
    result = CliRunner().invoke(
        app, _lookahead("leaky.py:Leaky", "--symbols", "BTC/USDT,ETH/USDT", "-t", "1d", "--samples", "50")
    )
    assert result.exit_code == 1, result.output
    assert "look-ahead detected" in result.output and "of 100 cut points" in result.output
    assert "BTC/USDT" in result.output and "ETH/USDT" in result.output


def test_bad_samples_is_bad_input() -> None:
    result = CliRunner().invoke(app, _lookahead("sma_cross", "--samples", "0"))
    assert isinstance(result.exception, ConfigError) and "--samples 0" in str(result.exception)


def test_notebook_check_takes_a_warmup_and_flags_per_symbol() -> None:
    found = tg.check_lookahead(
        ["sma_cross", NextClosePeek], ["BTC/USDT", "ETH/USDT"], "1d", start="2025-06-01"
    )
    assert list(found["symbol"]) == ["BTC/USDT", "ETH/USDT"] * 2
    assert (found["cuts"] == found["usable"]).all() and (
        found["cuts"] == 109
    ).all()  # every bar in the window
    assert found["lookahead"].tolist() == [False, False, True, True]
    assert (found.loc[found["lookahead"], "first_decision"] == "target").all()
    with pytest.raises(NoCutPoint, match="needs 50 bars of warm-up, but the data has 18 bars"):
        tg.check_lookahead("sma_cross", "BTC/USDT", "1d", start="2025-09-01", warmup=0)
    with pytest.raises(ConfigError, match="warmup -3: must be >= 0"):
        tg.check_lookahead("sma_cross", "BTC/USDT", "1d", warmup=-3)


def test_sweep_takes_a_warmup_as_backtest_does(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tradegraph.db'}"
    args = ["sweep", "-s", "sma_cross", "--grid", "fast=5", "--grid", "slow=10,20", "--symbol", "BTC/USDT"]
    args += ["-t", "1h", "--start", "2025-01-01", "--end", "2025-02-01", "--workers", "1", "--warmup", "7"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    engine, factory = open_db(url)
    try:
        runs = list_runs(factory, limit=10)
    finally:
        engine.dispose()
    assert len(runs) == 2 and {r.config["warmup_bars"] for r in runs} == {7}
    bad = CliRunner().invoke(app, [*args[:-1], "-2"])
    assert isinstance(bad.exception, ConfigError) and "--warmup -2" in str(bad.exception)
