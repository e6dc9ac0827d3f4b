"""The context builder: budget guarantee, multi-resolution layout, instructions, reproducibility."""

from __future__ import annotations

import hashlib
import json
import re

import pandas as pd
import pytest

from agent.config import DEFAULT_DATA_DIR, Settings
from agent.db.prompts import prompt_text
from agent.errors import ConfigError, DataError
from agent.llm.context import BudgetTooSmall, MarketContextBuilder, budget_from_settings
from agent.llm.protocol import ContextInput, PastDecision, Prompt
from agent.llm.schema import Action, TradeDecision
from agent.llm.tokens import EstimateTokenCounter, TokenCounter, smollm2_counter, smollm2_gguf_path
from agent.market.candles import read_feather
from agent.portfolio import PortfolioState, Position

HOUR_MS = 3_600_000
STEPS = {"1w": pd.Timedelta(days=7), "1d": pd.Timedelta(days=1), "1h": pd.Timedelta(hours=1)}


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    return read_feather(DEFAULT_DATA_DIR / "binance" / "BTC_USDT-1h.feather")


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    """SmolLM2's tokenizer (the real one) when installed, else the estimate."""
    return smollm2_counter() if smollm2_gguf_path() else EstimateTokenCounter()


@pytest.fixture(scope="module")
def builder(counter: TokenCounter) -> MarketContextBuilder:
    return MarketContextBuilder(counter)


def make_ctx(frame: pd.DataFrame, symbol: str = "BTC/USDT", **kw: object) -> ContextInput:
    """A realistic input: an open position with its exit plan and a few decisions, all before t."""
    t_ms = frame.index[-1].value // 1_000_000
    close = float(frame["close"].iloc[-1])
    portfolio = PortfolioState(
        cash=7_500.0,
        positions={
            symbol: Position(
                symbol,
                0.02,
                close * 0.97,
                t_ms - 30 * HOUR_MS,
                close * 0.93,
                close * 1.08,
                "daily close below the 50-day EMA",
            )
        },
        peak_equity=10_400.0,
        day_start_equity=10_050.0,
    )
    decisions = tuple(
        PastDecision(
            t_ms - k * 4 * HOUR_MS,
            Action.HOLD if k % 2 else Action.BUY,
            0.2,
            0.55,
            f"Trend intact, RSI cooling off; decision {k}.",
            0.004 * k if k > 2 else None,
        )
        for k in range(6, 0, -1)
    )
    fields = {
        "symbol": symbol,
        "candles": frame,
        "portfolio": portfolio,
        "marks": {symbol: close},
        "recent_decisions": decisions,
        "allowed_actions": (Action.BUY, Action.HOLD, Action.SELL),
        "max_exposure": 0.3,
    }
    fields.update(kw)
    return ContextInput(**fields)  # type: ignore[arg-type]


def chat_text(prompt: Prompt) -> str:
    """The prompt as a ChatML template renders it (SmolLM2's template)."""
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in prompt.messages)
    return body + "<|im_start|>assistant\n"


@pytest.mark.parametrize("budget", [2_000, 3_000, 8_000, 32_000, 120_000])
def test_prompt_fits_the_budget_as_the_tokenizer_counts_it(
    builder: MarketContextBuilder, counter: TokenCounter, candles: pd.DataFrame, budget: int
) -> None:
    prompt = builder.build(make_ctx(candles.iloc[:-5]), budget)
    real = counter.count(chat_text(prompt))
    assert real <= prompt.estimated_tokens <= budget
    assert prompt.estimated_tokens >= 0.85 * budget  # and the budget is used, not wasted


def test_a_budget_too_small_for_instructions_and_state_is_refused(
    builder: MarketContextBuilder, candles: pd.DataFrame
) -> None:
    with pytest.raises(BudgetTooSmall, match="cannot hold the instructions") as info:
        builder.build(make_ctx(candles), 600)
    assert isinstance(info.value, ConfigError)


def test_no_budget_shows_every_bar_at_base_resolution(
    builder: MarketContextBuilder, candles: pd.DataFrame
) -> None:
    built = builder.render(make_ctx(candles.iloc[:3000]), None)
    assert list(built.mix) == ["1h"] and built.mix["1h"][0] == 3000


