"""Incremental market context: per symbol, the history levels of a prompt, built once per run and sliced at t.

The builder (`agent.llm.context`) asks `HistoryCache.view(symbol, candles)` for the levels of a prompt at
the last bar t of `candles`; the cache keeps, per symbol, the longest series it has been given with:
- its indicators (`agent.market.indicators.IndicatorSeries`, computed over the whole series, read at t);
- its complete days and weeks with their indicators (resampled once, when they complete);
- the text and token count of every final chunk (a whole UTC day of base bars, one daily or weekly bar),
  encoded once per disclosure (leakage control re-bases them once a quarter).
Per call only the new rows of the current day (the last, partial chunk) are encoded; it is not counted here
(`Level.volatile`: the builder counts them with the tail, in one count per bar).

Contracts:
- Byte-identical: the levels equal `agent.llm.levels.scratch_levels` over `candles` (tested on random bars
  and budgets), because every value is causal (a day's bars, a period's bars, TA-Lib recursions) and each
  cached item is read only when all the bars it depends on are <= t.
- Point in time: `candles` is compared with the stored series (bits of the time stamps and of the five
  OHLCV columns); a call reads only the stored rows up to its own last bar. A shorter input that is a prefix
  is sliced; a longer one extends the series; any other difference (a revised bar, another first bar, a new
  timeframe) resets the symbol. `view` returns None (the caller builds from scratch, raising its own
  errors) for inputs it does not handle: empty, not validated (order, columns, index), or irregular spacing
  at the cut (the next stored bar less than one timeframe after t).
- Memory per symbol: the OHLCV and indicator arrays of the longest series, its days and weeks, the
  chunk texts for at most `MAX_DISCLOSURES` disclosures and the text of the last day in progress (the next
  bar of that day appends its line to it) and the last view (a build at the bar a warm-up prepared reuses
  it); at most `MAX_SYMBOLS` symbols (least recently used go first). Nothing else is kept per call:
  everything after the history is rebuilt.
- Thread-safe for concurrent symbols when the count functions are (the builder runs its builds one at a
  time, as they share its count memos); a lock per symbol; the levels returned are never mutated.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agent.llm.bars import Bars
from agent.llm.encoding import Chunks, day_lines, encode_chunks, off_the_hour
from agent.llm.leakage import Disclosure, anonymise
from agent.llm.levels import (
    COLUMNS,
    DAY,
    EPOCH,
    EPOCH_MONDAY,
    WEEK,
    Count,
    Level,
    base_kind,
    complete_periods,
    timeframe_name,
    with_indicators,
)
from agent.market.candles import COLUMNS as CANDLE_COLUMNS
from agent.market.candles import TIMEFRAME_MS
from agent.market.indicators import IndicatorSeries

MAX_DISCLOSURES = 2
"""Disclosures whose chunk texts are kept per symbol (leakage control: this quarter and the last one)."""
MAX_SYMBOLS = 32
_DAY_NS = 86_400_000_000_000
_VOLUME_WINDOW_NS = 30 * _DAY_NS
"""`agent.llm.leakage` averages the volume over the 30 days up to the reference bar."""


@dataclass(frozen=True)
class MarketView:
    """What a prompt shows about one symbol's market at bar t."""

    tf: pd.Timedelta
    now: pd.Timestamp
    """t plus one bar: the close of bar t."""
    disc: Disclosure
    levels: list[Level]
    """Base bars, complete days, complete weeks (finest first), as `scratch_levels` builds them."""


@dataclass(frozen=True)
class _DayInProgress:
    """The text of the current day's bars [lo, hi) under one disclosure, kept to extend it bar by bar."""

    key: tuple[object, ...]
    """The disclosure's `key`."""
    lo: int
    hi: int
    minutes: bool
    """Whether a bar so far opens off the hour (all bars are then labelled `HH:MM`)."""
    text: str


@dataclass(frozen=True)
class CacheSettings:
    """What the views depend on besides the candles (the builder's configuration)."""

    timeframe: pd.Timedelta | None
    """None: read from the spacing of the last 500 bars, as the builder does."""
    atr_period: int
    leakage_control: bool
    alias: str


