"""One code path for the model too: an LLM run replayed by the daemon and the same window as an agent
backtest read the same history, so they send the same prompts (same hashes, bar by bar) and, with the same
deterministic answers, record the same decisions and fills."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from agent.config import DEFAULT_DATA_DIR
from agent.daemon import Daemon, DaemonOptions
from agent.db.models import Decision, Fill
from agent.db.session import open_db
from agent.graph.backtest import run_agent_backtest
from agent.testing.vllm_emulator import VLLMEmulator
from tests.graph.helpers import emulator_settings
from tests.test_equivalence import HOUR, SYMBOLS, WINDOWS, _iso

BARS = 8


def _records(db_url: str, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    engine, factory = open_db(db_url)
    try:
        with factory() as s:
            decisions = pd.DataFrame(
                s.execute(
                    select(
                        Decision.bar_ts,
                        Decision.symbol,
                        Decision.prompt_hash,
                        Decision.action,
                        Decision.final_exposure,
                    )
                    .where(Decision.run_id == run_id)
                    .order_by(Decision.bar_ts, Decision.symbol)
                ).all()
            )
            fills = pd.DataFrame(
                s.execute(
                    select(Fill.bar_ts, Fill.symbol, Fill.side, Fill.amount, Fill.price, Fill.fee)
                    .where(Fill.run_id == run_id)
                    .order_by(Fill.bar_ts, Fill.symbol)
                ).all()
            )
    finally:
        engine.dispose()
    return decisions, fills


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
                runs[path] = _records(settings.db_url, "llm-daemon")
            else:
                run = run_agent_backtest(
                    settings, strategy="llm", start=_iso(start), end=_iso(end), run_id="llm-backtest",
                    reports_dir=data_folder / "reports", show_progress=False,
                )  # fmt: skip
                runs[path] = _records(settings.db_url, run.run_id)
    (d_dec, d_fills), (b_dec, b_fills) = runs["daemon"], runs["backtest"]
    assert len(d_dec) == BARS * len(SYMBOLS) and d_dec["prompt_hash"].notna().any()
    pd.testing.assert_frame_equal(d_dec, b_dec, check_exact=True)
    pd.testing.assert_frame_equal(d_fills, b_fills, check_exact=True)