def test_history_is_coarsened_before_it_is_dropped(
    builder: MarketContextBuilder, candles: pd.DataFrame
) -> None:
    ctx = make_ctx(candles)
    first_full_day = "2024-09-20 00:00:00+00:00"  # the data starts at 22:00 the day before
    mid = builder.render(ctx, 32_000).mix  # hours too many: older hours become days, nothing dropped
    assert list(mid) == ["1d", "1h"] and mid["1d"][1] == first_full_day
    assert mid["1h"][0] >= 14 * 24  # at least two weeks of hourly bars are kept
    small = builder.render(ctx, 8_000).mix  # then older days become weeks, still from the start
    assert list(small) == ["1w", "1d", "1h"] and small["1w"][1] == "2024-09-23 00:00:00+00:00"
    tiny = builder.render(ctx, 4_000).mix  # then the oldest weeks go first; recent hours stay
    assert tiny["1w"][1] > small["1w"][1] and tiny["1d"][0] >= 7
    assert tiny["1h"][0] >= 24 and tiny["1h"][1].endswith("00:00:00+00:00")

    # Below that, lowering the budget drops the oldest weeks first, then days, then hours.
    sizes = []
    for budget in range(4_000, 1_000, -100):
        try:
            mix = builder.render(ctx, budget).mix
        except BudgetTooSmall:
            break
        starts = [pd.Timestamp(mix[k][1]) for k in ("1w", "1d", "1h") if k in mix]
        ends = [pd.Timestamp(mix[k][2]) + step for k, step in STEPS.items() if k in mix]
        assert starts[1:] == ends[:-1]  # no gap between blocks: coarsened, never holed
        sizes.append(tuple(mix.get(k, (0,))[0] for k in ("1w", "1d", "1h")))
    weeks, days, hours = zip(*sizes, strict=True)
    no_weeks = weeks.index(0)
    fewer_hours = next(i for i, h in enumerate(hours) if h < hours[0])
    assert set(hours[:no_weeks]) == {hours[0]} and set(weeks[no_weeks:]) == {0}
    assert no_weeks < fewer_hours and days[fewer_hours] == 0  # days go before hours do
    blocks = [b.split("\n")[0] for b in builder.build(ctx, 8_000).messages[1]["content"].split("\n## ")[1:]]
    assert [b.split()[0] for b in blocks[:3]] == ["Weekly", "Daily", "Hourly"]  # oldest → newest
    assert [b.split()[0] for b in blocks[3:]] == ["Now", "Account", "Open", "Your", "Decision"]


def test_only_complete_days_and_weeks_are_shown(builder: MarketContextBuilder, candles: pd.DataFrame) -> None:
    frame = candles.loc[:"2025-06-18 13:00"]  # a Wednesday afternoon
    mix = builder.render(make_ctx(frame), 8_000).mix
    assert pd.Timestamp(mix["1d"][2]) + pd.Timedelta(days=1) <= pd.Timestamp("2025-06-17", tz="UTC")
    assert pd.Timestamp(mix["1w"][2]) + pd.Timedelta(days=7) <= pd.Timestamp("2025-06-16", tz="UTC")
    assert mix["1h"][1] == "2025-06-17 00:00:00+00:00"  # hourly since the start of the previous day
    assert mix["1h"][2] == "2025-06-18 13:00:00+00:00"


def test_system_message_never_changes_per_tick_or_symbol(builder: MarketContextBuilder) -> None:
    eth = read_feather(DEFAULT_DATA_DIR / "binance" / "ETH_USDT-1h.feather").iloc[:2500]
    a = builder.build(make_ctx(eth.iloc[:2000], "ETH/USDT"), 8_000).messages[0]
    b = builder.build(make_ctx(eth.iloc[:2321], "ETH/USDT"), 8_000).messages[0]
    sol = read_feather(DEFAULT_DATA_DIR / "binance" / "SOL_USDT-1h.feather").iloc[-1500:]
    c = builder.build(make_ctx(sol, "SOL/USDT"), 20_000).messages[0]
    assert a == b == c and a["role"] == "system"
    assert not re.search(r"\d{4}-\d\d|ETH|SOL", a["content"])


