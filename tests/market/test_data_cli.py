"""`tradegraph data download | list | check`, in-process (CliRunner) and once as a real subprocess."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from agent.config import PROJECT_ROOT, SHARED_DIR
from agent.errors import ConfigError, DataError, TemporaryExchangeError
from agent.market.candles import read_feather, write_feather
from tests.market.helpers import HOUR_MS, independent_gaps, ms, shared_candles

runner = CliRunner()
SHARED_BTC = SHARED_DIR / "data" / "binance" / "BTC_USDT-1h.feather"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory holding a copy of the bundled sample, selected through TRADEGRAPH_DATA_DIR."""
    target = tmp_path / "data"
    shutil.copytree(PROJECT_ROOT / "data" / "binance", target / "binance")
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(target))
    return target


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port that is bound but not listening: connections to it are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def test_check_reports_the_ten_gaps_of_the_shared_btc_file_with_exact_spans():
    result = runner.invoke(app, ["data", "check", "--file", str(SHARED_BTC)])
    assert result.exit_code == 0, result.output
    expected = independent_gaps(shared_candles("BTC/USDT").index, "1h")
    gap_lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith("gap ")]
    assert gap_lines == [f"gap {a:%Y-%m-%d %H:%M} → {b:%Y-%m-%d %H:%M} ({n} missing)" for a, b, n in expected]
    assert "gaps: 10 (20 missing bars)" in result.output
    assert result.output.rstrip().endswith("usable")


def test_check_finds_a_symbol_where_load_candles_looks(data_dir):
    result = runner.invoke(app, ["data", "check", "--symbol", "ETH/USDT", "--timeframe", "1d"])
    assert result.exit_code == 0, result.output
    assert str(data_dir / "binance" / "ETH_USDT-1d.feather") in result.output
    assert "1825 rows of 1d" in result.output


def test_check_fails_on_invalid_candles_and_leaves_the_file_alone(tmp_path):
    bad = shared_candles("SOL/USDT").iloc[:100].copy()
    bad.iloc[5, bad.columns.get_loc("low")] = bad["high"].iloc[5] + 1
    path = tmp_path / "SOL_USDT-1h.feather"
    write_feather(pd.concat([bad, bad.iloc[:3]]), path)
    before = path.read_bytes()
    result = runner.invoke(app, ["data", "check", "--file", str(path)])
    assert result.exit_code == 1
    assert isinstance(result.exception, DataError)
    assert "3 duplicate timestamps" in str(result.exception) and "low > min(open, close)" in str(
        result.exception
    )
    assert "\n" not in str(result.exception)
    assert path.read_bytes() == before


def test_check_needs_exactly_one_of_symbol_or_file(tmp_path):
    result = runner.invoke(app, ["data", "check"])
    assert result.exit_code == 1 and isinstance(result.exception, ConfigError)
    missing = runner.invoke(app, ["data", "check", "--file", str(tmp_path / "nope.feather")])
    assert missing.exit_code == 1 and isinstance(missing.exception, DataError)


def test_download_through_the_emulator_then_list(emulator, data_dir):
    btc = shared_candles("BTC/USDT").iloc[-2000:]
    eth = shared_candles("ETH/USDT").iloc[-2000:]
    now = ms(btc.index[-1]) + HOUR_MS
    emu = emulator({"BTC/USDT": btc, "ETH/USDT": eth}, now_ms=now)
    env = {"TRADEGRAPH_EXCHANGE__API_URL": emu.url}
    args = [
        "data",
        "download",
        "--exchange",
        "binance",
        "--symbols",
        "BTC/USDT,ETH/USDT",
        "--timeframe",
        "1h",
        "--since",
        f"{btc.index[0]:%Y-%m-%d %H:%M}",
    ]

    result = runner.invoke(app, args, env=env)

    assert result.exit_code == 0, result.output
    for symbol, src in (("BTC/USDT", btc), ("ETH/USDT", eth)):
        stored = read_feather(data_dir / "store" / "binance" / f"{symbol.replace('/', '_')}-1h.feather")
        pd.testing.assert_frame_equal(stored, src)
        assert f"binance {symbol} 1h: +2000 bars in 2 requests" in result.output
    assert emu.count("/api/v3/klines") == 4

    listing = runner.invoke(app, ["data", "list"])
    assert listing.exit_code == 0, listing.output
    rows = [line for line in listing.output.splitlines() if "BTC/USDT" in line and " 1h " in line]
    assert len(rows) == 2  # downloaded and bundled
    assert "store" in rows[0] and "binance" in rows[0] and "2000" in rows[0]
    assert "bundled" in rows[1] and "8761" in rows[1]


