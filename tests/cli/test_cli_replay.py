"""`tradegraph run --replay` ends with a summary of what it did; its logs and `status` show bar times as UTC
dates; `status --watch` refreshes until Ctrl-C (or `--count`)."""

from __future__ import annotations

import re
import sys

import pytest
from typer.testing import CliRunner

from agent.cli import main as cli
from agent.daemon import status as status_module
from tests.daemon.helpers import DATA_END, HOUR, SMA, data_dir, iso, ledger

EPOCH_MS = re.compile(r"(?<![\d.])1[5-9]\d{11}(?!\d)")
"""A 13-digit epoch-millisecond time (2017..2033)."""
START = DATA_END - 24 * HOUR


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str, str]:
    """One day replayed by `tradegraph run --replay` in this process: (db url, run id, stdout, stderr)."""
    folder = data_dir(tmp_path_factory.mktemp("replay"))
    url = f"sqlite:///{folder / 'tradegraph.db'}"
    env = {
        "TRADEGRAPH_DATA_DIR": str(folder),
        "TRADEGRAPH_DATABASE_URL": url,
        "TRADEGRAPH_SYMBOLS": "BTC/USDT,ETH/USDT",
        "TRADEGRAPH_STRATEGY": "sma_cross",
        "TRADEGRAPH_TIMEFRAME": "1h",
        "TRADEGRAPH_RISK__COOLDOWN_BARS": "1",
    }
    args = ["run", "--replay", "--speed", "1e9", "--start", iso(START), "--run-id", "cli-replay"]
    args += ["-p", f"fast={SMA['fast']}", "-p", f"slow={SMA['slow']}"]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    return url, "cli-replay", result.stdout, result.stderr


def test_a_replay_ends_with_a_summary_of_bars_decisions_fills_return_and_equity(
    replayed: tuple[str, str, str, str],
) -> None:
    url, run_id, out, _ = replayed
    book = ledger(url, run_id)
    bars, fills = len(book["balances"]), len(book["fills"])
    final = book["balances"][-1][2]
    (line,) = [line for line in out.splitlines() if line.startswith("replay summary:")]
    assert f"{bars} bars (2025-09-18 23:00 to 2025-09-19 22:00 UTC)" in line
    assert f"{2 * bars} decisions, {fills} fills" in line  # two symbols, one decision each per bar
    assert f"final equity {final:,.2f}" in line and re.search(r"return [+-]\d+\.\d\d%", line), line
    assert bars == 24 and fills > 0


def test_logs_and_the_stop_line_show_bar_times_as_utc_dates_never_epoch_ms(
    replayed: tuple[str, str, str, str],
) -> None:
    _, _, out, err = replayed
    assert "bar_ts=2025-09-19T22:00Z" in err and "last bar 2025-09-19T22:00Z" in err
    assert not EPOCH_MS.search(out), out
    assert not EPOCH_MS.search(err), [line for line in err.splitlines() if EPOCH_MS.search(line)][:3]
    assert "last bar 2025-09-19 22:00 UTC" in out


def test_status_watch_refreshes_until_its_count(
    replayed: tuple[str, str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, run_id, _, _ = replayed
    reads: list[int] = []
    real = status_module.read_status

    def counted(*args: object, **kwargs: object) -> status_module.DaemonStatus:
        reads.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(status_module, "read_status", counted)
    env = {"TRADEGRAPH_DATABASE_URL": url, "COLUMNS": "120"}
    result = CliRunner().invoke(cli.app, ["status", "--watch", "--interval", "0", "--count", "3"], env=env)
    assert result.exit_code == 0, result.output
    assert len(reads) == 3
    assert run_id in result.output and "stopped" in result.output
    assert not EPOCH_MS.search(result.output)


def test_status_watch_ends_quietly_on_ctrl_c(
    replayed: tuple[str, str, str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, run_id, _, _ = replayed
    reads: list[int] = []
    real = status_module.read_status

    def interrupted(*args: object, **kwargs: object) -> status_module.DaemonStatus:
        reads.append(1)
        if len(reads) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(status_module, "read_status", interrupted)
    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", url)
    monkeypatch.setattr(sys, "argv", ["tradegraph", "status", "--watch", "--interval", "0"])
    with pytest.raises(SystemExit) as done:
        cli.main()
    captured = capsys.readouterr()
    assert done.value.code in (0, None) and "interrupted" not in captured.err
    assert len(reads) == 2 and run_id in captured.out


def test_status_watch_refuses_a_negative_interval() -> None:
    result = CliRunner().invoke(cli.app, ["status", "--watch", "--interval", "-1"])
    assert result.exit_code == 2


@pytest.mark.parametrize("command", [["status"], ["decisions"], ["portfolio"]])
def test_the_run_views_fit_120_columns(replayed: tuple[str, str, str, str], command: list[str]) -> None:
    url, run_id, _, _ = replayed
    args = [*command, "--run-id", run_id]
    result = CliRunner().invoke(cli.app, args, env={"TRADEGRAPH_DATABASE_URL": url, "COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert max(len(line.rstrip()) for line in result.output.splitlines()) <= 120
    assert "BTC/US…" not in result.output and not EPOCH_MS.search(result.output)
    if command != ["portfolio"]:
        assert "BTC/USDT" in result.output and "ETH/USDT" in result.output
