"""Helpers shared by the notebook API: settings, symbols, times, bars and the database.

Contracts:
- `resolve_settings(None | dict | Settings, **overrides)`: a dict goes through `load_settings` (validated like
  the configuration file); a `Settings` is copied with the overrides.
- `bar_at(source, symbol, at, timeframe)`: the open time of the latest bar at or before `at` (None = the last
  bar); a time before the first bar or after the last one raises `DataError` naming the data's span.
- `strategy_spec(...)`: the registry spec (`name`, `file.py:Class` or `module:Class`) and parameter values for
  a name, a `Strategy` class or a `Strategy` instance, so notebook-defined strategies run through the same
  registry (and sweep workers) as built-ins.
- `cut_history(...)` drops candles older than `history_bars` bars before the first bar (the daemon's knob).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pandas as pd

from agent.config import Settings, load_settings
from agent.errors import ConfigError, DataError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from agent.market.source import FrameSource

SettingsLike = Settings | Mapping[str, Any] | None
When = str | pd.Timestamp | None


def resolve_settings(settings: SettingsLike, **overrides: Any) -> Settings:
    """The settings a call runs with."""
    if isinstance(settings, Settings):
        return settings.model_copy(update=overrides) if overrides else settings
    return load_settings(**{**dict(settings or {}), **overrides})


def exchange_folder(s: Settings) -> str:
    """The store folder candles are read from (`binance` for the bundled replay data)."""
    return "binance" if s.exchange.id == "replay" else s.exchange.id


def parse_symbols(symbols: str | Sequence[str]) -> list[str]:
    """`"BTC/USDT,ETH/USDT"` or a list → upper-cased, de-duplicated symbols in the order given."""
    listed = [symbols] if isinstance(symbols, str) else list(symbols)
    chosen = [x.strip().upper() for item in listed for x in item.split(",") if x.strip()]
    if not chosen:
        raise ConfigError("no symbol given; use e.g. 'BTC/USDT'")
    for x in chosen:
        if "/" not in x:
            raise ConfigError(f"symbol {x!r} must look like BASE/QUOTE, e.g. BTC/USDT")
    return list(dict.fromkeys(chosen))


def strategy_spec(strategy: Any, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A registry spec and parameter values for a strategy name, class or instance."""
    from strategies.base import Strategy

    if isinstance(strategy, str):
        return strategy, dict(params)
    cls = type(strategy) if isinstance(strategy, Strategy) else strategy
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(
            f"strategy {strategy!r}: give a name, 'file.py:Class', a Strategy class or instance"
        )
    if "<locals>" in cls.__qualname__:
        raise ConfigError(f"strategy class {cls.__qualname__} must be defined at module level (or in a cell)")
    if isinstance(strategy, Strategy):
        if params:
            raise ConfigError("give parameters to the strategy instance or as keywords, not both")
        params = strategy.params.model_dump()
    return f"{cls.__module__}:{cls.__qualname__}", dict(params)


def text(value: When) -> str | None:
    """A time bound as the string the backtest requests take."""
    return None if value is None else str(value)


def to_ms(value: str | pd.Timestamp) -> int:
    """Epoch milliseconds of a UTC date or timestamp."""
    from agent.market.candles import utc_timestamp

    return int(utc_timestamp(value).value // 1_000_000)


def to_ts(ms: int) -> pd.Timestamp:
    """The UTC timestamp of epoch milliseconds."""
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def bar_at(source: FrameSource, symbol: str, at: When, timeframe: str) -> int:
    """Open time (ms) of the bar at or before `at`; None = the last bar (see the module contract)."""
    from agent.market.candles import timeframe_ms
    from agent.market.source import ts_ms

    last = source.last_ts(symbol)
    if at is None:
        return last
    when = to_ms(at)
    hist = source.history(symbol, when)
    if hist.empty or when >= last + timeframe_ms(timeframe):
        first = to_ts(int(ts_ms(source.history(symbol, last).index[:1])[0]))
        raise DataError(f"no {timeframe} bar of {symbol} at {at}: the data covers {first} to {to_ts(last)}")
    return int(ts_ms(hist.index[-1:])[0])


def cut_history(source: FrameSource, s: Settings, history_bars: int | None, first_ms: int) -> FrameSource:
    """`source` with only `history_bars` bars before the bar `first_ms` (None = unchanged), like the daemon's
    `--history-bars`: prompts build faster; their oldest history and indicator warm-up differ from a run
    over all stored bars."""
    from agent.market.candles import timeframe_ms
    from agent.market.source import FrameSource

    if history_bars is None:
        return source
    if history_bars < 0:
        raise ConfigError(f"history_bars={history_bars}: must be >= 0")
    oldest = to_ts(first_ms - history_bars * timeframe_ms(s.timeframe))
    frames = {}
    for symbol in s.symbols:
        frame = source.history(symbol, source.last_ts(symbol))
        frames[symbol] = frame[frame.index >= oldest]
    return FrameSource(frames)


@contextmanager
def database(s: Settings) -> Iterator[sessionmaker[Session]]:
    """A session factory on the configured database (migrated to the latest schema), disposed on exit."""
    from agent.db.session import open_db

    engine, factory = open_db(s.db_url)
    try:
        yield factory
    finally:
        engine.dispose()


def run_or_latest(factory: sessionmaker[Session], run_id: str | None) -> str:
    """`run_id` if the database has it, else (None) the most recent run; `ConfigError` when there is none."""
    from sqlalchemy import select

    from agent.db.models import Run

    with factory() as session:
        if run_id is not None:
            if session.get(Run, run_id) is None:
                raise ConfigError(f"no run {run_id!r} in the database (see: tradegraph runs list)")
            return run_id
        latest = session.scalar(select(Run.id).order_by(Run.created_at.desc(), Run.id.desc()).limit(1))
    if latest is None:
        raise ConfigError("the database holds no run yet (run a backtest or tg.run_agent first)")
    return str(latest)
