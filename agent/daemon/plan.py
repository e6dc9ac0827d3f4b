"""What a daemon run is: its stable id, its bar window and the first bar of history it reads.

Contracts:
- The default run id is derived from what defines the run (strategy, parameters, symbols, timeframe,
  trading mode, feed — live or replay —, exchange, and for a replay its window), so restarting the daemon
  with the same configuration continues the same run: `<feed>-<strategy>-<10 hex>`, made by
  `agent.runs.lifecycle.stable_run_id`, which keeps it the same across versions. `--run-id` overrides it
  (1 to 32 characters of letters, digits, `-`, `_`, `.`: `agent.runs.lifecycle.check_run_id`).
- Replay window: bars with open time in [start, end). `end` defaults to the close of the last bundled bar
  common to every symbol (and is capped there); `start` defaults to `DEFAULT_REPLAY_DAYS` before `end`.
  Both are aligned to the bar grid. A start not before the end, or outside the bundled data, is a
  `ConfigError`; a symbol without bundled candles, or with invalid ones, is a `DataError` (the bundled
  sample is found and validated as for every other path: `agent.market.store.find_candles`).
- Live window: from the run's recorded first bar (a new run starts at the last closed bar), open-ended.
- History start: `history_bars` bars before the window start, fixed for the run (reproducible indicators).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from agent.config import Settings
from agent.daemon.clock import last_closed_bar
from agent.errors import ConfigError, DataError
from agent.market.candles import timeframe_ms, utc_timestamp
from agent.market.store import find_candles, sample_dirs
from agent.runs.lifecycle import stable_run_id

DEFAULT_REPLAY_DAYS = 30


@dataclass(frozen=True)
class Window:
    """The bars a run may process: open time in [start_ms, end_ms) (end None = open-ended, live)."""

    start_ms: int
    end_ms: int | None = None


@dataclass(frozen=True)
class RunPlan:
    """The daemon run to advance."""

    run_id: str
    feed: str
    """live | replay"""
    strategy: str
    params: dict[str, Any]
    window: Window
    history_start_ms: int


def default_run_id(
    settings: Settings, strategy: str, params: dict[str, Any], feed: str, window: Window | None
) -> str:
    """A stable id for the run the configuration describes (see the module contract)."""
    key = {
        "strategy": strategy,
        "params": {k: str(v) for k, v in sorted(params.items())},
        "symbols": list(settings.symbols),
        "timeframe": settings.timeframe,
        "mode": settings.mode,
        "feed": feed,
        "exchange": settings.exchange.id,
        "window": [window.start_ms, window.end_ms] if feed == "replay" and window is not None else None,
    }
    name = re.sub(r"[^a-z0-9]+", "", Path(strategy.split(":")[0]).stem.lower())[:12] or "custom"
    return stable_run_id(feed, name, key)


def bundled_bounds(data_dir: Path, symbols: Sequence[str], timeframe: str) -> tuple[int, int]:
    """(first bar open time, last bar close time) common to every symbol's bundled candles."""
    tf = timeframe_ms(timeframe)
    firsts, ends = [], []
    for symbol in symbols:
        frame = find_candles(sample_dirs(data_dir), symbol, timeframe)  # validated, resampled if needed
        if frame is None:
            raise DataError(f"no bundled {timeframe} candles for {symbol} to replay (in {data_dir}/binance)")
        index = frame.index
        if index.empty:
            raise DataError(f"no complete {timeframe} bar of {symbol} in the bundled data to replay")
        firsts.append(int(index[0].value // 1_000_000))
        ends.append(int(index[-1].value // 1_000_000) + tf)
    return max(firsts), min(ends)


def replay_window(
    data_dir: Path, symbols: Sequence[str], timeframe: str, start: str | None, end: str | None
) -> Window:
    """The replayed bars (see the module contract)."""
    tf = timeframe_ms(timeframe)
    first, data_end = bundled_bounds(data_dir, symbols, timeframe)
    end_ms = data_end if end is None else min(_ceil(_ms(end), tf), data_end)
    start_ms = end_ms - DEFAULT_REPLAY_DAYS * 86_400_000 if start is None else _ceil(_ms(start), tf)
    start_ms = max(start_ms, first) if start is None else start_ms
    if start_ms < first:
        raise ConfigError(f"--start {_iso(start_ms)} is before the bundled data (first bar {_iso(first)})")
    if start_ms >= end_ms:
        raise ConfigError(
            f"nothing to replay: start {_iso(start_ms)} is not before end {_iso(end_ms)} "
            f"(bundled data ends {_iso(data_end)})"
        )
    return Window(start_ms, end_ms)


def live_window(recorded_start_ms: int | None, now_ms: int, timeframe: str) -> Window:
    """The run's recorded first bar, or the last closed bar for a new run; open-ended."""
    if recorded_start_ms is not None:
        return Window(int(recorded_start_ms))
    return Window(last_closed_bar(now_ms, timeframe_ms(timeframe)))


def history_start(window: Window, timeframe: str, history_bars: int) -> int:
    """Open time of the first bar of history the run reads."""
    if history_bars < 0:
        raise ConfigError(f"--history-bars must be >= 0 (got {history_bars})")
    return window.start_ms - history_bars * timeframe_ms(timeframe)


def _ms(value: str) -> int:
    return int(utc_timestamp(value).value // 1_000_000)


def _ceil(ms: int, tf: int) -> int:
    return -(-ms // tf) * tf


def _iso(ms: int) -> str:
    return f"{pd.Timestamp(ms, unit='ms', tz='UTC'):%Y-%m-%d %H:%M}"