def test_download_defaults_come_from_the_settings(data_dir):
    result = runner.invoke(
        app, ["data", "download", "--since", "2025-09-18"], env={"TRADEGRAPH_SYMBOLS": "SOL/USDT"}
    )
    assert result.exit_code == 0, result.output
    stored = read_feather(data_dir / "store" / "replay" / "SOL_USDT-1h.feather")
    bundled = read_feather(data_dir / "binance" / "SOL_USDT-1h.feather")
    pd.testing.assert_frame_equal(stored, bundled[bundled.index >= "2025-09-18"])


def test_download_rejects_bad_input_before_touching_anything(data_dir):
    result = runner.invoke(app, ["data", "download", "--timeframe", "2h", "--since", "2025-01-01"])
    assert result.exit_code == 1 and isinstance(result.exception, ConfigError)
    result = runner.invoke(app, ["data", "download", "--symbols", "BTCUSDT", "--since", "2025-01-01"])
    assert result.exit_code == 1 and isinstance(result.exception, ConfigError)
    assert not (data_dir / "store").exists()


def unreachable_env(data_dir: Path, port: int) -> dict[str, str]:
    return {
        "TRADEGRAPH_DATA_DIR": str(data_dir),
        "TRADEGRAPH_EXCHANGE__API_URL": f"http://127.0.0.1:{port}",
        "TRADEGRAPH_EXCHANGE__MAX_RETRIES": "1",
        "TRADEGRAPH_EXCHANGE__BACKOFF_BASE_S": "0",
    }


def existing_store_file(data_dir: Path) -> Path:
    path = data_dir / "store" / "binance" / "BTC_USDT-1h.feather"
    write_feather(shared_candles("BTC/USDT").iloc[:100], path)
    return path


def test_download_from_an_unreachable_exchange_fails_cleanly_in_process(data_dir, closed_port):
    path = existing_store_file(data_dir)
    before = path.read_bytes()
    result = runner.invoke(
        app,
        ["data", "download", "--exchange", "binance", "--symbols", "BTC/USDT"],
        env=unreachable_env(data_dir, closed_port),
    )
    assert result.exit_code == 1 and isinstance(result.exception, TemporaryExchangeError)
    assert path.read_bytes() == before


def test_download_from_an_unreachable_exchange_prints_one_line_as_a_real_process(
    data_dir, closed_port, tmp_path
):
    path = existing_store_file(data_dir)
    before = path.read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGRAPH_")}
    env.update(unreachable_env(data_dir, closed_port))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli.main",
            "data",
            "download",
            "--exchange",
            "binance",
            "--symbols",
            "BTC/USDT",
            "--timeframe",
            "1h",
            "--since",
            "2024-01-01",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: binance load_markets failed after 2 attempts:")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["BTC_USDT-1h.feather"]  # no temp files left


def test_list_shows_an_unreadable_file_instead_of_failing(data_dir):
    broken = data_dir / "store" / "binance" / "BTC_USDT-4h.feather"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not feather")
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.output and "ETH/USDT" in result.output


def test_list_with_nothing_stored_shows_the_bundled_sample(tmp_path, monkeypatch):
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(tmp_path / "empty"))
    result = runner.invoke(app, ["data", "list"])
    assert result.exit_code == 0, result.output
    rows = [line.split("│")[1:-1] for line in result.output.splitlines() if line.count("│") > 5]
    rows = [[cell.strip() for cell in row] for row in rows]
    bundled = sorted(p.stem for p in (PROJECT_ROOT / "data" / "binance").glob("*.feather"))
    assert sorted(f"{r[2].replace('/', '_')}-{r[3]}" for r in rows) == bundled
    assert {r[0] for r in rows} == {"bundled"} and "no candle files" not in result.output
