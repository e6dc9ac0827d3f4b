"""Fixtures for backtest tests: the bundled candles."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from agent.config import DEFAULT_DATA_DIR
from agent.market.candles import read_feather


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    """The bundled BTC/USDT 1h candles (one year)."""
    return read_feather(Path(DEFAULT_DATA_DIR) / "binance" / "BTC_USDT-1h.feather")
