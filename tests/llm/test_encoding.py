"""Compact candle encoding: number formats, the round trip back to candles, causal indicators, chunks."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from agent.config import DEFAULT_DATA_DIR
from agent.llm.encoding import (
    decode_rows,
    encode_chunks,
    encode_rows,
    format_bps,
    format_bps_unsigned,
    format_price,
    format_volume,
    indicator_frame,
    parse_number,
    row_values,
)
from agent.llm.leakage import Disclosure
from agent.market.candles import read_feather

COLUMNS = ("close", "chg", "hi", "lo", "vol", "rsi")


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return read_feather(DEFAULT_DATA_DIR / "binance" / "BTC_USDT-1h.feather").iloc[:2000]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (93429.99, "93430"),
        (3456.78, "3456.8"),
        (145.234, "145.23"),
        (0.523412, "0.52341"),
        (116234.7, "116235"),
        (0.0, "0"),
        (math.nan, "na"),
        (12.0, "12.000"),
    ],
)
def test_prices_keep_five_significant_digits(value: float, text: str) -> None:
    assert format_price(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1234.5, "1.2k"),
        (85.3, "85"),
        (0.853, "0.85"),
        (9.96, "10"),
        (2_345_678.0, "2.3M"),
        (999.7, "1.0k"),
        (4.2e9, "4.2B"),
        (math.inf, "na"),
    ],
)
def test_volumes_have_two_significant_digits_and_a_suffix(value: float, text: str) -> None:
    assert format_volume(value) == text


def test_relative_columns_are_whole_basis_points() -> None:
    assert [format_bps(0.0031), format_bps(-0.0012), format_bps(0.00004), format_bps(math.nan)] == [
        "+31",
        "-12",
        "0",
        "na",
    ]
    assert format_bps_unsigned(0.0029) == "29"


@pytest.mark.parametrize(
    ("text", "value"), [("1.2k", 1200.0), ("+31", 31.0), ("3.4M", 3.4e6), ("-12", -12.0)]
)
def test_parse_number_inverts_the_formats(text: str, value: float) -> None:
    assert parse_number(text) == pytest.approx(value)
    assert math.isnan(parse_number("na"))


@pytest.mark.parametrize("name", ["BTC_USDT-1h", "XRP_USDT-1d", "SOL_USDT-1h"])
def test_encoded_rows_decode_back_to_the_candles(name: str) -> None:
    frame = indicator_frame(read_feather(DEFAULT_DATA_DIR / "binance" / f"{name}.feather").iloc[-1500:])
    lines = encode_rows([str(i) for i in range(len(frame))], row_values(frame, COLUMNS, 1.0, 1.0), COLUMNS)
    decoded = decode_rows(lines, COLUMNS)
    close, high, low = frame["close"].to_numpy(), frame["high"].to_numpy(), frame["low"].to_numpy()
    assert np.max(np.abs(decoded["close"].to_numpy() / close - 1)) <= 5e-5
    assert np.max(np.abs(decoded["high"].to_numpy() / high - 1)) <= 1.1e-4
    assert np.max(np.abs(decoded["low"].to_numpy() / low - 1)) <= 1.1e-4
    volume = frame["volume"].to_numpy()
    assert np.max(np.abs(decoded["vol"].to_numpy() / volume - 1)) <= 0.05
    rsi = frame["rsi"].to_numpy()
    ok = ~np.isnan(rsi)
    assert np.max(np.abs(decoded["rsi"].to_numpy()[ok] - rsi[ok])) <= 0.5
    assert np.isnan(decoded["rsi"].to_numpy()[:14]).all()  # warm-up is written "na"


def test_rows_are_compact_one_line_per_bar(btc: pd.DataFrame) -> None:
    frame = indicator_frame(btc)
    lines = encode_rows(["00"] * 10, row_values(frame.iloc[-10:], COLUMNS, 1.0, 1.0), COLUMNS)
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert all(len(line.split()) == len(COLUMNS) + 1 for line in lines)
    assert max(len(line) for line in lines) < 40  # a naive CSV line of the same bar is ~65 characters


def test_indicators_use_only_past_bars(btc: pd.DataFrame) -> None:
    full = indicator_frame(btc)
    cut = indicator_frame(btc.iloc[:1200])
    pd.testing.assert_frame_equal(full.iloc[:1200], cut)


def test_completed_day_chunks_do_not_change_when_bars_are_appended(btc: pd.DataFrame) -> None:
    disc = Disclosure.plain("BTC/USDT")
    early = encode_chunks(indicator_frame(btc.iloc[:1000]), "base", COLUMNS, disc)
    later = encode_chunks(indicator_frame(btc.iloc[:1100]), "base", COLUMNS, disc)
    n = len(early.texts) - 1  # the last day of `early` may be incomplete
    assert early.texts[:n] == later.texts[:n]
    assert early.texts[0].startswith("# 2024-09-19 Thu\n22 ")
    assert (early.rows[1:n] == 24).all()


def test_daily_chunks_open_a_month_group_once(btc: pd.DataFrame) -> None:
    days = btc.resample("1D").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    cols = ("close", "chg", "hi", "lo", "vol", "vr", "rsi", "e20", "e50", "atr")
    chunks = encode_chunks(indicator_frame(days), "1d", cols, Disclosure.plain("BTC/USDT"))
    text = "".join(chunks.texts)
    assert text.count("# 2024-10\n") == 1 and text.count("# 2024-11\n") == 1
    first_without = next(i for i, t in enumerate(chunks.texts) if not t.startswith("#"))
    assert chunks.leads[first_without].startswith("# 2024-")  # a block starting there adds the month


@pytest.mark.parametrize("kind", ["base", "1d"])
def test_chunks_do_not_depend_on_the_index_resolution(btc: pd.DataFrame, kind: str) -> None:
    """A microsecond index (pandas 3's default for date_range) gives the same days, labels and texts."""
    frame = indicator_frame(btc.iloc[:200] if kind == "base" else btc.resample("1D").last().dropna())
    micro = frame.copy()
    micro.index = frame.index.as_unit("us")
    disc = Disclosure.plain("BTC/USDT")
    ns, us = encode_chunks(frame, kind, COLUMNS, disc), encode_chunks(micro, kind, COLUMNS, disc)
    assert us.texts == ns.texts and us.leads == ns.leads
    assert np.array_equal(us.starts, ns.starts) and np.array_equal(us.rows, ns.rows)
