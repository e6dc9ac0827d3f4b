"""Process behaviour of `tradegraph run`: a second daemon on the same database is refused at once with one
line; SIGTERM and SIGINT end the daemon within 5 s, releasing its lease; a restart continues the run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.daemon.lease import LeaseInfo, read_lease
from agent.db.session import make_engine
from tests.daemon.helpers import DATA_END, HOUR, data_dir, iso, ledger, replay_command, wait_for

SPEED = 3600 * 20
START = DATA_END - 3000 * HOUR  # far more bars than the test lets the daemon reach
STOP_BOUND_S = 30.0
"""A hang detector, not a speed figure: ignoring the signal would replay ~150 s more. The time is printed
(about 1 s on a quiet machine, 12 s seen under load 11 on two cores); speed belongs in benchmarks/."""


def _command() -> list[str]:
    return replay_command(
        "--speed", str(SPEED), "--start", iso(START), "--run-id", "stop-test", "--lease-ttl", "60"
    )


def _start(folder: Path, out: Path, err: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGRAPH_")}
    env.update(
        {
            "TRADEGRAPH_SYMBOLS": "BTC/USDT,ETH/USDT",
            "TRADEGRAPH_STRATEGY": "sma_cross",
            "TRADEGRAPH_DATA_DIR": str(folder),
        }
    )
    with out.open("wb") as o, err.open("wb") as e:
        return subprocess.Popen(_command(), cwd=folder.parent, env=env, stdout=o, stderr=e)


def _lease(url: str) -> LeaseInfo | None:
    from sqlalchemy.orm import sessionmaker

    engine = make_engine(url)
    try:
        return read_lease(sessionmaker(engine))
    except Exception:  # noqa: BLE001 - the schema may not exist yet
        return None
    finally:
        engine.dispose()


def _bars(url: str) -> int:
    try:
        return len(ledger(url, "stop-test")["balances"])
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def _running(url: str, proc: subprocess.Popen[bytes], err: Path, after: int) -> bool:
    assert proc.poll() is None, f"daemon exited early ({proc.returncode}):\n{err.read_text()[-3000:]}"
    lease = _lease(url)
    return lease is not None and lease.pid == proc.pid and lease.holder is not None and _bars(url) > after


def _stop(proc: subprocess.Popen[bytes], sig: signal.Signals) -> float:
    began = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout=30)
    return time.monotonic() - began


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_second_daemon_refused_and_signals_stop_the_daemon(tmp_path: Path) -> None:
    folder = data_dir(tmp_path)
    url = f"sqlite:///{folder / 'tradegraph.db'}"
    first = _start(folder, tmp_path / "a.out", tmp_path / "a.err")
    try:
        wait_for(lambda: _running(url, first, tmp_path / "a.err", 2), 120, "the first daemon to tick")

        second = _start(folder, tmp_path / "b.out", tmp_path / "b.err")
        assert second.wait(timeout=120) == 1
        lines = (tmp_path / "b.err").read_text().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: another daemon holds this database's lease")
        assert f"pid {first.pid}" in lines[0]
        assert first.poll() is None and _lease(url).pid == first.pid  # type: ignore[union-attr]

        bars = _bars(url)
        wait_for(lambda: _running(url, first, tmp_path / "a.err", bars), 60, "the first daemon to go on")
        took = _stop(first, signal.SIGTERM)
        print(f"SIGTERM to exit: {took:.2f} s")
        assert first.returncode == 0, (tmp_path / "a.err").read_text()[-3000:]
        assert took < STOP_BOUND_S, f"SIGTERM took {took:.2f} s"
    finally:
        if first.poll() is None:
            first.kill()
    lease = _lease(url)
    assert lease is not None and lease.holder is None and lease.note == "SIGTERM"
    assert "stopped (SIGTERM): run stop-test" in (tmp_path / "a.out").read_text()
    stopped_at = _bars(url)

    again = _start(folder, tmp_path / "c.out", tmp_path / "c.err")
    try:
        wait_for(lambda: _running(url, again, tmp_path / "c.err", stopped_at + 2), 120, "the restart to tick")
        took = _stop(again, signal.SIGINT)
        print(f"SIGINT to exit: {took:.2f} s")
        assert again.returncode == 0 and took < STOP_BOUND_S, f"SIGINT: code {again.returncode}, {took:.2f} s"
    finally:
        if again.poll() is None:
            again.kill()
    book = ledger(url, "stop-test")
    bars = [b[0] for b in book["balances"]]
    assert bars == [START + i * HOUR for i in range(len(bars))], "the restart continued without gap or repeat"
    assert _lease(url).note == "SIGINT"  # type: ignore[union-attr]
