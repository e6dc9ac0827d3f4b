"""Helpers for market-data tests: real candle slices, settings pointing at an emulator, recorded sleeps."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pandas as pd

from agent.config import SHARED_DIR, Settings, load_settings
from agent.market.candles import read_feather
from agent.market.retry import RetryPolicy
from agent.testing.exchange_emulator import ExchangeEmulator

HOUR_MS = 3_600_000


@cache
def shared_candles(symbol: str, timeframe: str = "1h") -> pd.DataFrame:
    """The full shared history of one symbol (read once per session; callers must not mutate it)."""
    return read_feather(SHARED_DIR / "data" / "binance" / f"{symbol.replace('/', '_')}-{timeframe}.feather")


def ms(ts: pd.Timestamp) -> int:
    """A timestamp as ms since the epoch."""
    return int(ts.value // 1_000_000)


def emulator_settings(emu: ExchangeEmulator, data_dir: Path, **exchange: object) -> Settings:
    """Settings for ccxt's binance pointed at `emu`, with a short timeout and a few retries."""
    values: dict[str, object] = {"id": "binance", "api_url": emu.url, "timeout_ms": 2000, "max_retries": 3}
    values.update(exchange)
    return load_settings(data_dir=data_dir, exchange=values)


class SleepRecorder:
    """A stand-in for time.sleep / asyncio.sleep that records the requested waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        """The coroutine variant."""
        self.waits.append(seconds)


def instant_policy(settings: Settings, sleeper: SleepRecorder | None = None) -> RetryPolicy:
    """The settings' retry policy with recorded (not real) sleeps and a fixed jitter draw of 0.5."""
    sleeper = sleeper if sleeper is not None else SleepRecorder()
    return RetryPolicy.from_settings(
        settings.exchange, sleep=sleeper, async_sleep=sleeper.asleep, rng=lambda: 0.5
    )


def independent_gaps(index: pd.DatetimeIndex, freq: str) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Missing bars found by set difference against a full calendar, grouped into consecutive runs."""
    step = pd.Timedelta(freq)
    missing = pd.date_range(index[0], index[-1], freq=freq).difference(index)
    runs: list[list[pd.Timestamp]] = []
    for ts in missing:
        if runs and ts - runs[-1][-1] == step:
            runs[-1].append(ts)
        else:
            runs.append([ts])
    return [(run[0], run[-1], len(run)) for run in runs]
