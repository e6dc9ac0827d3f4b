"""Loading a backtest window: warm-up rows, partial coverage notes, clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from agent.backtest.data import load_window
from agent.errors import ConfigError, DataError


def test_window_with_warmup_rows_before_the_start(tmp_path: Path) -> None:
    w = load_window(["BTC/USDT"], "1h", tmp_path, "2025-01-01", "2025-02-01", warmup=50)
    frame = w.frames["BTC/USDT"]
    assert w.trade_start == pd.Timestamp("2025-01-01", tz="UTC")
    assert w.trade_end == pd.Timestamp("2025-01-31 23:00", tz="UTC")
    assert frame.index[0] == pd.Timestamp("2025-01-01", tz="UTC") - pd.Timedelta(hours=50)
    assert w.notes == []


def test_partial_coverage_is_noted(tmp_path: Path) -> None:
    w = load_window(["BTC/USDT"], "1h", tmp_path, "2024-01-01", "2025-01-01")
    assert w.trade_start.strftime("%Y-%m-%d") == "2024-09-19"
    assert w.notes == [
        "BTC/USDT 1h data starts 2024-09-19 22:00, after --start 2024-01-01: backtesting from there"
    ]


@pytest.mark.parametrize(
    ("symbol", "start", "end", "error", "message"),
    [
        (
            "BTC/USDT",
            "2025-02-01",
            "2025-01-01",
            ConfigError,
            "empty date range: --start 2025-02-01 is not before",
        ),
        (
            "BTC/USDT",
            "2020-01-01",
            "2020-06-01",
            DataError,
            "no 1h candles for BTC/USDT between 2020-01-01 and "
            "2020-06-01; the data covers 2024-09-19 22:00 to",
        ),
        ("DOGE/USDT", None, None, DataError, "no 1h candles for DOGE/USDT in"),
        ("BTC/USDT", "yesterday-ish", None, DataError, "invalid date 'yesterday-ish'"),
    ],
)
def test_bad_windows_raise_one_line(
    tmp_path: Path, symbol: str, start: str | None, end: str | None, error: type, message: str
) -> None:
    with pytest.raises(error, match=message) as info:  # tmp_path: the bundled sample, never data/store
        load_window([symbol], "1h", tmp_path, start, end)
    assert "\n" not in str(info.value)
