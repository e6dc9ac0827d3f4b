"""The context builder: point-in-time market history and account state → a prompt within a token budget.

Contracts:
- Point in time: only `ctx.candles` (whose last row is the last closed bar t), `ctx.portfolio`,
  `ctx.marks` and the decisions with `bar_ts <= t` are read. Days and weeks are resampled from the frame
  and shown only when complete (period end <= t + one bar); every indicator (TA-Lib) is causal.
- Layout, oldest → newest: system message (static), then in the user message the symbol line, weekly
  bars, daily bars, base-timeframe bars up to t (the stable, append-only part), then the volatile tail:
  indicator snapshot, account, open positions with exit plans, recent decisions, the question.
- Blocks are anchored to calendar boundaries (weeks start on Monday 00:00 UTC; the smallest base block
  starts at 00:00 UTC of the previous day), so within an anchoring period each tick only appends a row.
  This holds when callers pass history from a fixed first bar (the stored history, as the backtest
  does), not a sliding window: indicator warm-up and the first complete day/week depend on that bar.
- Budget: tokens are counted per block with the injected `TokenCounter` (cached by text): each final
  chunk alone, the day in progress together with the tail after it. When the whole
  history does not fit, the oldest part is coarsened first (base bars → days → weeks, each finer block
  keeping at least a share of the budget), then dropped oldest-first: weeks, then days, then base bars.
  The instructions, the latest bars and the account are never dropped. A layout is chosen with room for
  the rows still to come in its anchoring period (so it stays put), and the result is always <= budget
  as counted by the same counter (`Prompt.estimated_tokens`, chat-template overhead included).
- A budget that cannot hold the instructions and current state raises `BudgetTooSmall` (a ConfigError).
- Leakage control (`agent.llm.leakage`) aliases the symbol, numbers the days and rebases prices; the
  returned `Prompt.price_scale`/`alias` map the answer back.
- `Prompt.stable_prefix_chars` counts characters over the concatenated message contents (system, then
  user) up to the end of the history blocks.
- Incremental (the default): each symbol's history levels are kept for the builder's life
  (`agent.llm.context_cache`): completed days and periods are encoded and counted once, a build adds the
  day in progress and the tail. The prompt is byte-identical to `incremental=False`, which rebuilds the
  levels from the whole frame at every call (`agent.llm.levels.scratch_levels`; tested). The texts that
  change every bar, the day in progress (the last base chunk) and the tail, follow each other in the
  prompt and are counted as one text (`agent.llm.levels.volatile_tokens`: one count per bar, one server
  round trip), through a small memo (`VOLATILE_MEMO` entries), so the long-lived count memo does not grow
  per bar. Both paths count that way. `prepare(symbol, candles)` hands a longer series over
  ahead of the builds that read it; `warm(symbol, candles)` builds the market part of a later bar's prompt
  ahead of its build (same prompt; the build then only adds the tail).
- Thread-safe: builds, `prepare` and `warm` of one builder run one at a time (they share the count memos).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from agent.db.prompts import prompt_text
from agent.errors import ConfigError, DataError
from agent.llm import prompts
from agent.llm.context_cache import CacheSettings, HistoryCache, MarketView
from agent.llm.encoding import last_bars
from agent.llm.leakage import DEFAULT_ALIAS, Disclosure, anonymise
from agent.llm.levels import COLUMNS as COLUMNS  # re-exported: the columns each block shows
from agent.llm.levels import Count, Level, scratch_levels, timeframe_name, volatile_tokens
from agent.llm.protocol import ContextInput, Prompt
from agent.llm.tokens import (
    CachingTokenCounter,
    TokenCounter,
    TokenizerFallback,
    default_counter,
    take_tokenizer_fallback,
)
from agent.market.candles import COLUMNS as CANDLE_COLUMNS
from agent.market.candles import TIMEFRAME_MS, timeframe_ms

if TYPE_CHECKING:
    from agent.config import Settings

SPANS_WEEKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
"""Block lengths tried, in whole weeks before the current week (about x1.4 apart)."""
MESSAGE_OVERHEAD = 8
"""Tokens a chat template adds around each message (role markers, separators)."""
REPLY_OVERHEAD = 16
"""Tokens of the assistant header the template appends (generation prompt, empty think block)."""
DEFAULT_CONTEXT_LEN = 8192
"""Context length assumed when the server reports none (the prompt budget is this minus the output)."""
VOLATILE_MEMO = 64
"""Counts of per-bar texts kept (the long-lived count memo keeps only texts that recur)."""
BASE_SHARE, DAILY_SHARE = 0.5, 0.6
"""Coarsening stops once base bars fit in this share of the history budget, then once days fit in this
share of what is left; beyond that, the oldest history is dropped instead."""
_ALL = int(np.iinfo(np.int64).min)
_DAY_NS = 86_400_000_000_000
_WEEK_NS = 7 * _DAY_NS


class BudgetTooSmall(ConfigError):
    """The token budget cannot hold the instructions and the current state."""


@dataclass(frozen=True)
class Layout:
    """Where blocks start (ns since epoch): weekly [a2, a1), daily [a1, a0), base bars [a0, t]."""

    a2: int
    a1: int
    a0: int
    keep: int | None = None
    """Show only the last `keep` base bars (last resort for tiny budgets)."""


@dataclass(frozen=True)
class BuiltContext:
    """A prompt plus the layout the budget produced (for benchmarks and logs)."""

    prompt: Prompt
    layout: Layout
    mix: dict[str, tuple[int, str, str]]
    """Per non-empty block: (bars, first bar, last bar) with real UTC dates."""


class MarketContextBuilder:
    """Implements `agent.llm.protocol.ContextBuilder` for one-symbol decision prompts."""

    def __init__(
        self,
        counter: TokenCounter | None = None,
        *,
        leakage_control: bool = False,
        atr_period: int = 14,
        default_budget: int | None = None,
        timeframe: str | None = None,
        alias: str = DEFAULT_ALIAS,
        max_decisions: int = 8,
        incremental: bool = True,
    ) -> None:
        """Configure the builder.

        Args:
            counter: the tokenizer budgets are counted with (default: SmolLM2's, else the estimate).
            leakage_control: hide ticker, dates and price level (see `agent.llm.leakage`).
            atr_period: ATR period shown to the model (the risk layer's `risk.atr_period`).
            default_budget: the budget when `build` gets None; None = no limit.
            timeframe: the candles' timeframe; None = inferred from the index.
            alias: the symbol's name under leakage control.
            max_decisions: how many recent decisions the prompt shows.
            incremental: keep each symbol's history levels between calls (`agent.llm.context_cache`);
                False rebuilds them from the whole frame at every call (the reference, byte-identical).
        """
        inner = counter if counter is not None else default_counter()
        self.counter = inner if isinstance(inner, CachingTokenCounter) else CachingTokenCounter(inner)
        self.leakage_control = leakage_control
        self.atr_period = atr_period
        self.default_budget = default_budget
        self.timeframe = pd.Timedelta(milliseconds=timeframe_ms(timeframe)) if timeframe else None
        self.alias = alias
        self.max_decisions = max_decisions
        self.incremental = incremental
        self._cache: HistoryCache | None = None
        self._lock = threading.RLock()
        """Builds share the count memos and the cache: one at a time (they are CPU-bound anyway)."""
        self._volatile = CachingTokenCounter(self.counter.inner, max_entries=VOLATILE_MEMO)
        """Counts texts that change at every bar (the tail, the day in progress): a few kept, for the
        rebuilds of the same bar (a halved budget), not one per bar."""

    @classmethod
    def from_settings(
        cls, settings: Settings, counter: TokenCounter | None = None, max_model_len: int | None = None
    ) -> MarketContextBuilder:
        """A builder configured from `settings` (budget: `llm.context_tokens` or from `max_model_len`)."""
        return cls(
            counter,
            leakage_control=settings.llm.leakage_control,
            atr_period=settings.risk.atr_period,
            default_budget=budget_from_settings(settings, max_model_len),
            timeframe=settings.timeframe,
        )

    def take_tokenizer_fallback(self) -> TokenizerFallback | None:
        """Whether the tokenizer failed and the estimate took over: reported once, then None."""
        return take_tokenizer_fallback(self.counter)

    def build(self, ctx: ContextInput, budget_tokens: int | None = None) -> Prompt:
        """The prompt for `ctx` within `budget_tokens` (None = the builder's default budget)."""
        return self.render(ctx, budget_tokens).prompt

    def render(self, ctx: ContextInput, budget_tokens: int | None = None) -> BuiltContext:
        """Like `build`, also returning the layout chosen."""
        with self._lock:
            return self._render(ctx, budget_tokens)

    def _render(self, ctx: ContextInput, budget_tokens: int | None) -> BuiltContext:
        view = self._cached_view(ctx) if self.incremental else None
        volatile = self._volatile.count if view is not None else self.counter.count
        if view is None:
            view = self._scratch_view(ctx)
        levels, tf, now, disc = view.levels, view.tf, view.now, view.disc
        base_name = levels[0].name
        system = prompts.system_message(base_name, disc.anonymised)
        head = prompts.intro(disc.name, disc.quote, base_name)
        tail = prompts.tail_text(ctx, disc, [(lv.name, lv.frame) for lv in levels], tf, self.max_decisions)
        moving = _Moving(tail, volatile, volatile_tokens(levels[0], tail, volatile))
        fixed = sum(self.counter.count(x) + 1 for x in (system, head)) + moving.tokens
        fixed += 2 * MESSAGE_OVERHEAD + REPLY_OVERHEAD
        planner = _Planner(levels, self.counter.count, now, tf, fixed, moving)
        layout = planner.plan(budget_tokens if budget_tokens is not None else self.default_budget)
        history, mix = _history(levels, layout)
        user = head + history + tail
        messages = ({"role": "system", "content": system}, {"role": "user", "content": user})
        stored = prompt_text(messages)  # the hash, and the text the call store keeps
        prompt = Prompt(
            messages=messages,
            prompt_hash=stored.digest,
            estimated_tokens=planner.cost(layout),
            stable_prefix_chars=len(system) + len(head) + len(history),
            price_scale=disc.price_scale,
            alias=disc.alias,
            stored=stored,
        )
        return BuiltContext(prompt=prompt, layout=layout, mix=mix)

    def prepare(self, symbol: str, candles: pd.DataFrame) -> None:
        """Extend `symbol`'s cached history to `candles` ahead of the builds that will read it.

        Optional: `build` extends it anyway. A caller holding a longer series than the bar it builds for
        (a backtest's whole window) computes indicators and complete periods once instead of once per bar;
        each build still reads only the bars up to its own t (the cache slices point in time).
        """
        if self.incremental:
            with self._lock:
                self._history_cache().prepare(symbol, candles)

    def warm(self, symbol: str, candles: pd.DataFrame) -> None:
        """Build the market part of the prompt at the last bar of `candles` ahead of its `build` (complete
        periods encoded and counted, the day in progress extended), so that build only adds the tail.

        For a caller that knows its next bar while it waits (an agent backtest in the stateful prompt mode,
        during the current bar's requests). The prompt is the same with or without it; a no-op without the
        incremental cache or for input the cache does not handle (the build raises its errors then)."""
        if self.incremental:
            with self._lock:
                self._history_cache().view(symbol, candles)

    def _history_cache(self) -> HistoryCache:
        """The cache for the current configuration (a changed configuration starts an empty one)."""
        wanted = CacheSettings(self.timeframe, self.atr_period, self.leakage_control, self.alias)
        if self._cache is None or self._cache.settings != wanted:
            self._cache = HistoryCache(wanted, self.counter.count)
        return self._cache

    def _cached_view(self, ctx: ContextInput) -> MarketView | None:
        """The market part from the cache, or None when the input needs the scratch path."""
        return self._history_cache().view(ctx.symbol, ctx.candles)

    def _scratch_view(self, ctx: ContextInput) -> MarketView:
        """The market part computed from the whole frame (validates the input, raising `DataError`)."""
        frame, tf = _validated(ctx.candles, ctx.symbol, self.timeframe)
        now = frame.index[-1] + tf
        disc = (
            anonymise(ctx.symbol, frame, self.alias) if self.leakage_control else Disclosure.plain(ctx.symbol)
        )
        return MarketView(
            tf, now, disc, scratch_levels(frame, tf, now, disc, self.atr_period, self.counter.count)
        )


def budget_from_settings(settings: Settings, max_model_len: int | None = None, margin: int = 256) -> int:
    """The prompt budget: `llm.context_tokens`, else the context length − `llm.max_tokens` − `margin`.

    The context length is `max_model_len` as discovered; for the embedded model `llm.local_n_ctx`; when the
    server reports none, `DEFAULT_CONTEXT_LEN` (a common serving default; never unbounded). At least 512.
    """
    if settings.llm.context_tokens is not None:
        return settings.llm.context_tokens
    if max_model_len is None:
        max_model_len = settings.llm.local_n_ctx if settings.llm.base_url is None else DEFAULT_CONTEXT_LEN
    return max(512, max_model_len - settings.llm.max_tokens - margin)


# --- layout planning -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Moving:
    """The part of a prompt that changes at every bar: the day in progress (if any) and the tail."""

    tail: str
    count: Count
    """The counter for texts that change at every bar."""
    tokens: int
    """`volatile_tokens` of the day in progress and the tail (part of the planner's `fixed`)."""


class _Planner:
    """Chooses block anchors: coarsen the oldest history first, then drop it oldest-first."""

    def __init__(
        self,
        levels: list[Level],
        count: Callable[[str], int],
        now: pd.Timestamp,
        tf: pd.Timedelta,
        fixed: int,
        moving: _Moving,
    ) -> None:
        """`fixed`: the tokens of everything but the history's final chunks (`moving.tokens` included)."""
        self.levels, self.count, self.fixed = levels, count, fixed
        now_ns, tf_ns = now.value, tf.value  # plain ns: what `floor("D")` and Timedelta / Timedelta give
        day_ns = now_ns // _DAY_NS * _DAY_NS
        self.monday_ns = monday_ns = _monday(day_ns)
        self.min_a0 = day_ns - _DAY_NS if levels[0].kind == "base" else monday_ns - _WEEK_NS
        base = levels[0]
        self.row_tokens = float(base.cum_tokens[-1]) / max(1, base.counted_rows)
        self.rows_to_day = int((day_ns + _DAY_NS - now_ns) / tf_ns)
        self.rows_to_week = int((monday_ns + _WEEK_NS - now_ns) / tf_ns)
        self._ladder = [monday_ns - n * _WEEK_NS for n in reversed(SPANS_WEEKS)]
        self._spans: dict[tuple[int, int, int | None, bool], int] = {}
        self._dailies: dict[int, list[int]] = {}
        self._headers: dict[int, int] = {}
        self._firsts: dict[int, list[int]] = {}
        self._starts = [lv.chunks.starts.tolist() for lv in levels]
        """Chunk starts as lists: `bisect` finds what `Level.span` finds, without numpy's call overhead."""
        self.moving = moving

    def plan(self, budget: int | None) -> Layout:
        """The richest layout within `budget` (None: every bar at base resolution)."""
        if budget is None:
            return Layout(_ALL, _ALL, _ALL)
        for reserve in (True, False):
            found = self._greedy(budget, reserve)
            if found is not None:
                return found
        for keep in (24, 12, 6, 3, 1):
            layout = Layout(self.min_a0, self.min_a0, self.min_a0, keep)
            if self.cost(layout) <= budget:
                return layout
        raise BudgetTooSmall(
            f"a context budget of {budget} tokens cannot hold the instructions and the current state "
            f"(about {self.cost(Layout(self.min_a0, self.min_a0, self.min_a0, 1))} tokens); "
            "raise llm.context_tokens"
        )

    def _greedy(self, budget: int, reserve: bool) -> Layout | None:
        history = budget - self.fixed

        def fits(layout: Layout) -> bool:
            return self.cost(layout, reserve) <= budget

        # Coarsen the oldest base bars into days until it fits or base bars are within their share.
        a0s = self._options(0, self.monday_ns, self.min_a0)
        i0 = _first(
            a0s,
            lambda a: (
                fits(Layout(_ALL, self._all_days(a), a))
                or self._span(0, a, None, reserve) <= BASE_SHARE * history
            ),
        )
        a0 = a0s[i0]
        # Then the oldest days into weeks, until it fits or days are within their share of the rest.
        rest = history - self._span(0, a0, None, reserve)
        a1s = self._daily_options(a0)
        i1 = _first(a1s, lambda a: fits(Layout(_ALL, a, a0)) or self._span(1, a, a0) <= DAILY_SHARE * rest)
        a1 = a1s[i1]
        # Then drop the oldest weeks, then the oldest days, then the oldest base bars.
        candidates = [Layout(a2, a1, a0) for a2 in self._options(2, a1, a1)]
        candidates += [Layout(a, a, a0) for a in [*a1s[i1 + 1 :], a0]]
        candidates += [Layout(a, a, a) for a in a0s[i0 + 1 :]]
        candidates = [Layout(_ALL, a1s[0], a0), Layout(_ALL, a1, a0), *candidates]
        return next((c for c in candidates if fits(c)), None)

    def cost(self, layout: Layout, reserve: bool = False) -> int:
        """Tokens of the whole prompt with `layout` (plus room for the bars still to come if `reserve`)."""
        total = self.fixed + self._span(2, layout.a2, layout.a1) + self._span(1, layout.a1, layout.a0)
        if layout.keep is None:
            return total + self._span(0, layout.a0, None, reserve)
        base = self.levels[0]
        kept = self.moving.count(last_bars(base.chunks.texts, layout.keep) + self.moving.tail) + 1
        return total - self.moving.tokens + self.count(base.header) + kept + 2

    def _span(self, level: int, start: int, end: int | None, reserve: bool = False) -> int:
        key = (level, start, end, reserve)
        found = self._spans.get(key)
        if found is None:
            found = self._spans[key] = self._span_tokens(level, start, end, reserve)
        return found

    def _span_tokens(self, level: int, start: int, end: int | None, reserve: bool) -> int:
        lv, starts = self.levels[level], self._starts[level]
        i = bisect_left(starts, start)
        j = len(starts) if end is None else bisect_left(starts, end)
        if j <= i:
            return 0
        tokens = int(lv.cum_tokens[j] - lv.cum_tokens[i]) + 2
        tokens += self._header_tokens(level) + self.count(lv.chunks.leads[i])
        if reserve and level == 0:
            rows = self.rows_to_day if start >= self.min_a0 else self.rows_to_week
            tokens += int(np.ceil(rows * self.row_tokens))
        return tokens

    def _header_tokens(self, level: int) -> int:
        found = self._headers.get(level)
        if found is None:
            found = self._headers[level] = self.count(self.levels[level].header)
        return found

    def _all_days(self, a0: int) -> int:
        """The first of `_daily_options(a0)`: every day, or `a0` when the base is daily (no days)."""
        return _ALL if self._starts[1] else a0

    def _daily_options(self, a0: int) -> list[int]:
        """Where daily bars may start given base bars from `a0` (just `a0` when the base is daily)."""
        found = self._dailies.get(a0)
        if found is None:
            if len(self.levels[1].chunks.starts) == 0:
                found = [a0]
            else:
                monday = _monday(a0)
                found = self._options(1, monday, monday)
            self._dailies[a0] = found
        return found

    def _options(self, level: int, upper: int, last: int) -> list[int]:
        """Where a block of `level` may start: all its chunks, the Mondays n weeks before the current week
        for n in SPANS_WEEKS (longest first) capped at `upper`, then `last`; in that order, without those
        selecting the same first chunk as an earlier one."""
        starts = self._starts[level]
        cap = bisect_left(starts, upper)  # a rung capped at upper selects min(its own first chunk, cap)
        out, seen = [_ALL], {0}
        for rung, first in zip(self._ladder, self._rungs(level), strict=True):
            if min(first, cap) not in seen:
                seen.add(min(first, cap))
                out.append(min(upper, rung))
        if bisect_left(starts, last) not in seen:
            out.append(last)
        return out

    def _rungs(self, level: int) -> list[int]:
        """The first chunk of `level` each Monday of the ladder selects."""
        found = self._firsts.get(level)
        if found is None:
            found = self._firsts[level] = [bisect_left(self._starts[level], a) for a in self._ladder]
        return found


# --- rendering -----------------------------------------------------------------------------------


def _history(levels: list[Level], layout: Layout) -> tuple[str, dict[str, tuple[int, str, str]]]:
    """The history blocks (weekly, daily, base bars) and what each holds."""
    parts, mix = [], {}
    for lv, start, end in (
        (levels[2], layout.a2, layout.a1),
        (levels[1], layout.a1, layout.a0),
        (levels[0], layout.a0, None),
    ):
        if lv is levels[0] and layout.keep is not None:
            parts.append(lv.header + last_bars(lv.chunks.texts, layout.keep))
            kept = min(layout.keep, len(lv.frame))
            mix[lv.name] = (kept, str(lv.frame.time(-kept)), str(lv.frame.time(-1)))
            continue
        i, j = lv.span(start, end)
        if j <= i:
            continue
        parts.append(lv.header + lv.chunks.leads[i] + "".join(lv.chunks.texts[i:j]))
        first = int(lv.chunks.rows[:i].sum())
        count = int(lv.chunks.rows[i:j].sum())
        mix[lv.name] = (count, str(lv.frame.time(first)), str(lv.frame.time(first + count - 1)))
    return "".join(parts), mix


def _validated(
    candles: pd.DataFrame, symbol: str, tf: pd.Timedelta | None
) -> tuple[pd.DataFrame, pd.Timedelta]:
    """The candle frame (float64, UTC nanoseconds, ascending) and its timeframe; `DataError` when unusable."""
    if candles is None or len(candles) == 0:
        raise DataError(f"no candles for {symbol}: the context needs at least one closed bar")
    index = candles.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise DataError(f"candles for {symbol} need a UTC DatetimeIndex of bar open times")
    if not (index.is_monotonic_increasing and index.is_unique):
        raise DataError(f"candles for {symbol} must be in ascending time order without duplicates")
    missing = [c for c in CANDLE_COLUMNS if c not in candles.columns]
    if missing:
        raise DataError(f"candles for {symbol} lack column {missing[0]!r}")
    frame = candles[CANDLE_COLUMNS].astype("float64")
    index = index.tz_convert("UTC").as_unit("ns")  # whatever the input's resolution (pandas 3: often us)
    frame.index = index
    if tf is None:
        if len(frame) < 2:
            raise DataError(f"cannot tell the timeframe of {symbol} from one bar; pass timeframe=")
        tf = pd.Timedelta(int(np.diff(index.asi8[-500:]).min()), unit="ns")
        if timeframe_name(tf) not in TIMEFRAME_MS:
            raise DataError(f"candles for {symbol} are {tf} apart; supported: {', '.join(TIMEFRAME_MS)}")
    return frame, tf


def _first(options: list[int], done: Callable[[int], bool]) -> int:
    """Index of the first option for which `done` holds, else the last index."""
    return next((i for i, a in enumerate(options) if done(a)), len(options) - 1)


def _monday(ts_ns: int) -> int:
    """The Monday 00:00 UTC starting the week of `ts_ns` (1970-01-01, day 0, was a Thursday)."""
    if ts_ns == _ALL:
        return _ALL
    day = ts_ns // _DAY_NS
    return (day - (day + 3) % 7) * _DAY_NS
