"""Point in time: nothing after bar t reaches the prompt, whatever the builder saw before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent.config import DEFAULT_DATA_DIR
from agent.llm.context import MarketContextBuilder
from agent.llm.encoding import format_price
from agent.llm.protocol import ContextInput, PastDecision
from agent.llm.schema import Action
from agent.llm.tokens import EstimateTokenCounter
from agent.market.candles import read_feather
from agent.portfolio import PortfolioState

POISON = 4_242_424.2


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return read_feather(DEFAULT_DATA_DIR / "binance" / "BTC_USDT-1h.feather").loc[:"2025-03-31"]


def poisoned_future(frame: pd.DataFrame, bars: int) -> pd.DataFrame:
    """`frame` plus `bars` later bars whose prices and volumes are absurd marker values."""
    index = frame.index[-1] + pd.Timedelta(hours=1) * np.arange(1, bars + 1)
    future = pd.DataFrame({c: POISON for c in frame.columns}, index=pd.DatetimeIndex(index, name="date"))
    return pd.concat([frame, future])


def ctx(frame: pd.DataFrame, decisions: tuple[PastDecision, ...] = ()) -> ContextInput:
    return ContextInput("BTC/USDT", frame, PortfolioState(cash=10_000.0), {}, decisions)


@pytest.mark.parametrize("leakage", [False, True])
@pytest.mark.parametrize("cut", ["2025-02-12 13:00", "2025-03-02 23:00", "2025-03-31 00:00"])
def test_future_bars_never_change_the_prompt(candles: pd.DataFrame, cut: str, leakage: bool) -> None:
    frame = candles.loc[:cut]
    reference = MarketContextBuilder(EstimateTokenCounter(), leakage_control=leakage).build(ctx(frame), 9_000)
    future = poisoned_future(frame, 60)
    seen = MarketContextBuilder(EstimateTokenCounter(), leakage_control=leakage)
    later = seen.build(ctx(future), 9_000)  # the builder first works at a later bar (its caches fill) ...
    assert format_price(POISON / later.price_scale) in later.messages[1]["content"]  # (visible there)
    again = seen.build(ctx(future.loc[:cut]), 9_000)  # ... then at t again: byte-identical to a fresh build
    assert again == reference
    text = "".join(m["content"] for m in reference.messages)
    assert format_price(POISON) not in text and format_price(POISON / reference.price_scale) not in text


def test_decisions_after_t_are_not_shown(candles: pd.DataFrame) -> None:
    frame = candles.loc[:"2025-03-10 12:00"]
    t_ms = frame.index[-1].value // 1_000_000
    decisions = (
        PastDecision(t_ms - 3_600_000, Action.BUY, 0.2, 0.6, "known before t", 0.01),
        PastDecision(t_ms, Action.HOLD, 0.2, 0.6, "made at t", None),
        PastDecision(t_ms + 3_600_000, Action.SELL, 0.0, 0.9, "from the future", -0.05),
    )
    text = (
        MarketContextBuilder(EstimateTokenCounter())
        .build(ctx(frame, decisions), 9_000)
        .messages[1]["content"]
    )
    assert "known before t" in text and "made at t" in text
    assert "from the future" not in text and "-5.00%" not in text


def test_a_day_in_progress_reaches_only_the_base_block(candles: pd.DataFrame) -> None:
    frame = candles.loc[:"2025-03-12 15:00"]
    changed = frame.copy()
    today = changed.index >= pd.Timestamp("2025-03-12", tz="UTC")
    changed.loc[today, "volume"] *= 3.0  # the current, incomplete day differs
    builder = MarketContextBuilder(EstimateTokenCounter())
    a = builder.build(ctx(frame), 9_000).messages[1]["content"]
    b = builder.build(ctx(changed), 9_000).messages[1]["content"]
    start = a.index("## Hourly")
    assert a[:start] == b[:start]  # weekly and daily blocks only hold complete periods
    assert a[start:] != b[start:]

    def snapshot(text: str, tf: str) -> str:
        return next(line for line in text.splitlines() if line.startswith(f"{tf} "))

    assert snapshot(a, "1d") == snapshot(b, "1d")  # the last *complete* day and week, not today's
    assert snapshot(a, "1w") == snapshot(b, "1w")
    assert snapshot(a, "1h") != snapshot(b, "1h")
