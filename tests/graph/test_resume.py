"""An agent backtest killed with SIGKILL mid-tick and run again ends with the uninterrupted run's ledger: the
interrupted bar is processed again from scratch (agent backtests keep no mid-tick checkpoints; the answers it
had are served from the cache), no duplicate order. The daemon's mid-tick checkpoint resume is tested in
tests/daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from agent.db.session import open_db
from agent.testing.vllm_emulator import VLLMEmulator
from tests.graph.helpers import assert_ledger_identities, ledger

BARS = 30
REPO = Path(__file__).resolve().parents[2]


def _child(db_url: str, base_url: str, run_id: str, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.graph.agent_child", db_url, base_url, run_id, str(BARS), str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_tick_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    killed_db = f"sqlite:///{tmp_path / 'killed.db'}"
    clean_db = f"sqlite:///{tmp_path / 'clean.db'}"
    with VLLMEmulator(latency_s=0.0, max_num_seqs=8, max_model_len=32768) as emu:
        clean = _child(clean_db, emu.base_url, "run-a", tmp_path)
        assert clean.wait(timeout=600) == 0, clean.stderr.read() if clean.stderr else ""
        victim = _child(killed_db, emu.base_url, "run-a", tmp_path)
        seen = {"n": 0}
        killed = threading.Event()

        def kill_on_the_21st_request(body: dict[str, Any]) -> Any:
            seen["n"] += 1
            if seen["n"] == 21 and not killed.is_set():
                os.kill(victim.pid, signal.SIGKILL)  # mid-tick: its answers so far are in the cache
                killed.set()
            return None  # the emulator's default, deterministic answer

        emu.set_responder(kill_on_the_21st_request)
        victim.wait(timeout=600)
        assert killed.is_set() and victim.returncode == -signal.SIGKILL
        emu.set_responder(None)
        again = _child(killed_db, emu.base_url, "run-a", tmp_path)
        stdout, stderr = again.communicate(timeout=600)
        assert again.returncode == 0, stderr
    statuses = [line.split()[1] for line in stdout.splitlines()]
    assert "resumed" not in statuses and "already_done" in statuses, statuses
    results = {}
    for name, url in (("killed", killed_db), ("clean", clean_db)):
        engine, factory = open_db(url)
        try:
            results[name] = ledger(factory, "run-a")
        finally:
            engine.dispose()
    k, c = results["killed"], results["clean"]
    assert not k["orders"]["client_order_id"].duplicated().any()
    assert len(k["balances"]) == BARS
    for key in c:
        assert k[key].equals(c[key]), f"{key} differs after the kill and resume"
    assert_ledger_identities(k, 10_000.0)
