"""`tradegraph data download`: retried requests show as progress and in the symbol's result line, not as
log lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.progress import Progress
from typer.testing import CliRunner

from agent.cli.data_cmd import RetryProgress
from agent.cli.main import app
from agent.testing.exchange_emulator import ExchangeEmulator, Fault
from tests.market.helpers import HOUR_MS, ms, shared_candles


def test_a_download_that_needed_retries_says_how_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    btc = shared_candles("BTC/USDT").iloc[-600:]
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(tmp_path / "data"))
    with ExchangeEmulator({"BTC/USDT": btc}, now_ms=ms(btc.index[-1]) + HOUR_MS) as emu:
        emu.push("/api/v3/klines", Fault.server_error(503), Fault.too_many_requests())
        env = {
            "TRADEGRAPH_EXCHANGE__API_URL": emu.url,
            "TRADEGRAPH_EXCHANGE__BACKOFF_BASE_S": "0",
            "COLUMNS": "200",
        }
        args = ["data", "download", "--exchange", "binance", "--symbols", "BTC/USDT", "--timeframe", "1h"]
        result = CliRunner().invoke(app, [*args, "--since", f"{btc.index[0]:%Y-%m-%d %H:%M}"], env=env)
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("binance BTC/USDT 1h")]
    assert "+600 bars in 1 requests (2 retries)" in line, line
    assert "ExchangeNotAvailable" not in result.output and "Traceback" not in result.output


def test_retry_waits_are_shown_in_the_progress_line_and_then_counted() -> None:
    waits: list[float] = []
    progress = Progress()
    task = progress.add_task("binance BTC/USDT 1h", total=None)
    retries = RetryProgress(progress, sleep=waits.append)
    retries.start(task, "binance BTC/USDT 1h")
    retries.sleep(1.25)
    assert waits == [1.25]
    assert progress.tasks[0].description.endswith("retry 1, waiting 1.2 s[/]")
    retries.sleep(2.5)
    retries.page()
    assert progress.tasks[0].description == "binance BTC/USDT 1h (2 retried)" and retries.count == 2
    retries.start(task, "binance ETH/USDT 1h")
    assert retries.count == 0
