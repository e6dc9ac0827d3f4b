"""Prefix-cache layout: consecutive hourly ticks share a long identical prefix; within a day they append."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from agent.config import DEFAULT_DATA_DIR
from agent.llm.context import MarketContextBuilder
from agent.llm.protocol import ContextInput, PastDecision, Prompt
from agent.llm.schema import Action
from agent.llm.tokens import smollm2_counter, smollm2_gguf_path
from agent.market.candles import read_feather
from agent.portfolio import PortfolioState, Position

TICKS = 26
START = "2025-03-04 22:00"  # a Tuesday night: one midnight early on, then a whole day, then midnight


@lru_cache(maxsize=4)
def ticks(leakage: bool, budget: int, start: str = START) -> list[Prompt]:
    """Prompts for TICKS consecutive hourly bars from `start` (an open position, growing decisions)."""
    candles = read_feather(DEFAULT_DATA_DIR / "binance" / "BTC_USDT-1h.feather")
    first = int(candles.index.searchsorted(pd.Timestamp(start, tz="UTC")))
    counter = smollm2_counter() if smollm2_gguf_path() else None
    builder = MarketContextBuilder(counter, leakage_control=leakage)
    out = []
    for end in range(first, first + TICKS):
        frame = candles.iloc[: end + 1]
        t_ms = frame.index[-1].value // 1_000_000
        close = float(frame["close"].iloc[-1])
        portfolio = PortfolioState(
            cash=6_000.0,
            positions={
                "BTC/USDT": Position(
                    "BTC/USDT", 0.05, 80_000.0, t_ms - 50 * 3_600_000, 76_000.0, 90_000.0, "close below 76k"
                )
            },
        )
        decisions = tuple(
            PastDecision(t_ms - k * 3_600_000, Action.HOLD, 0.3, 0.5, f"tick {k}", None)
            for k in range(min(8, end - first), 0, -1)
        )
        ctx = ContextInput("BTC/USDT", frame, portfolio, {"BTC/USDT": close}, decisions)
        out.append(builder.build(ctx, budget))
    return out


def text(prompt: Prompt) -> str:
    return "".join(m["content"] for m in prompt.messages)


def common(a: str, b: str) -> int:
    n = min(len(a), len(b))
    x = np.frombuffer(a[:n].encode("utf-32-le"), dtype=np.uint32)
    y = np.frombuffer(b[:n].encode("utf-32-le"), dtype=np.uint32)
    diff = np.flatnonzero(x != y)
    return int(diff[0]) if len(diff) else n


@pytest.mark.slow
@pytest.mark.parametrize(("leakage", "budget"), [(False, 32_000), (True, 32_000), (False, 120_000)])
def test_consecutive_ticks_share_at_least_95_percent(leakage: bool, budget: int) -> None:
    prompts = ticks(leakage, budget)
    texts = [text(p) for p in prompts]
    shares = [common(a, b) / len(b) for a, b in zip(texts, texts[1:], strict=False)]
    assert np.mean(shares) >= 0.95
    if smollm2_gguf_path():  # the same in tokens, as the server's prefix cache sees it
        tok = smollm2_counter()._llama
        ids = [np.array(tok.tokenize(t.encode(), add_bos=False, special=True)) for t in texts[:6]]
        token_shares = []
        for a, b in zip(ids, ids[1:], strict=False):
            n = min(len(a), len(b))
            diff = np.flatnonzero(a[:n] != b[:n])
            token_shares.append((int(diff[0]) if len(diff) else n) / len(b))
        assert np.mean(token_shares) >= 0.95


def test_within_a_day_each_tick_only_appends() -> None:
    prompts = ticks(False, 32_000)
    assert "Latest closed bar t: 2025-03-04 23:00 UTC " in prompts[1].messages[1]["content"]
    for before, after in zip(prompts[1:24], prompts[2:25], strict=True):  # t = 23:00 → 22:00 next day
        stable = text(before)[: before.stable_prefix_chars]
        assert text(after).startswith(stable)
        assert after.stable_prefix_chars > before.stable_prefix_chars  # one more bar in the log
    # the shared part is the history, not just the system message: the volatile tail is small
    assert all(p.stable_prefix_chars > 0.9 * len(text(p)) for p in prompts)