class HistoryCache:
    """Incremental history levels for every symbol of one run (one per builder)."""

    def __init__(self, settings: CacheSettings, count: Count) -> None:
        """`count` counts final chunks (once each)."""
        self.settings = settings
        self._count = count
        self._symbols: OrderedDict[str, SymbolHistory] = OrderedDict()
        self._lock = threading.Lock()

    def view(self, symbol: str, candles: pd.DataFrame) -> MarketView | None:
        """The levels at the last bar of `candles`, or None when the caller must build from scratch."""
        return self._history(symbol).view(candles)

    def prepare(self, symbol: str, candles: pd.DataFrame) -> None:
        """Store `candles` for `symbol` (indicators, complete periods) without building a view."""
        self._history(symbol).prepare(candles)

    def _history(self, symbol: str) -> SymbolHistory:
        """The symbol's history (new if unknown; the least recently used beyond `MAX_SYMBOLS` goes)."""
        with self._lock:
            history = self._symbols.get(symbol)
            if history is None:
                history = SymbolHistory(symbol, self.settings, self._count)
                self._symbols[symbol] = history
            self._symbols.move_to_end(symbol)
            while len(self._symbols) > MAX_SYMBOLS:
                self._symbols.popitem(last=False)
            return history

    def bars(self) -> dict[str, int]:
        """Bars stored per symbol (for tests and benchmarks)."""
        return {symbol: len(h) for symbol, h in self._symbols.items()}


# --- one symbol ----------------------------------------------------------------------------------


class _Periods:
    """Complete days or weeks of the stored series (OHLCV appended as they complete), with indicators."""

    def __init__(self, period: pd.Timedelta, origin: pd.Timestamp, atr_period: int) -> None:
        self.period, self.origin, self.atr_period = period, origin, atr_period
        self.ts = np.empty(0, dtype=np.int64)
        self.ohlcv = np.empty((len(CANDLE_COLUMNS), 0), dtype=np.float64)
        self.frame = self._bars()
        """The periods with indicators."""
        self.ends = self.frame.ts + self.period.value
        """Period end (ns): complete at bar t when end <= t + one bar."""

    def append(self, bars: Bars) -> None:
        """Add complete periods (OHLCV, opening after the stored ones) and recompute the indicators."""
        self.ts = np.concatenate((self.ts, bars.ts)).astype(np.int64)
        new = np.stack([bars[c] for c in CANDLE_COLUMNS])
        self.ohlcv = np.concatenate((self.ohlcv, new), axis=1)
        self.frame = self._bars()
        self.ends = self.frame.ts + self.period.value

    def _bars(self) -> Bars:
        columns = {c: np.ascontiguousarray(self.ohlcv[k]) for k, c in enumerate(CANDLE_COLUMNS)}
        return with_indicators(Bars(self.ts, columns), self.atr_period)


class _Chunks:
    """The final chunks of one level under one disclosure: encoded and counted once, appended in order."""

    def __init__(self) -> None:
        self.starts = np.empty(0, dtype=np.int64)
        self.rows = np.empty(0, dtype=np.int64)
        self.cum = np.zeros(1, dtype=np.int64)
        self.texts: list[str] = []
        self.leads: list[str] = []

    def __len__(self) -> int:
        return len(self.texts)

    def append(self, chunks: Chunks, counts: list[int]) -> None:
        """Add chunks after the last one, with their token counts."""
        self.starts = np.concatenate((self.starts, chunks.starts)).astype(np.int64)
        self.rows = np.concatenate((self.rows, chunks.rows)).astype(np.int64)
        self.cum = np.concatenate((self.cum, self.cum[-1] + np.cumsum(counts, dtype=np.int64)))
        self.texts.extend(chunks.texts)
        self.leads.extend(chunks.leads)

    def first(self, g: int, partial: Chunks | None = None) -> tuple[Chunks, np.ndarray]:
        """Chunks [0, g), then the partial chunk if any (adding 0 tokens), and the cumulative counts."""
        starts, rows, cum = self.starts[:g], self.rows[:g], self.cum[: g + 1]
        texts, leads = tuple(self.texts[:g]), tuple(self.leads[:g])
        if partial is not None:
            starts = np.concatenate((starts, partial.starts))
            rows = np.concatenate((rows, partial.rows))
            cum = np.concatenate((cum, cum[-1:]))
            texts, leads = texts + partial.texts, leads + partial.leads
        return Chunks(starts, texts, rows, leads), cum


