"""Incremental context: the cached builder gives byte for byte the prompt the from-scratch builder gives,
which is the prompt the builder gave before the cache existed (pinned digests), at random bars and budgets,
tick by tick, out of order, across quarters (leakage control) and for other timeframes."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import DEFAULT_DATA_DIR
from agent.llm.context import BudgetTooSmall, BuiltContext, MarketContextBuilder
from agent.llm.context_cache import MAX_DISCLOSURES, MAX_SYMBOLS
from agent.llm.protocol import ContextInput, PastDecision
from agent.llm.schema import Action
from agent.market.candles import read_feather
from agent.portfolio import PortfolioState, Position

HOUR_MS = 3_600_000
_PIECE = re.compile(r"\d|[^\W\d_]+|[^\w\s]|\n")
BUDGETS = (1_500, 2_500, 4_000, 8_000, 32_000)
"""All but the last force the history to be coarsened or cut (the bundled year needs ~170k tokens)."""


class PieceCounter:
    """A deterministic tokenizer for tests: each digit, word, other symbol and newline is one token."""

    name = "test:pieces"

    def count(self, text: str) -> int:
        return len(_PIECE.findall(text))


@lru_cache(maxsize=8)
def candles(name: str) -> pd.DataFrame:
    return read_feather(DEFAULT_DATA_DIR / "binance" / f"{name}.feather")


def make_ctx(frame: pd.DataFrame, symbol: str = "BTC/USDT") -> ContextInput:
    """An open position with its exit plan and decisions around t (the one after t is never shown)."""
    t_ms = int(frame.index[-1].value // 1_000_000)
    close = float(frame["close"].iloc[-1])
    position = Position(
        symbol, 0.02, close * 0.97, t_ms - 30 * HOUR_MS, close * 0.93, close * 1.08, "a close below 1.05"
    )
    decisions = tuple(
        PastDecision(
            t_ms - k * 4 * HOUR_MS,
            Action.HOLD if k % 2 else Action.BUY,
            0.2,
            0.55,
            f"RSI cooling; note {k}.",
            0.004 * k if k > 2 else None,
        )
        for k in range(6, -2, -1)
    )
    portfolio = PortfolioState(
        cash=7_500.0, positions={symbol: position}, peak_equity=10_400.0, day_start_equity=10_050.0
    )
    return ContextInput(
        symbol, frame, portfolio, {symbol: close}, decisions, (Action.BUY, Action.HOLD, Action.SELL), 0.3
    )


def render(builder: MarketContextBuilder, ctx: ContextInput, budget: int | None) -> BuiltContext | str:
    try:
        return builder.render(ctx, budget)
    except BudgetTooSmall as e:
        return f"BudgetTooSmall: {e}"


def builders(leakage: bool, **kw: object) -> tuple[MarketContextBuilder, MarketContextBuilder]:
    """(incremental, from scratch) with the same configuration."""
    inc = MarketContextBuilder(PieceCounter(), leakage_control=leakage, **kw)  # type: ignore[arg-type]
    ref = MarketContextBuilder(PieceCounter(), leakage_control=leakage, incremental=False, **kw)  # type: ignore[arg-type]
    return inc, ref


def assert_same(
    inc: MarketContextBuilder, ref: MarketContextBuilder, ctx: ContextInput, budget: int | None
) -> None:
    got, want = render(inc, ctx, budget), render(ref, ctx, budget)
    if isinstance(want, str):
        assert got == want
        return
    assert isinstance(got, BuiltContext)
    assert got.prompt.messages == want.prompt.messages  # byte for byte
    assert got.prompt.prompt_hash == want.prompt.prompt_hash
    assert got.prompt.estimated_tokens == want.prompt.estimated_tokens
    assert got == want  # and everything else: prefix length, price scale, alias, layout, mix


# --- today's prompts, pinned ---------------------------------------------------------------------

GOLDEN = [  # (data, symbol, bars, budget, leakage) -> the prompt's digest at 9ce4786, before the cache
    (("BTC_USDT-1h", "BTC/USDT", 8278, None, False), "fbfe8ed503176f83e70c 172989 224872 1.0 None"),
    (("BTC_USDT-1h", "BTC/USDT", 5477, 1500, True), "caea7d35659b49439249 1500 2920 825.5 ASSET_A"),
    (("BTC_USDT-1h", "BTC/USDT", 5994, 2500, False), "43f8a17b4ee39e60a16f 2331 3803 1.0 None"),
    (("BTC_USDT-1h", "BTC/USDT", 7860, 4000, True), "4888c453ff6a64eefe5b 3698 5754 1071.4651 ASSET_A"),
    (("BTC_USDT-1h", "BTC/USDT", 5067, 8000, False), "3b451662120b578f61f4 6621 9234 1.0 None"),
    (("BTC_USDT-1h", "BTC/USDT", 6796, 32000, True), "92af30c9d956413778bb 24587 32565 825.5 ASSET_A"),
    (("BTC_USDT-1h", "BTC/USDT", 7303, None, False), "bd6c5699b2c73ff7e257 152676 198587 1.0 None"),
    (("BTC_USDT-1h", "BTC/USDT", 1974, 1500, True), "c5ba41fed63aee29ebac 1492 2928 633.276 ASSET_A"),
    (("BTC_USDT-1h", "BTC/USDT", 488, 2500, False), "537e0fdea03b06802239 2119 3642 1.0 None"),
    (("BTC_USDT-1h", "BTC/USDT", 2631, 4000, True), "ffb650083c1022421315 3606 5696 935.76 ASSET_A"),
    (("BTC_USDT-1h", "BTC/USDT", 2498, 8000, False), "b37315ad2e80ad4a6224 5458 7899 1.0 None"),
    (("BTC_USDT-1h", "BTC/USDT", 7653, 32000, True), "d64d55bd66a9a5e9cf29 26558 34953 1071.4651 ASSET_A"),
    (("BTC_USDT-1h", "BTC/USDT", 7995, None, False), "b9b9522ad3f0697952e9 167066 217220 1.0 None"),
    (("BTC_USDT-1h", "BTC/USDT", 48, 1500, True), "984ce4947ee80bedf15a 1463 2991 628.7976 ASSET_A"),
    (("BTC_USDT-1h", "BTC/USDT", 4379, 2500, False), "dadb0cf52bfab239ac62 2057 3445 1.0 None"),
    (("BTC_USDT-1h", "BTC/USDT", 7195, 4000, True), "9dd85039422f9726c27d 3840 5944 1071.4651 ASSET_A"),
    (("BTC_USDT-1h", "BTC/USDT", 1153, 8000, False), "8a709ba854315193b3dd 3818 5883 1.0 None"),
    (("BTC_USDT-1h", "BTC/USDT", 6983, 32000, True), "9ccf826a71db1c08a7ef 25394 33547 1071.4651 ASSET_A"),
    (("BTC_USDT-1h", "BTC/USDT", 8761, 120000, False), "d20a7a1892755c73fdc6 94468 122950 1.0 None"),
    (("BTC_USDT-1h", "BTC/USDT", 8761, 700, False), "BudgetTooSmall"),
    (("ETH_USDT-1h", "ETH/USDT", 5000, 6000, True), "c1345ba6c440c2bef091 5109 7502 18.2243 ASSET_A"),
    (("ETH_USDT-1h", "ETH/USDT", 7001, 16000, False), "6fb90e2b85465a98717a 12997 17142 1.0 None"),
    (("BTC_USDT-1d", "BTC/USDT", 900, 6000, False), "45e0715a1dd24b77560e 5319 7395 1.0 None"),
    (("BTC_USDT-1d", "BTC/USDT", 1500, 20000, True), "3a7132e641dad6ec1c10 16788 21647 633.276 ASSET_A"),
]


def digest(builder: MarketContextBuilder, ctx: ContextInput, budget: int | None) -> str:
    try:
        p = builder.build(ctx, budget)
    except BudgetTooSmall:
        return "BudgetTooSmall"
    return f"{p.prompt_hash[:20]} {p.estimated_tokens} {p.stable_prefix_chars} {p.price_scale!r} {p.alias}"


@pytest.mark.parametrize("incremental", [False, True])
def test_prompts_are_byte_identical_to_those_before_the_cache(incremental: bool) -> None:
    """Cached answers are keyed by prompt hash: a rerun must send the very same prompts as before."""
    shared = {
        leakage: MarketContextBuilder(PieceCounter(), leakage_control=leakage) for leakage in (False, True)
    }
    for (data, symbol, bars, budget, leakage), want in GOLDEN:
        builder = (
            shared[leakage]  # one builder across symbols, timeframes and bars, in no order
            if incremental
            else MarketContextBuilder(PieceCounter(), leakage_control=leakage, incremental=False)
        )
        assert digest(builder, make_ctx(candles(data).iloc[:bars], symbol), budget) == want, (data, bars)


# --- incremental == from scratch -----------------------------------------------------------------


@pytest.mark.parametrize("leakage", [False, True])
def test_random_bars_and_budgets_equal_a_build_from_scratch(leakage: bool) -> None:
    """200 random bars of the bundled year, in random order (so the cache is extended, sliced back to an
    earlier bar and extended again), each with a budget that forces truncation or not; every third prompt
    in the stateless mode (no account)."""
    frame = candles("BTC_USDT-1h")
    rng = np.random.default_rng(11 if leakage else 12)
    inc, ref = builders(leakage)
    for i, n in enumerate(rng.integers(2, len(frame) + 1, 200).tolist()):
        ctx = make_ctx(frame.iloc[:n])
        if i % 3 == 2:
            ctx = replace(ctx, portfolio=None, recent_decisions=())
        assert_same(inc, ref, ctx, BUDGETS[i % len(BUDGETS)])


@pytest.mark.parametrize(("leakage", "start"), [(False, "2025-03-28 20:00"), (True, "2025-06-26 05:00")])
def test_tick_by_tick_equals_a_build_from_scratch(leakage: bool, start: str) -> None:
    """Consecutive bars across midnights, a Monday and (leakage control) a new quarter's reference."""
    frame = candles("BTC_USDT-1h")
    first = int(frame.index.searchsorted(pd.Timestamp(start, tz="UTC")))
    inc, ref = builders(leakage)
    for n in range(first, first + 130):
        assert_same(inc, ref, make_ctx(frame.iloc[:n]), 6_000 if n % 3 else 3_000)
    if leakage:  # the quarter's reference moved once: two disclosures' texts at most
        assert len(inc._history_cache()._symbols["BTC/USDT"]._chunks) <= MAX_DISCLOSURES  # noqa: SLF001


