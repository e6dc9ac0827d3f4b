"""Fixtures for the analytics tests: the bundled candles read independently, and a ledger holding a rule
backtest and a short LLM agent backtest (against the vLLM emulator) to query."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from agent.analytics.context import ToolContext
from agent.config import Settings, load_settings

DATA = Path(__file__).resolve().parents[2] / "data" / "binance"


def raw(symbol: str, timeframe: str = "1h") -> pd.DataFrame:
    """The bundled feather file read with pandas alone (the independent reference)."""
    df = pd.read_feather(DATA / f"{symbol.replace('/', '_')}-{timeframe}.feather")
    return df.set_index(pd.DatetimeIndex(pd.to_datetime(df["date"], utc=True)))


def cut(df: pd.DataFrame, start: str | None = None, end: str | None = None) -> pd.DataFrame:
    """Rows with start <= time < end."""
    if start:
        df = df[df.index >= pd.Timestamp(start, tz="UTC")]
    if end:
        df = df[df.index < pd.Timestamp(end, tz="UTC")]
    return df


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ToolContext]:
    """Tools over the bundled data and an empty database."""
    c = ToolContext(load_settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}"), reports_dir=tmp_path)
    yield c
    c.close()


@dataclass(frozen=True)
class Ledger:
    """A database with one rule backtest and one LLM agent backtest."""

    settings: Settings
    url: str
    backtest_id: str
    agent_id: str


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """Record a rule backtest and an 8-bar LLM run (emulator answers) in a fresh SQLite file."""
    from agent.backtest.service import BacktestRequest, run_request
    from agent.graph.backtest import run_agent_backtest
    from agent.testing.vllm_emulator import VLLMEmulator
    from tests.graph.helpers import emulator_settings, short_source

    tmp = tmp_path_factory.mktemp("ledger")
    url = f"sqlite:///{tmp / 'ledger.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        settings = load_settings(database_url=url)
        bt = run_request(
            BacktestRequest(
                strategy="sma_cross",
                params={"fast": 10, "slow": 30},
                symbols=["BTC/USDT"],
                start="2025-06-01",
                end="2025-07-01",
            ),
            settings,
            None,
        )
        with VLLMEmulator() as emu:
            s = emulator_settings(url, emu.base_url)
            run = run_agent_backtest(
                s, strategy="llm", start=None, end=None, last_bars=8, reports_dir=tmp,
                show_progress=False, source=short_source(s, days=20),
            )  # fmt: skip
    yield Ledger(settings, url, bt.run_id, run.run_id)