class SymbolHistory:
    """One symbol's longest series so far, its indicators, complete periods and final chunks."""

    def __init__(self, symbol: str, settings: CacheSettings, count: Count) -> None:
        """An empty history; `view` fills it."""
        self.symbol = symbol
        self.settings = settings
        self._count = count
        self._plain = Disclosure.plain(symbol)
        self._lock = threading.Lock()
        self._reset(None)

    def __len__(self) -> int:
        """Bars stored."""
        return self._n

    def _reset(self, tf: pd.Timedelta | None) -> None:
        self._tf = tf
        self._n = 0
        self._ts = np.empty(0, dtype=np.int64)
        self._ohlcv = np.empty((len(CANDLE_COLUMNS), 0), dtype=np.float64)
        self._indicators = IndicatorSeries(self.settings.atr_period)
        self._bars = Bars(self._ts, {})
        """The stored bars with indicators (views of the arrays above)."""
        self._group_rows = np.empty(0, dtype=np.int64)
        """First row of each UTC day (intraday base bars)."""
        self._group_days = np.empty(0, dtype=np.int64)
        self._periods: dict[str, _Periods] = {}
        self._chunks: OrderedDict[tuple[object, ...], dict[str, _Chunks]] = OrderedDict()
        self._disclosures: dict[int, Disclosure] = {}
        """Leakage control: the disclosure per reference bar (one per quarter)."""
        self._day: _DayInProgress | None = None
        """The last day in progress encoded (the next bar of that day only appends its line)."""
        self._viewed: tuple[int, MarketView] | None = None
        """The last view built and its bar count: a build at the bar a warm-up prepared reuses it."""
        self._seen: tuple[list[np.ndarray], int] | None = None
        """The arrays (open times, OHLCV) of the last input found equal to the stored series over its first
        rows, when its OHLCV memory is read-only (the open times are a pandas index's, which pandas never
        changes in place): slices of them need not be compared again (`_common`). Held, so their memory
        cannot be reused by other data."""

    # --- the public reads ------------------------------------------------------------------------

    def view(self, candles: pd.DataFrame) -> MarketView | None:
        """The levels at the last bar of `candles` (None: not handled here, build from scratch)."""
        parsed = _parse(candles, self.settings.timeframe)
        if parsed is None:
            return None
        ts, ohlcv, tf = parsed
        with self._lock:
            n = self._sync(ts, ohlcv, tf)
            if n is None or (n < self._n and self._ts[n] - self._ts[n - 1] < tf.value):
                return None
            return self._view_at(n)

    def prepare(self, candles: pd.DataFrame) -> None:
        """Store `candles` (a no-op for inputs the cache does not handle)."""
        parsed = _parse(candles, self.settings.timeframe)
        if parsed is not None:
            with self._lock:
                self._sync(*parsed)

    # --- keeping the stored series ---------------------------------------------------------------

    def _sync(self, ts: np.ndarray, ohlcv: list[np.ndarray], tf: pd.Timedelta) -> int | None:
        """Make the stored series hold the input as a prefix: the input's length, or None if invalid."""
        n = len(ts)
        if tf != self._tf:
            self._reset(tf)
        common = self._common(ts, ohlcv, min(n, self._n))
        if common == n:
            return n
        if common < self._n:
            self._reset(tf)  # a revised bar or another series: nothing stored can be trusted for it
        start = self._n
        if np.any(np.diff(ts[max(0, start - 1) :]) <= 0):
            return None  # not ascending or duplicated: the scratch path raises the error
        self._append(ts, ohlcv, start)
        self._seen = ([ts, *ohlcv], n) if all(_read_only(col) for col in ohlcv) else None
        return n

    def _common(self, ts: np.ndarray, ohlcv: list[np.ndarray], m: int) -> int:
        """Length of the common prefix of the input and the stored series, compared bit for bit (<= m).

        Rows an earlier input already matched are not read again when this input is a slice of the same
        read-only memory (`agent.market.source.read_only`: nobody can have revised them since); a
        writable input is compared in full every time (it may have been changed in place)."""
        if m == 0:
            return 0
        if self._seen is not None and m <= self._seen[1]:
            if all(_same_start(a, b) for a, b in zip((ts, *ohlcv), self._seen[0], strict=True)):
                return m
        pairs = [(ts[:m], self._ts[:m])]
        pairs += [(col[:m].view(np.int64), self._ohlcv[k, :m].view(np.int64)) for k, col in enumerate(ohlcv)]
        if all(np.array_equal(a, b) for a, b in pairs):
            return m
        differs = np.zeros(m, dtype=bool)
        for a, b in pairs:
            differs |= a != b
        return int(np.argmax(differs))

    def _append(self, ts: np.ndarray, ohlcv: list[np.ndarray], start: int) -> None:
        """Store rows [start, n) of the input (rows before `start` are the stored ones)."""
        assert self._tf is not None
        n = len(ts)
        if n > self._ts.shape[0]:
            capacity = n + max(1024, n // 8)  # room for a few weeks of bars; amortised O(1) per bar
            grown_ts = np.empty(capacity, dtype=np.int64)
            grown_ts[: self._n] = self._ts[: self._n]
            grown = np.empty((len(CANDLE_COLUMNS), capacity), dtype=np.float64)
            grown[:, : self._n] = self._ohlcv[:, : self._n]
            self._ts, self._ohlcv = grown_ts, grown
        self._ts[start:n] = ts[start:n]
        for k, col in enumerate(ohlcv):
            self._ohlcv[k, start:n] = col[start:n]
        self._n = n
        o, h, lo, c, v = (self._ohlcv[k, :n] for k in range(len(CANDLE_COLUMNS)))
        self._indicators.update(h, lo, c, v)
        columns = dict(zip(CANDLE_COLUMNS, (o, h, lo, c, v), strict=True)) | self._indicators.at(n)
        self._bars = Bars(self._ts[:n], columns)
        days = self._ts[max(0, start - 1) : n] // _DAY_NS
        new_groups = np.flatnonzero(np.diff(days)) + max(1, start)
        if start == 0:
            new_groups = np.concatenate(([0], new_groups))
        if len(new_groups):
            self._group_rows = np.concatenate((self._group_rows, new_groups)).astype(np.int64)
            self._group_days = self._ts[self._group_rows] // _DAY_NS
        now = int(self._ts[n - 1]) + self._tf.value
        if base_kind(self._tf) == "base":
            self._extend_periods("1d", DAY, EPOCH, now)
        self._extend_periods("1w", WEEK, EPOCH_MONDAY, now)

    def _extend_periods(self, key: str, period: pd.Timedelta, origin: pd.Timestamp, now: int) -> None:
        """Add the periods complete at `now` that are not stored yet (resampled from their own bars)."""
        known = self._periods.get(key)
        if known is None:
            known = self._periods[key] = _Periods(period, origin, self.settings.atr_period)
        first_row = 0
        if len(known.ts):
            first_row = int(np.searchsorted(self._ts[: self._n], known.ts[-1] + period.value, side="left"))
        if first_row >= self._n:
            return
        if _floor(int(self._ts[first_row]), period.value, origin.value) + period.value > now:
            return  # the first period not stored yet is still open
        source = self._bars.rows(first_row, self._n)
        first = pd.Timestamp(int(self._ts[0]), tz="UTC")
        new = complete_periods(source, period, pd.Timestamp(now, tz="UTC"), origin, first=first)
        if len(new):
            known.append(new)

    def _candles(self, lo: int, hi: int) -> pd.DataFrame:
        """Stored rows [lo, hi) as a candle frame (OHLCV, UTC ns index)."""
        index = pd.DatetimeIndex(pd.to_datetime(self._ts[lo:hi], utc=True), name="date")
        columns = {c: self._ohlcv[k, lo:hi] for k, c in enumerate(CANDLE_COLUMNS)}
        return pd.DataFrame(columns, index=index)

    # --- reading at bar t ------------------------------------------------------------------------

    def _view_at(self, n: int) -> MarketView:
        """The view after `n` stored rows: the last one again if it was built at `n` (rows up to n are
        unchanged since: any revision resets the history, and the view reads nothing after row n)."""
        if self._viewed is not None and self._viewed[0] == n:
            return self._viewed[1]
        view = self._build_view(n)
        self._viewed = (n, view)
        return view

    def _build_view(self, n: int) -> MarketView:
        assert self._tf is not None
        tf = self._tf
        t = pd.Timestamp(int(self._ts[n - 1]), tz="UTC")
        now = t + tf
        disc = self._disclosure(t) if self.settings.leakage_control else self._plain
        chunks = self._chunks_for(disc)
        kind = base_kind(tf)
        levels = [self._base_level(n, timeframe_name(tf), kind, disc, chunks[kind])]
        levels.append(self._period_level("1d", now, disc, chunks["1d"]))
        levels.append(self._period_level("1w", now, disc, chunks["1w"]))
        return MarketView(tf, now, disc, levels)

    def _disclosure(self, t: pd.Timestamp) -> Disclosure:
        """`anonymise` at t: it reads only the bars up to the quarter's first bar and the 30 days before
        it, so it is computed once per quarter from those bars."""
        quarter = pd.Timestamp(year=t.year, month=3 * ((t.month - 1) // 3) + 1, day=1, tz="UTC")
        reference = int(np.searchsorted(self._ts[: self._n], quarter.value, side="left"))
        found = self._disclosures.get(reference)
        if found is None:
            window = int(np.searchsorted(self._ts[: self._n], self._ts[reference] - _VOLUME_WINDOW_NS))
            found = anonymise(self.symbol, self._candles(window, reference + 1), self.settings.alias)
            self._disclosures[reference] = found
        return found

    def _chunks_for(self, disc: Disclosure) -> dict[str, _Chunks]:
        """The final chunks under `disc` (a new disclosure starts empty; the oldest beyond the limit goes)."""
        key = disc.key
        found = self._chunks.get(key)
        if found is None:
            found = {"base": _Chunks(), "1d": _Chunks(), "1w": _Chunks()}
            self._chunks[key] = found
            while len(self._chunks) > MAX_DISCLOSURES:
                self._chunks.popitem(last=False)
        self._chunks.move_to_end(key)
        return found

    def _encode(self, store: _Chunks, bars: Bars, kind: str, disc: Disclosure, lo: int, hi: int) -> None:
        """Append the chunks of rows [lo, hi) of `bars` (lo starts a chunk) to `store`, counted."""
        if hi > lo:
            chunks = _encode_rows(bars, kind, disc, lo, hi)
            store.append(chunks, [self._count(x) + 1 for x in chunks.texts])

    def _base_level(self, n: int, name: str, kind: str, disc: Disclosure, store: _Chunks) -> Level:
        bars = self._bars.head(n)
        if kind != "base":  # daily or coarser base bars: every bar is a final chunk
            self._encode(store, self._bars, kind, disc, len(store), n)
            chunks, cum = store.first(n)
            return Level(name, kind, bars, chunks, cum)
        g = int(np.searchsorted(self._group_days, int(self._ts[n - 1]) // _DAY_NS, side="left"))
        lo = int(self._group_rows[g])  # the first bar of t's day
        if len(store) < g:
            self._encode(store, self._bars, kind, disc, int(self._group_rows[len(store)]), lo)
        partial = self._day_in_progress(disc, lo, n)
        chunks, cum = store.first(g, partial)
        return Level(name, kind, bars, chunks, cum, partial.texts[0])

    def _day_in_progress(self, disc: Disclosure, lo: int, n: int) -> Chunks:
        """The chunk of the day in progress, rows [lo, n) (`lo` its first bar): the last one encoded,
        extended by the rows after it when it holds a prefix of these rows under the same disclosure.
        Rows are final once stored (a revised bar resets the history), so the text equals `_encode_rows`."""
        day, key = self._day, disc.key
        ts = self._ts[lo:n]
        if day is None or day.key != key or day.lo != lo or day.hi > n:
            text = _encode_rows(self._bars, "base", disc, lo, n).texts[0]
            day = _DayInProgress(key, lo, n, off_the_hour(ts), text)
        elif day.hi < n:
            minutes = day.minutes or off_the_hour(ts[day.hi - lo :])
            if minutes == day.minutes:
                text = day.text + day_lines(self._bars, COLUMNS["base"], disc, day.hi, n, minutes)
            else:  # the first bar off the hour: every label of the day changes to HH:MM
                text = _encode_rows(self._bars, "base", disc, lo, n).texts[0]
            day = _DayInProgress(key, lo, n, minutes, text)
        self._day = day
        start = np.array([int(ts[0]) // _DAY_NS * _DAY_NS], dtype=np.int64)
        return Chunks(start, (day.text,), np.array([n - lo], dtype=np.int64), ("",))

    def _period_level(self, key: str, now: pd.Timestamp, disc: Disclosure, store: _Chunks) -> Level:
        periods = self._periods.get(key)
        if periods is None:  # daily or coarser base bars have no daily level
            periods = self._periods[key] = _Periods(DAY, EPOCH, self.settings.atr_period)
        d = int(np.searchsorted(periods.ends, now.value, side="right"))
        if len(store) < d:
            self._encode(store, periods.frame, key, disc, len(store), d)
        chunks, cum = store.first(d)
        return Level(key, key, periods.frame.head(d), chunks, cum)


# --- helpers -------------------------------------------------------------------------------------


def _read_only(a: np.ndarray) -> bool:
    """Whether nobody can write `a`'s memory: the array owning it is read-only."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a.base is None and not a.flags.writeable


def _same_start(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether `a` and `b` view the same memory from the same first element with the same layout (so
    the shorter one's rows are the longer one's first rows)."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.dtype == b.dtype
    )


def _parse(
    candles: pd.DataFrame, timeframe: pd.Timedelta | None
) -> tuple[np.ndarray, list[np.ndarray], pd.Timedelta] | None:
    """The open times (ns), the OHLCV columns (float64) and the timeframe; None for what the scratch path
    must judge (it raises the errors)."""
    if candles is None or len(candles) == 0:
        return None
    index = candles.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        return None
    if any(c not in candles.columns for c in CANDLE_COLUMNS):
        return None
    ts = np.asarray((index if index.unit == "ns" else index.as_unit("ns")).asi8, dtype=np.int64)
    tf = timeframe
    if tf is None:
        if len(ts) < 2:
            return None
        step = int(np.diff(ts[-500:]).min())
        if step <= 0:
            return None
        tf = pd.Timedelta(step, unit="ns")
        if timeframe_name(tf) not in TIMEFRAME_MS:
            return None
    names = [str(c) for c in candles.columns]
    if len(set(names)) != len(names):
        return None
    try:
        values = candles.to_numpy(dtype=np.float64, copy=False)  # no copy for one float64 block
    except (TypeError, ValueError):
        return None
    return ts, [values[:, names.index(c)] for c in CANDLE_COLUMNS], tf


def _encode_rows(bars: Bars, kind: str, disc: Disclosure, lo: int, hi: int) -> Chunks:
    """The chunks of rows [lo, hi) of `bars` (lo starts a chunk), as `encode_chunks` of all the bars has
    them: the bar before `lo` is encoded along (its close and group precede row lo), then dropped."""
    if lo == 0:
        return encode_chunks(bars.head(hi), kind, COLUMNS[kind], disc, memo=False)
    chunks = encode_chunks(bars.rows(lo - 1, hi), kind, COLUMNS[kind], disc, memo=False)
    return Chunks(chunks.starts[1:], chunks.texts[1:], chunks.rows[1:], chunks.leads[1:])


def _floor(ts: int, period: int, origin: int) -> int:
    """Open of the period holding `ts` (periods of `period` ns counted from `origin`)."""
    return origin + (ts - origin) // period * period