def test_other_timeframes_equal_a_build_from_scratch() -> None:
    hourly = candles("BTC_USDT-1h").iloc[:3_000]
    quarter_hours = hourly.set_axis(
        pd.DatetimeIndex(hourly.index[0] + pd.Timedelta(minutes=15) * np.arange(len(hourly)), name="date")
    )
    daily = candles("BTC_USDT-1d")
    rng = np.random.default_rng(3)
    for frame, timeframe in ((quarter_hours, None), (quarter_hours, "15m"), (daily, None), (daily, "1d")):
        for leakage in (False, True):
            inc, ref = builders(leakage, timeframe=timeframe)
            for n in sorted(rng.integers(30, len(frame) + 1, 6).tolist()):
                assert_same(inc, ref, make_ctx(frame.iloc[:n]), 5_000)


def test_a_revised_bar_or_another_series_is_not_mixed_with_the_cached_one() -> None:
    frame = candles("BTC_USDT-1h").iloc[:4_000]
    inc, ref = builders(False)
    inc.build(make_ctx(frame), 8_000)  # the cache holds 4,000 bars
    revised = frame.copy()
    revised.iloc[2_500, revised.columns.get_loc("volume")] *= 1.5  # one bar revised in the past
    for ctx in (make_ctx(revised), make_ctx(revised.iloc[:3_000]), make_ctx(frame.iloc[1_000:3_500])):
        assert_same(inc, ref, ctx, 8_000)
    eth = candles("ETH_USDT-1h").iloc[:3_000].copy()
    eth.index = frame.index[:3_000]  # another symbol's bars under the same name and times
    assert_same(inc, ref, make_ctx(eth), 8_000)


