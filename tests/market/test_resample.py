"""Timeframes built from the stored base data (4h, 1d, 1w from 1h; 15m from 1m): checked against an
independent pandas resample, complete buckets only (gaps and the still-forming last bucket), point in time,
and used by backtests, the agent, replay and the daemon's replay window."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import agent as tg
from agent.cli.main import app
from agent.config import DEFAULT_DATA_DIR, SHARED_DIR
from agent.daemon.plan import bundled_bounds
from agent.errors import DataError
from agent.market.candles import read_feather
from agent.market.replay import ReplayExchange
from agent.market.resample import derivable_from, resample_candles
from agent.market.store import load_candles
from agent.market.validate import check_candles
from agent.testing.exchange_emulator import ExchangeEmulator
from tests.market.helpers import ms, shared_candles

BUNDLED = DEFAULT_DATA_DIR / "binance"
AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
PANDAS_RULE = {"15m": "15min", "4h": "4h", "1d": "1D", "1w": "W-MON"}
runner = CliRunner()


def pandas_resample(base: pd.DataFrame, rule: str, per_bucket: int) -> pd.DataFrame:
    """The independent reference: pandas' own resample, keeping buckets that hold all their base bars."""
    bars = base.resample(rule, label="left", closed="left").agg(AGG)
    count = base["close"].resample(rule, label="left", closed="left").count()
    return bars[count == per_bucket]


