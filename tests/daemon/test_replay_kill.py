"""Crash safety: a replay over 300 bars, SIGKILLed at 10 seeded random moments and restarted each time, ends
with exactly the ledger of an uninterrupted run — every bar processed once, no client order id repeated.

The killed daemon is a real subprocess (`python -m agent.cli.main run --replay ...`) on a SQLite file; the
uninterrupted reference runs the same daemon code in this process, in a thread, at the same time. The test
synchronises on database state (the number of balance snapshots), never on sleeps.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from agent.daemon import Daemon, DaemonOptions, DaemonResult
from tests.daemon.helpers import (
    DATA_END,
    HOUR,
    SMA,
    data_dir,
    iso,
    journal_rows,
    ledger,
    replay_command,
    settings,
    wait_for,
)

BARS = 300
KILLS = 10
SEED = 20250919
SPEED = 3600 * 200
START = DATA_END - BARS * HOUR
RUN_ID = "kill-replay"
SYMBOLS = ["BTC/USDT"]  # one symbol keeps the 2 x 300 ticks cheap; process start-up dominates anyway


def _env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGRAPH_")}
    env.update(
        {
            "TRADEGRAPH_SYMBOLS": ",".join(SYMBOLS),
            "TRADEGRAPH_STRATEGY": "sma_cross",
            "TRADEGRAPH_TIMEFRAME": "1h",
            "TRADEGRAPH_DATA_DIR": str(folder),
            "TRADEGRAPH_RISK__COOLDOWN_BARS": "1",
        }
    )
    return env


def _start(folder: Path, log: Path) -> subprocess.Popen[bytes]:
    command = replay_command(
        "--speed", str(SPEED), "--start", iso(START), "--run-id", RUN_ID, "--log-format", "json"
    )
    with log.open("ab") as err:
        return subprocess.Popen(command, cwd=folder.parent, env=_env(folder), stdout=err, stderr=err)


def _snapshots(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            query = "SELECT count(*) FROM balance_snapshots WHERE run_id = ?"
            row = conn.execute(query, (RUN_ID,)).fetchone()
            return int(row[0])
    except sqlite3.Error:
        return 0  # not created yet, or busy: ask again


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sigkill_at_random_moments_and_restart_gives_the_uninterrupted_ledger(tmp_path: Path) -> None:
    reference: dict[str, DaemonResult] = {}
    ref_folder = data_dir(tmp_path / "reference")
    ref_url = f"sqlite:///{ref_folder / 'tradegraph.db'}"

    def uninterrupted() -> None:
        options = DaemonOptions(replay=True, speed=SPEED, start=iso(START), params=SMA, run_id=RUN_ID)
        reference["result"] = Daemon(settings(ref_folder, ref_url, symbols=SYMBOLS), options).run()

    thread = threading.Thread(target=uninterrupted, name="reference-daemon")
    thread.start()

    folder = data_dir(tmp_path / "killed")
    db = folder / "tradegraph.db"
    log = tmp_path / "daemon.log"
    kill_at = sorted(random.Random(SEED).sample(range(5, BARS - 5), KILLS))
    killed_at = []
    for target in kill_at:
        proc = _start(folder, log)

        def reached(target: int = target, proc: subprocess.Popen[bytes] = proc) -> bool:
            assert proc.poll() is None, f"daemon exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
            return _snapshots(db) >= target

        wait_for(reached, 120, f"{target} processed bars")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at.append(_snapshots(db))
    proc = _start(folder, log)
    assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    thread.join(timeout=180)
    assert not thread.is_alive() and reference["result"].finished

    url = f"sqlite:///{db}"
    expected = [START + i * HOUR for i in range(BARS)]
    book, ref = ledger(url, RUN_ID), ledger(ref_url, RUN_ID)
    assert [b[0] for b in book["balances"]] == expected, "one balance snapshot per bar, no gaps"
    ids = [o[0] for o in book["orders"]]
    assert ids and len(ids) == len(set(ids)), "no client order id repeats"
    assert book == ref
    assert len(book["fills"]) >= 4
    assert all(a < b for a, b in zip(killed_at, killed_at[1:], strict=False)) and killed_at[-1] < BARS

    rows = journal_rows(url, RUN_ID)
    ticked = Counter(bar for bar, status, _ in rows if status in ("done", "resumed"))
    assert max(ticked.values()) == 1 and set(ticked) <= set(expected)
    assert not [r for r in rows if r[1] == "error"]
    assert b'"event": "started"' in log.read_bytes() and b"lease taken over" in log.read_bytes()