def test_irregular_spacing_at_the_cut_falls_back_to_the_scratch_path() -> None:
    """A stored bar less than one timeframe after t (23:30 after a cut at 23:00) lies in the day that is
    complete at t + 1h: a day from the cache would hold it, so such a cut is built from scratch."""
    frame = candles("BTC_USDT-1h").iloc[:600]
    k = next(i for i in range(300, 600) if frame.index[i].hour == 23)
    extra = frame.iloc[[k + 1]].set_axis(frame.index[[k]] + pd.Timedelta(minutes=30))
    odd = pd.concat([frame.iloc[: k + 1], extra, frame.iloc[k + 1 :]])
    inc, ref = builders(False, timeframe="1h")
    inc.build(make_ctx(odd), 8_000)
    for n in (k, k + 1, k + 2, k + 30):
        assert_same(inc, ref, make_ctx(odd.iloc[:n]), 8_000)


@pytest.mark.parametrize("leakage", [False, True])
def test_a_prepared_series_read_at_earlier_bars_equals_a_build_from_scratch(leakage: bool) -> None:
    """`prepare` hands over the whole window (bars after t included); each build reads only up to t."""
    frame = candles("BTC_USDT-1h")
    inc, ref = builders(leakage)
    inc.prepare("BTC/USDT", frame)
    for i, n in enumerate(sorted(np.random.default_rng(8).integers(2, len(frame), 40).tolist())):
        assert_same(inc, ref, make_ctx(frame.iloc[:n]), BUDGETS[i % len(BUDGETS)])


