"""Leakage control: no ticker, no year, no real price level; prices map back through price_scale."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from agent.config import DEFAULT_DATA_DIR
from agent.llm.context import MarketContextBuilder
from agent.llm.leakage import Disclosure, anonymise, scrub
from agent.llm.protocol import ContextInput, PastDecision, Prompt
from agent.llm.schema import Action
from agent.llm.tokens import EstimateTokenCounter
from agent.market.candles import read_feather
from agent.portfolio import PortfolioState, Position

HOUR_MS = 3_600_000
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?([kMB])?")
DATA_FIELD = re.compile(r"[+-]?\d+(\.\d+)?[kMB]?|na")
LABEL = re.compile(r"[+-]\d+|\d\d|\d\d:\d\d|1[hdw]")  # day number, hour of day, snapshot timeframe


def load(name: str) -> pd.DataFrame:
    return read_feather(DEFAULT_DATA_DIR / "binance" / f"{name}.feather")


def leaky_ctx(frame: pd.DataFrame, symbol: str) -> ContextInput:
    """An input full of things that could leak: real prices in notes, the ticker and a year in text."""
    t_ms = frame.index[-1].value // 1_000_000
    close = float(frame["close"].iloc[-1])
    base = symbol.split("/")[0]
    positions = {
        symbol: Position(
            symbol,
            0.01,
            close * 0.95,
            t_ms - 40 * HOUR_MS,
            close * 0.9,
            close * 1.1,
            f"{base} closes below {close * 0.9:.0f}",
        ),
        "DOGE/USDT": Position("DOGE/USDT", 1000.0, 0.2, t_ms - 80 * HOUR_MS),
    }
    decisions = (
        PastDecision(
            t_ms - 5 * HOUR_MS,
            Action.BUY,
            0.2,
            0.6,
            f"{symbol} reclaimed the 2024 high at {close * 0.97:.0f}",
            0.02,
        ),
    )
    return ContextInput(
        symbol,
        frame,
        PortfolioState(cash=10_000.0, positions=positions),
        {symbol: close, "DOGE/USDT": 0.21},
        decisions,
    )


def build(frame: pd.DataFrame, symbol: str, budget: int = 12_000) -> Prompt:
    builder = MarketContextBuilder(EstimateTokenCounter(), leakage_control=True)
    return builder.build(leaky_ctx(frame, symbol), budget)


def numbers(text: str) -> list[float]:
    out = []
    for m in NUMBER.finditer(text):
        scale = {"k": 1e3, "M": 1e6, "B": 1e9}.get(m.group(1) or "", 1.0)
        out.append(float(m.group(0).rstrip("kMB")) * scale)
    return out


@pytest.mark.parametrize(
    ("name", "symbol"),
    [("BTC_USDT-1h", "BTC/USDT"), ("ETH_USDT-1h", "ETH/USDT"), ("BNB_USDT-1d", "BNB/USDT")],
)
def test_no_ticker_no_year_no_real_price_level(name: str, symbol: str) -> None:
    frame = load(name)
    prompt = build(frame, symbol)
    text = "".join(m["content"] for m in prompt.messages)
    for word in (symbol, symbol.split("/")[0], "USDT", "DOGE", "bitcoin", "ethereum", "binance"):
        assert word.lower() not in text.lower()
    real = float(frame["close"].iloc[-1])

    def looks_real(x: float) -> bool:
        return 0.8 * real <= x <= 1.25 * real

    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 3 and all(DATA_FIELD.fullmatch(f) for f in fields[1:]):  # a table row
            assert LABEL.fullmatch(fields[0]), line  # labelled by day number or hour: no date
            prices = fields[1:4] + fields[8:9] if fields[0] in ("1h", "1d", "1w") else fields[1:2]
            assert not any(looks_real(float(p)) for p in prices if p != "na"), line
        else:  # prose, headers, the account and positions: no year, date, weekday or real price
            assert not re.search(
                r"(?<![\d.])(19|20)\d\d(?![\d])|\d\d-\d\d|\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun)\b", line
            ), line
            assert not any(looks_real(x) for x in numbers(line)), line
    assert prompt.alias == "ASSET_A" and '"symbol": "ASSET_A"' in text


def test_prompt_prices_map_back_through_price_scale() -> None:
    frame = load("BTC_USDT-1h")
    prompt = build(frame, "BTC/USDT")
    user = prompt.messages[1]["content"]
    last_row = user[: user.index("\n## Now")].rstrip("\n").rsplit("\n", 1)[1]
    shown_close = float(last_row.split()[1])
    assert shown_close * prompt.price_scale == pytest.approx(float(frame["close"].iloc[-1]), rel=1e-4)
    stop = float(frame["close"].iloc[-1]) * 0.9  # the position's stop, shown in prompt units
    position = next(line for line in user.splitlines() if line.startswith("ASSET_A "))
    assert float(position.split()[6]) * prompt.price_scale == pytest.approx(stop, rel=1e-4)
    assert "other holdings: 1 position(s)" in user


def test_the_reference_holds_for_a_quarter_and_sees_only_the_past() -> None:
    frame = load("BTC_USDT-1h")
    a = anonymise("BTC/USDT", frame.loc[:"2025-05-02 10:00"])
    b = anonymise("BTC/USDT", frame.loc[:"2025-06-30 23:00"])
    c = anonymise("BTC/USDT", frame.loc[:"2025-07-01 00:00"])
    assert a == b  # same quarter: same scale and day zero, so prompts keep their prefix
    assert a.day_zero == pd.Timestamp("2025-04-01", tz="UTC")
    assert a.price_scale == pytest.approx(
        float(frame.loc[pd.Timestamp("2025-04-01", tz="UTC"), "open"]) / 100
    )
    assert c.day_zero == pd.Timestamp("2025-07-01", tz="UTC") and c.price_scale != a.price_scale
    assert a.day_label(pd.Timestamp("2025-03-29", tz="UTC")) == "day -3"


def test_scrub_hides_names_years_and_real_prices() -> None:
    text = "Bitcoin (BTC/USDT) broke its 2021 high of 69,000 and btc volume in USDT rose; target 105k."
    clean = scrub(text, "BTC/USDT", "ASSET_A")
    assert (
        clean
        == "ASSET_A (ASSET_A) broke its [year] high of 69,000 and ASSET_A volume in QUOTE rose; target 105k."
    )
    disc = Disclosure(
        "BTC/USDT", "ASSET_A", "QUOTE", price_scale=1000.0, day_zero=pd.Timestamp("2025-01-01", tz="UTC")
    )
    assert disc.text(text).endswith(
        "broke its [year] high of 69 and ASSET_A volume in QUOTE rose; target 105."
    )
    assert disc.text("RSI 70, stop at 95.5") == "RSI 70, stop at 95.5"  # prompt-unit numbers stay


def test_plain_mode_shows_real_names_dates_and_prices() -> None:
    disc = Disclosure.plain("ETH/USDT")
    assert (disc.name, disc.quote, disc.alias, disc.price_scale) == ("ETH/USDT", "USDT", None, 1.0)
    assert disc.moment(pd.Timestamp("2025-09-18 13:00", tz="UTC")) == "2025-09-18 13:00 UTC"
    assert disc.text("ETH 2025") == "ETH 2025"
