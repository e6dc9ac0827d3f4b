"""Reports leave the session's matplotlib backend alone: no report path calls `matplotlib.use` (so Jupyter's
inline figures stay on without a guard around the notebook API)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import pytest

import agent as tg


def test_backtest_and_agent_reports_never_switch_the_backend(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"matplotlib.use{args} called by report code")

    monkeypatch.setattr(matplotlib, "use", refuse)
    settings = {"database_url": sqlite_url}
    bt = tg.run_backtest("sma_cross", "BTC/USDT", "1h", "2025-06-01", "2025-07-01", settings=settings,
                         reports_dir=tmp_path, fast=10, slow=30)  # fmt: skip
    assert bt.report_path is not None and bt.report_path.is_file()
    assert bt.figure().axes, "the equity figure is drawn"
    run = tg.run_agent("BTC/USDT", bars=3, strategy="sma_cross", end="2025-09-17 12:00", history_bars=100,
                       settings=settings, reports_dir=tmp_path)  # fmt: skip
    assert run.report_path.is_file() and list(run.ticks["status"]) == ["done"] * 3