def test_builds_from_several_threads_equal_a_build_from_scratch() -> None:
    frame = candles("BTC_USDT-1h")
    inc, ref = builders(False)
    bars = np.random.default_rng(5).integers(100, len(frame) + 1, 24).tolist()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda n: render(inc, make_ctx(frame.iloc[:n]), 4_000), bars))
    assert got == [render(ref, make_ctx(frame.iloc[:n]), 4_000) for n in bars]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(1, 3_000), min_size=1, max_size=6),
    budget=st.sampled_from([None, *BUDGETS]),
    leakage=st.booleans(),
)
def test_any_sequence_of_cuts_equals_a_build_from_scratch(
    cuts: list[int], budget: int | None, leakage: bool
) -> None:
    frame = candles("ETH_USDT-1h").iloc[:3_000]
    inc, ref = builders(leakage)
    for n in cuts:
        if n < 2:  # one bar: the timeframe cannot be read (both raise the same DataError)
            continue
        assert_same(inc, ref, make_ctx(frame.iloc[:n], "ETH/USDT"), budget)


# --- memory --------------------------------------------------------------------------------------


def test_ticks_add_no_memory_beyond_the_bars_and_the_days_they_complete() -> None:
    """Per tick only the new bar is stored; texts are kept per completed day, never per tick (the volatile
    tail and the day in progress are not memoised)."""
    frame = candles("BTC_USDT-1h")
    start = int(frame.index.searchsorted(pd.Timestamp("2025-05-05 00:00", tz="UTC")))  # a Monday
    builder = MarketContextBuilder(PieceCounter())
    builder.build(make_ctx(frame.iloc[:start]), 8_000)
    counted = builder.counter.misses
    for n in range(start + 1, start + 49):  # two days of hourly ticks
        builder.build(make_ctx(frame.iloc[:n]), 8_000)
    history = builder._history_cache()._symbols["BTC/USDT"]  # noqa: SLF001
    assert len(history) == start + 48
    # two new days, each a day of hourly bars and a daily bar, counted once; before the cache, every
    # tick memoised its tail and its day in progress as well (>= 96 new texts)
    assert builder.counter.misses - counted <= 2 * 2
    (chunks,) = history._chunks.values()  # noqa: SLF001
    days = frame.index[: start + 48].floor("D").nunique()
    assert len(chunks["base"]) == days - 1  # one text per complete day; the day in progress is not kept


def test_at_most_max_symbols_are_kept() -> None:
    frame = candles("BTC_USDT-1h").iloc[:200]
    builder = MarketContextBuilder(PieceCounter())
    for k in range(MAX_SYMBOLS + 3):
        builder.build(make_ctx(frame, f"S{k}/USDT"), 8_000)
    kept = builder._history_cache().bars()  # noqa: SLF001
    assert list(kept) == [f"S{k}/USDT" for k in range(3, MAX_SYMBOLS + 3)]  # the least recently used went


def _read_only(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` on a read-only copy of its values, as `FrameSource` serves it."""
    values = np.array(frame.to_numpy(dtype=np.float64).T, order="C")
    values.flags.writeable = False
    return pd.DataFrame(values.T, index=frame.index, columns=frame.columns, copy=False)


def test_read_only_bars_already_compared_are_not_compared_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stored series is checked against each input bit for bit; for slices of a read-only frame it
    already checked, the prefix cannot have changed, so only the new rows are read (an O(1) check per
    build instead of one pass over years of bars). The prompt is the same."""
    frame = _read_only(candles("BTC_USDT-1h").iloc[:3_000])
    inc, ref = builders(False)
    inc.build(make_ctx(frame.iloc[:2_000]), 8_000)

    def no_full_pass(*_: object) -> bool:
        raise AssertionError("the stored prefix was compared again")

    monkeypatch.setattr(np, "array_equal", no_full_pass)
    for n in (2_000, 2_001, 2_002, 2_500, 1_500, 3_000):
        got = inc.build(make_ctx(frame.iloc[:n]), 8_000)
        monkeypatch.undo()
        assert got == ref.build(make_ctx(frame.iloc[:n]), 8_000)
        monkeypatch.setattr(np, "array_equal", no_full_pass)


def test_a_bar_revised_in_place_in_a_writable_frame_is_seen() -> None:
    """A writable frame can change under the cache between builds: it is compared in full every time."""
    frame = candles("BTC_USDT-1h").iloc[:3_000].copy()
    inc, ref = builders(False)
    inc.build(make_ctx(frame), 8_000)
    frame.iloc[2_900, frame.columns.get_loc("close")] *= 1.01  # revised in place, same memory
    assert_same(inc, ref, make_ctx(frame), 8_000)
    assert_same(inc, ref, make_ctx(frame.iloc[:2_950]), 8_000)
