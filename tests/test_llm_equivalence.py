"""One code path for the model too: an LLM run replayed by the daemon and the same window as an agent
backtest read the same history, so they send the same prompts (same hashes, bar by bar) and, with the same
deterministic answers, record the same decisions and fills."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from agent.config import DEFAULT_DATA_DIR
from agent.daemon import Daemon, DaemonOptions
from agent.graph.backtest import run_agent_backtest
from agent.testing.vllm_emulator import VLLMEmulator
from tests.graph.helpers import book, emulator_settings
from tests.test_equivalence import HOUR, SYMBOLS, WINDOWS, _iso

BARS = 8


@pytest.fixture
def data_folder(tmp_path: Path) -> Path:
    """A data folder whose `binance/` is the bundled sample (the daemon's feed writes its store beside it)."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "binance").symlink_to(DEFAULT_DATA_DIR / "binance", target_is_directory=True)
    return folder


def test_an_llm_daemon_replay_and_agent_backtest_send_the_same_prompts(data_folder: Path) -> None:
    start = WINDOWS["feb25"][0]
    end = start + BARS * HOUR
    with VLLMEmulator(latency_s=0.0, max_model_len=65536) as emu:
        runs = {}
        for path in ("daemon", "backtest"):
            settings = emulator_settings(
                f"sqlite:///{data_folder / f'{path}.db'}", emu.base_url, data_dir=data_folder
            )
            if path == "daemon":
                options = DaemonOptions(
                    replay=True, speed=3600 * 1000, start=_iso(start), end=_iso(end), strategy="llm",
                    run_id="llm-daemon", lease_ttl_s=60,
                )  # fmt: skip
                assert Daemon(settings, options).run().finished
                runs[path] = book(settings.db_url, "llm-daemon")
            else:
                run = run_agent_backtest(
                    settings, strategy="llm", start=_iso(start), end=_iso(end), run_id="llm-backtest",
                    reports_dir=data_folder / "reports", show_progress=False,
                )  # fmt: skip
                runs[path] = book(settings.db_url, run.run_id)
    daemon, backtest = runs["daemon"], runs["backtest"]
    assert (
        len(daemon["decisions"]) == BARS * len(SYMBOLS) and daemon["decisions"]["prompt_hash"].notna().any()
    )
    for key in ("decisions", "fills", "orders", "balances"):
        pd.testing.assert_frame_equal(daemon[key], backtest[key], check_exact=True, obj=key)