def test_instructions_describe_the_answer_and_state_the_limits(
    builder: MarketContextBuilder, candles: pd.DataFrame
) -> None:
    prompt = builder.build(
        make_ctx(candles, allowed_actions=(Action.HOLD, Action.CLOSE), max_exposure=0.25), 8_000
    )
    system, user = (m["content"] for m in prompt.messages)
    for field in TradeDecision.model_fields:
        assert f'"{field}"' in system
    assert "absolute price" in system and "oldest → newest" in system
    tail = user[prompt.stable_prefix_chars - len(system) :]
    assert "Allowed actions now: hold, close." in tail and "between 0 and 0.25" in tail
    assert '"symbol": "BTC/USDT"' in tail and "absolute prices in this prompt's price units" in tail
    assert "daily close below the 50-day EMA" in tail  # the open position's exit plan is shown
    assert (
        tail.index("## Now")
        < tail.index("## Account")
        < tail.index("## Open positions")
        < tail.index("## Your recent decisions")
        < tail.index("## Decision")
    )


def test_same_inputs_give_the_same_prompt(counter: TokenCounter, candles: pd.DataFrame) -> None:
    first = MarketContextBuilder(counter).build(make_ctx(candles.iloc[:5000]), 10_000)
    second = MarketContextBuilder(counter).build(make_ctx(candles.iloc[:5000]), 10_000)
    assert first == second
    canonical = json.dumps(list(first.messages), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert (
        first.prompt_hash
        == prompt_text(first.messages).digest
        == hashlib.sha256(canonical.encode()).hexdigest()
    )
    assert first.price_scale == 1.0 and first.alias is None


def test_unusable_input_raises_data_error(builder: MarketContextBuilder, candles: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no candles"):
        builder.build(ContextInput("BTC/USDT", candles.iloc[:0], PortfolioState(cash=1.0), {}), 8_000)
    with pytest.raises(DataError, match="ascending"):
        builder.build(make_ctx(candles.iloc[:500].iloc[::-1]), 8_000)
    ctx = make_ctx(candles.iloc[:500])
    held = PortfolioState(cash=1.0, positions={"ETH/USDT": Position("ETH/USDT", 1.0, 2000.0, 0)})
    with pytest.raises(DataError, match="no mark price for held symbol ETH/USDT"):
        builder.build(ContextInput("BTC/USDT", ctx.candles, held, {}), 8_000)


def test_daily_candles_get_weekly_history_too(builder: MarketContextBuilder) -> None:
    daily = read_feather(DEFAULT_DATA_DIR / "binance" / "XRP_USDT-1d.feather")
    mix = builder.render(make_ctx(daily, "XRP/USDT"), 6_000).mix
    assert list(mix) == ["1w", "1d"]
    assert pd.Timestamp(mix["1w"][2]) + pd.Timedelta(days=7) == pd.Timestamp(mix["1d"][1])


def test_budget_comes_from_settings() -> None:
    assert budget_from_settings(Settings(llm={"context_tokens": 30_000})) == 30_000
    assert budget_from_settings(Settings()) == 8192 - 512 - 256  # embedded model: local_n_ctx
    remote = Settings(llm={"base_url": "http://gpu:8000/v1", "max_tokens": 1000})
    assert budget_from_settings(remote, max_model_len=262_144) == 262_144 - 1000 - 256
    assert budget_from_settings(remote) == 8192 - 1000 - 256  # not reported: DEFAULT_CONTEXT_LEN
    built = MarketContextBuilder.from_settings(
        Settings(llm={"leakage_control": True}), EstimateTokenCounter()
    )
    assert built.leakage_control and built.default_budget == 8192 - 512 - 256


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_the_index_resolution_does_not_change_the_prompt(
    builder: MarketContextBuilder, candles: pd.DataFrame, unit: str
) -> None:
    """pandas 3 builds microsecond indexes by default (date_range, parsed strings): the bars, their days
    and the timeframe read from their spacing are the same at any resolution."""
    frame = candles.iloc[:600]
    other = frame.copy()
    other.index = frame.index.as_unit(unit)
    told = MarketContextBuilder(builder.counter, timeframe="1h")
    assert told.build(make_ctx(other), 8_000) == told.build(make_ctx(frame), 8_000)
    assert builder.build(make_ctx(other), 8_000) == builder.build(make_ctx(frame), 8_000)
    anonymised = MarketContextBuilder(builder.counter, leakage_control=True)
    assert anonymised.build(make_ctx(other), 8_000) == anonymised.build(make_ctx(frame), 8_000)
