"""`tradegraph run` refuses bad input with one `error:` line and leaves no database behind;
`tradegraph status` shows the daemon's state, account, positions, decisions and problems; the run id is
stable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import main as cli
from agent.config import Settings
from agent.daemon import Daemon, DaemonOptions
from agent.daemon.clock import SystemClock
from agent.daemon.lease import Holder, Lease
from agent.daemon.plan import Window, default_run_id, replay_window
from agent.db.session import open_db
from agent.errors import ConfigError, DataError
from agent.market.replay import ReplayExchange
from tests.daemon.helpers import DATA_END, HOUR, SMA, FlakyExchange, data_dir, iso, settings


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["tradegraph", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return int(done.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "error: exchange.id is 'replay': add --replay to replay the bundled data"),
        (["--replay", "--speed", "0"], "error: --speed must be positive (got 0)"),
        (["--replay", "--strategy", "nope"], "error: unknown strategy 'nope'"),
        (["--replay", "-p", "fast=50", "-p", "slow=20"], "error: sma_cross: fast (50) must be below slow"),
        (["--replay", "--start", "2030-01-01"], "error: nothing to replay: start 2030-01-01 00:00 is not"),
        (["--replay", "--start", "2001-01-01"], "error: --start 2001-01-01 00:00 is before the bundled data"),
        (["--replay", "--run-id", "no spaces!"], "error: invalid --run-id 'no spaces!'"),
        (["--replay", "--log-format", "xml"], "error: invalid --log-format 'xml': use text or json"),
        (["--start", "2025-01-01"], "error: --start and --end apply to --replay only"),
    ],
)
def test_bad_input_is_one_error_line_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    folder = data_dir(tmp_path)
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(folder))
    monkeypatch.delenv("TRADEGRAPH_DATABASE_URL")  # the default database, in the data directory
    monkeypatch.setenv("TRADEGRAPH_STRATEGY", "sma_cross")
    code, err = _main(monkeypatch, capsys, "run", *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith(message), err
    assert not (folder / "tradegraph.db").exists() and not (folder / "store").exists()


def test_status_shows_state_account_decisions_and_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = data_dir(tmp_path)
    url = f"sqlite:///{folder / 'tradegraph.db'}"
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(folder))
    monkeypatch.delenv("TRADEGRAPH_DATABASE_URL")  # the default database, in the data directory
    monkeypatch.setenv("COLUMNS", "250")
    result = CliRunner().invoke(cli.app, ["status"])
    assert result.exit_code == 0 and "no daemon has run on this database" in result.output

    cfg = settings(folder, None, exchange={"max_retries": 0, "backoff_base_s": 0.0})
    flaky = FlakyExchange(ReplayExchange(folder), rate=0.2, seed=3)
    options = DaemonOptions(
        replay=True, speed=3600 * 40, start=iso(DATA_END - 40 * HOUR), params=SMA, run_id="shown"
    )
    assert Daemon(cfg, options, exchange=flaky).run().finished
    result = CliRunner().invoke(cli.app, ["status"])
    out = result.output
    assert result.exit_code == 0, out
    assert _row(out, "state") == "stopped" and _row(out, "run") == "shown"
    assert _row(out, "note") == "replay finished"
    assert _row(out, "last tick") == "bar 2025-09-19 22:00 UTC: done"
    for text in (
        "Account",
        "after bar",
        "2025-09-19 22:00 UTC",
        "Latest decisions",
        "BTC/USDT",
        "ETH/USDT",
        "rule",
        "Recent skips and errors",
        "skipped",
        "NetworkError: injected network fault",
    ):
        assert text in out, f"{text!r} missing from:\n{out}"

    engine, factory = open_db(url)
    try:  # a live daemon holds the lease: its process and next wake-up; the last bar's skips degrade it
        lease = Lease(factory, Holder("me", "host-a", 4242), 30)
        lease.acquire("shown", "replay")
        lease.heartbeat(next_tick_ms=SystemClock().now_ms() + 60_000, clock_ms=DATA_END)
        out = CliRunner().invoke(cli.app, ["status", "--limit", "2"]).output
        assert _row(out, "process") == "pid 4242 on host-a"
        # Which bars the injected faults hit depends on how the wake-ups fell on the replay clock (real
        # time): degraded when one of the last 2 bars failed, else alive (the rule: tests/daemon/test_health)
        recent_failure = "trading resumed after a failure within the last 2 bars" in out
        assert _row(out, "state") == ("degraded" if recent_failure else "alive"), out
        if recent_failure:  # the last error is shown only while it explains a state other than alive
            assert "NetworkError: injected network fault" in _row(out, "last error")
        else:
            assert "last error" not in out, out
        assert _row(out, "next wake-up").endswith("UTC") and _row(out, "clock") == "2025-09-19 23:00:00 UTC"
    finally:
        engine.dispose()


def _row(out: str, key: str) -> str:
    """The value cell of the Daemon table's row `key`."""
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0] == key:
            return cells[1]
    raise AssertionError(f"no row {key!r} in:\n{out}")


def test_the_default_run_id_is_stable_and_follows_what_defines_the_run(tmp_path: Path) -> None:
    cfg = Settings(symbols=["BTC/USDT"], strategy="sma_cross")
    window = Window(1, 2)
    rid = default_run_id(cfg, "sma_cross", SMA, "replay", window)
    assert rid == default_run_id(cfg, "sma_cross", dict(reversed(SMA.items())), "replay", window)
    assert rid.startswith("replay-smacross-") and len(rid) <= 32
    others = {
        default_run_id(cfg, "sma_cross", {"fast": 6, "slow": 20}, "replay", window),
        default_run_id(cfg, "ema_cross", SMA, "replay", window),
        default_run_id(Settings(symbols=["ETH/USDT"]), "sma_cross", SMA, "replay", window),
        default_run_id(cfg, "sma_cross", SMA, "replay", Window(1, 3)),
        default_run_id(cfg, "sma_cross", SMA, "live", None),
    }
    assert rid not in others and len(others) == 5
    live = default_run_id(cfg, "strategies/my_file.py:Mine", SMA, "live", Window(5))
    assert live == default_run_id(cfg, "strategies/my_file.py:Mine", SMA, "live", Window(9))  # a restart
    assert live.startswith("live-myfile-")


def test_replay_window_defaults_and_alignment(tmp_path: Path) -> None:
    folder = data_dir(tmp_path)
    symbols = ["BTC/USDT", "ETH/USDT"]
    assert replay_window(folder, symbols, "1h", None, None) == Window(DATA_END - 30 * 24 * HOUR, DATA_END)
    assert replay_window(folder, symbols, "1h", "2025-09-19 10:30", "2030-01-01") == Window(
        DATA_END - 12 * HOUR, DATA_END
    )  # start rounded up to the next bar, end capped at the data
    with pytest.raises(DataError, match="no bundled 1h candles for DOGE/USDT"):
        replay_window(folder, ["DOGE/USDT"], "1h", None, None)
    with pytest.raises(ConfigError):
        replay_window(folder, symbols, "1h", "2025-09-19", "2025-09-19")
