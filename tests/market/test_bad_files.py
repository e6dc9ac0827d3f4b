"""A corrupt or invalid candle file is one `error:` line and exit 1 on every path that reads candles
(backtest, tick, the replaying daemon, the notebook API), never a traceback and never a run on bad data."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.cli import main as cli
from agent.config import DEFAULT_DATA_DIR
from agent.errors import DataError
from agent.market.candles import read_feather, write_feather
from agent.market.validate import check_candles

BUNDLED_BTC = DEFAULT_DATA_DIR / "binance" / "BTC_USDT-1h.feather"


def _unreadable(path: Path) -> None:
    path.write_bytes(b"this is not a feather file")


def _truncated(path: Path) -> None:
    path.write_bytes(BUNDLED_BTC.read_bytes()[:5000])


def _no_volume_column(path: Path) -> None:
    read_feather(BUNDLED_BTC).drop(columns="volume").reset_index().to_feather(path)


def _nan_row(path: Path) -> None:
    frame = read_feather(BUNDLED_BTC)
    frame.iloc[-100, frame.columns.get_loc("close")] = np.nan
    write_feather(frame, path)


def _duplicate_timestamps(path: Path) -> None:
    frame = read_feather(BUNDLED_BTC)
    write_feather(pd.concat([frame, frame.iloc[-50:-48]]).sort_index(), path)


def _zero_price(path: Path) -> None:
    frame = read_feather(BUNDLED_BTC)
    frame.iloc[-100, frame.columns.get_loc("low")] = 0.0  # still low <= min(open, close): only > 0 catches it
    write_feather(frame, path)


def _negative_prices(path: Path) -> None:
    frame = read_feather(BUNDLED_BTC)
    frame.iloc[-100, :4] = -frame.iloc[-100, :4].abs()
    frame.iloc[-100, frame.columns.get_loc("high")] = frame.iloc[-100, :4].max()
    frame.iloc[-100, frame.columns.get_loc("low")] = frame.iloc[-100, :4].min()
    write_feather(frame, path)


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "unreadable": (_unreadable, "cannot read candle file"),
    "truncated": (_truncated, "cannot read candle file"),
    "no_volume_column": (_no_volume_column, "cannot read candle file"),
    "nan_row": (_nan_row, "1 rows with NaN"),
    "duplicate_timestamps": (_duplicate_timestamps, "2 duplicate timestamps"),
    "zero_price": (_zero_price, "1 rows with a price <= 0"),
    "negative_prices": (_negative_prices, "1 rows with a price <= 0"),
}

PATHS = {
    "backtest": ["backtest", "--strategy", "sma_cross", "--symbol", "BTC/USDT", "--timeframe", "1h",
                 "--start", "2025-08-01"],
    "tick": ["tick", "--strategy", "sma_cross"],
    "daemon": ["run", "--replay", "--strategy", "sma_cross", "--start", "2025-09-18"],
}  # fmt: skip


@pytest.fixture
def bad_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """A data folder whose `binance/` is a copy of the sample with BTC 1h corrupted one way."""

    def make(kind: str) -> Path:
        folder = tmp_path / "data"
        shutil.copytree(DEFAULT_DATA_DIR / "binance", folder / "binance")
        path = folder / "binance" / "BTC_USDT-1h.feather"
        CORRUPTIONS[kind][0](path)
        monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(folder))
        monkeypatch.setenv("TRADEGRAPH_SYMBOLS", "BTC/USDT")
        return path

    return make


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["tradegraph", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return int(done.value.code or 0), capsys.readouterr().err


@pytest.mark.parametrize("command", list(PATHS))
@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_bad_candle_file_is_one_error_line_on_every_path(
    bad_data: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    kind: str,
    command: str,
) -> None:
    path = bad_data(kind)
    code, err = _main(monkeypatch, capsys, *PATHS[command])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("error: ") and str(path) in lines[0] and CORRUPTIONS[kind][1] in lines[0], err
    assert not list(tmp_path.rglob("report.html")), "nothing ran on bad data"


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_loading_validates_and_names_the_file(bad_data: Callable[[str], Path], kind: str) -> None:
    from agent.market.store import load_candles

    path = bad_data(kind)
    with pytest.raises(DataError) as e:
        load_candles("BTC/USDT", "1h", path.parent.parent)
    assert str(path) in str(e.value) and CORRUPTIONS[kind][1] in str(e.value) and "\n" not in str(e.value)


def test_non_positive_prices_make_candles_unusable() -> None:
    frame = read_feather(BUNDLED_BTC).iloc[:50].copy()
    assert check_candles(frame, "1h").usable
    frame.iloc[10, frame.columns.get_loc("open")] = 0.0
    frame.iloc[10, frame.columns.get_loc("low")] = 0.0
    frame.iloc[20, frame.columns.get_loc("low")] = -1.0
    report = check_candles(frame, "1h")
    assert report.non_positive_prices == 2 and not report.usable
    assert "2 rows with a price <= 0" in report.problems