def _same(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(ours, reference, check_exact=True, check_freq=False, check_names=False)


@pytest.mark.parametrize(
    ("symbol", "base", "target", "per_bucket"),
    [
        ("BTC/USDT", "1h", "4h", 4),
        ("ETH/USDT", "1h", "1d", 24),
        ("SOL/USDT", "1h", "1w", 168),
        ("XRP/USDT", "1d", "1w", 7),
    ],
)
def test_bundled_data_resamples_like_pandas(symbol: str, base: str, target: str, per_bucket: int) -> None:
    raw = read_feather(BUNDLED / f"{symbol.replace('/', '_')}-{base}.feather")
    ours = resample_candles(raw, base, target)
    _same(ours, pandas_resample(raw, PANDAS_RULE[target], per_bucket))
    assert check_candles(ours, target).usable and len(ours) > 10


@pytest.mark.parametrize(("symbol", "target", "base"), [("BTC/USDT", "4h", "1h"), ("BNB/USDT", "1w", "1d")])
def test_load_candles_builds_a_timeframe_without_a_file(
    tmp_path: Path, symbol: str, target: str, base: str
) -> None:
    raw = read_feather(BUNDLED / f"{symbol.replace('/', '_')}-{base}.feather")
    _same(load_candles(symbol, target, tmp_path), resample_candles(raw, base, target))
    native = read_feather(BUNDLED / "ETH_USDT-1d.feather")
    _same(load_candles("ETH/USDT", "1d", tmp_path), native)  # a stored timeframe is read, not rebuilt


def test_shared_1m_resamples_to_15m_like_pandas() -> None:
    raw = read_feather(SHARED_DIR / "data" / "binance" / "BTC_USDT-1m.feather")
    _same(resample_candles(raw, "1m", "15m"), pandas_resample(raw, "15min", 15))


@pytest.mark.parametrize(("target", "per_bucket"), [("4h", 4), ("1d", 24), ("1w", 168)])
def test_buckets_with_missing_base_bars_are_dropped(target: str, per_bucket: int) -> None:
    raw = shared_candles("BTC/USDT")  # five years of 1h with 10 real gaps (20 missing hours)
    ours = resample_candles(raw, "1h", target)
    _same(ours, pandas_resample(raw, PANDAS_RULE[target], per_bucket))
    holes = pd.date_range(raw.index[0], raw.index[-1], freq="1h").difference(raw.index)
    assert len(holes) == 20
    for hole in holes:
        day = hole.normalize()
        bucket = day - pd.Timedelta(days=day.weekday()) if target == "1w" else hole.floor(target)
        assert bucket not in ours.index, f"the {target} bar over the missing hour {hole} is dropped"
    report = check_candles(ours, target)
    assert report.usable and report.gaps, "the dropped buckets are gaps of the resampled series"


def test_a_4h_bar_missing_one_hour_is_dropped_and_reported_as_a_gap() -> None:
    raw = read_feather(BUNDLED / "BTC_USDT-1h.feather").loc["2025-03-01":"2025-03-02"]
    holed = raw.drop(pd.Timestamp("2025-03-01 09:00", tz="UTC"))
    four = resample_candles(holed, "1h", "4h")
    assert pd.Timestamp("2025-03-01 08:00", tz="UTC") not in four.index
    assert len(four) == len(resample_candles(raw, "1h", "4h")) - 1
    (gap,) = check_candles(four, "4h").gaps
    assert (gap.start, gap.missing) == (pd.Timestamp("2025-03-01 08:00", tz="UTC"), 1)


def test_the_last_incomplete_bucket_is_dropped() -> None:
    raw = read_feather(BUNDLED / "BTC_USDT-1h.feather")
    assert raw.index[-1] == pd.Timestamp("2025-09-19 22:00", tz="UTC")  # 20:00-23:00 holds 3 of 4 hours
    assert resample_candles(raw, "1h", "4h").index[-1] == pd.Timestamp("2025-09-19 16:00", tz="UTC")
    assert resample_candles(raw, "1h", "1d").index[-1] == pd.Timestamp("2025-09-18", tz="UTC")
    assert resample_candles(raw, "1h", "1w").index[-1] == pd.Timestamp("2025-09-08", tz="UTC")  # a Monday
    last = resample_candles(raw, "1h", "4h").iloc[-1]
    hours = raw.loc["2025-09-19 16:00":"2025-09-19 19:00"]
    assert (last.open, last.high, last.low, last.close) == (
        hours.open.iloc[0],
        hours.high.max(),
        hours.low.min(),
        hours.close.iloc[-1],
    )
    assert last.volume == pytest.approx(hours.volume.sum(), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(0, 2000),
    length=st.integers(1, 400),
    cut=st.integers(0, 400),
    holes=st.lists(st.integers(0, 399), max_size=6),
    target=st.sampled_from(["4h", "1d"]),
)
def test_resampling_is_point_in_time(
    start: int, length: int, cut: int, holes: list[int], target: str
) -> None:
    """Seeing fewer base bars never changes a resampled bar: the result on data up to any cut is the
    full result's bars that end by the cut (so a bar, once visible, is final)."""
    base = read_feather(BUNDLED / "BTC_USDT-1h.feather").iloc[start : start + length]
    base = base.drop(base.index[[h for h in set(holes) if h < len(base)]])
    seen = base.iloc[: min(cut, len(base))]
    full = resample_candles(base, "1h", target)
    now = seen.index[-1] + pd.Timedelta("1h") if len(seen) else base.index[0] if len(base) else None
    partial = resample_candles(seen, "1h", target)
    expected = full if now is None else full[full.index + pd.Timedelta(target) <= now]
    _same(partial, expected)


def test_derivable_timeframes() -> None:
    assert derivable_from("4h") == ["1h", "15m", "5m", "1m"]
    assert derivable_from("1w") == ["1d", "4h", "1h", "15m", "5m", "1m"]
    assert derivable_from("1m") == []
    with pytest.raises(ValueError, match="cannot be built"):
        resample_candles(read_feather(BUNDLED / "BTC_USDT-1d.feather"), "1d", "4h")


# ------------------------------------------------------------------------- every path that reads candles


def test_backtest_on_4h_built_from_the_bundled_1h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(tmp_path / "data"))
    args = ["backtest", "--strategy", "sma_cross", "--symbol", "BTC/USDT", "--timeframe", "4h", "--no-report",
            "--param", "fast=10", "--param", "slow=30"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "sma_cross on BTC/USDT 4h" in result.output
    four = pandas_resample(read_feather(BUNDLED / "BTC_USDT-1h.feather"), "4h", 4)
    run = tg.run_backtest(
        "sma_cross", "BTC/USDT", "4h", settings={"data_dir": tmp_path / "data"}, fast=10, slow=30
    )
    assert run.equity.index[-1] == four.index[-1] and run.equity.index.isin(four.index).all()


def test_the_agent_ticks_on_4h_built_from_1h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TRADEGRAPH_TIMEFRAME", "4h")
    result = runner.invoke(app, ["tick", "--strategy", "sma_cross"])
    assert result.exit_code == 0, result.output
    assert "bar 2025-09-19 16:00: done" in result.output  # the last complete 4h bar of the bundled 1h


def test_replay_serves_resampled_bars_point_in_time(tmp_path: Path) -> None:
    replay = ReplayExchange(tmp_path)  # nothing in tmp_path: the bundled sample is the fallback
    four = pandas_resample(read_feather(BUNDLED / "BTC_USDT-1h.feather"), "4h", 4)
    replay.set_now(ms(four.index[100]) + 4 * 3_600_000 - 1)  # bar 100 is one millisecond from closing
    rows = replay.fetch_ohlcv("BTC/USDT", "4h", limit=5)
    assert [r[0] for r in rows] == [ms(t) for t in four.index[95:100]]
    assert rows[-1][1:] == list(map(float, four.iloc[99]))
    assert bundled_bounds(tmp_path, ["BTC/USDT"], "4h") == (
        ms(four.index[0]),
        ms(four.index[-1]) + 14_400_000,
    )
    with pytest.raises(DataError, match="no bundled 1m candles"):
        bundled_bounds(tmp_path, ["BTC/USDT"], "1m")


def test_missing_data_hint_is_a_command_that_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emulator: Callable[..., ExchangeEmulator]
) -> None:
    folder = tmp_path / "data"
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(folder))
    args = ["backtest", "--strategy", "sma_cross", "--symbol", "DOGE/USDT", "--timeframe", "4h", "--start",
            "2025-06-01", "--no-report", "--fee", "0.001"]  # fmt: skip
    missing = runner.invoke(app, args)
    assert isinstance(missing.exception, DataError)
    hint = str(missing.exception).split("download them: ")[1]
    assert hint == ("tradegraph data download --exchange binance --symbols DOGE/USDT --timeframe 4h "
                    "--since 2025-06-01")  # fmt: skip
    doge = read_feather(BUNDLED / "BTC_USDT-1h.feather").loc["2025-05-01":] / [1e5, 1e5, 1e5, 1e5, 1]
    doge4h = resample_candles(doge, "1h", "4h")
    emu = emulator({"DOGE/USDT": doge4h}, timeframe="4h")
    monkeypatch.setenv("TRADEGRAPH_EXCHANGE__API_URL", emu.url)
    downloaded = runner.invoke(app, hint.split()[1:])
    assert downloaded.exit_code == 0, downloaded.output
    monkeypatch.delenv("TRADEGRAPH_EXCHANGE__API_URL")
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    stored = read_feather(folder / "store" / "binance" / "DOGE_USDT-4h.feather")
    assert stored.index[0] == pd.Timestamp("2025-06-01", tz="UTC") and np.isfinite(stored.to_numpy()).all()


def test_replay_copy_of_the_sample_in_data_dir_is_preferred(tmp_path: Path) -> None:
    shutil.copytree(BUNDLED, tmp_path / "binance")
    short = read_feather(BUNDLED / "ETH_USDT-1h.feather").iloc[:100]
    short.reset_index().to_feather(tmp_path / "binance" / "ETH_USDT-1h.feather")
    assert len(load_candles("ETH/USDT", "4h", tmp_path)) == len(resample_candles(short, "1h", "4h"))


def test_weekly_bars_close_on_mondays_for_the_daemon_clock() -> None:
    from agent.daemon.clock import floor_bar, last_closed_bar
    from agent.market.candles import bar_open_ms, timeframe_ms

    week = timeframe_ms("1w")
    monday = ms(pd.Timestamp("2025-09-15", tz="UTC"))
    assert last_closed_bar(monday, week) == ms(pd.Timestamp("2025-09-08", tz="UTC"))
    assert (
        floor_bar(monday - 1, week)
        == bar_open_ms(monday - 1, "1w")
        == ms(pd.Timestamp("2025-09-08", tz="UTC"))
    )
    assert last_closed_bar(monday, timeframe_ms("4h")) == monday - timeframe_ms("4h")
