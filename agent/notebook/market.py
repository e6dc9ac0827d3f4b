"""Market data for notebooks: what candle files exist, and loading one as the canonical candle frame.

Contracts:
- `list_data` describes the files `tradegraph data list` shows (download store and bundled sample) with their
  span, rows, gaps and problems (`agent.market.validate`; a file that cannot be read says so in `problems`);
  it only reads.
- `load_candles` is `agent.market.store.load_candles` with the configured data folder: the download store
  first, then the bundled sample, validated, a timeframe without its own file resampled from a shorter
  stored one (complete bars only); start <= bar open time < end; missing or invalid data or an empty
  window is a `DataError`.
"""

from __future__ import annotations

import pandas as pd

from agent.notebook.common import SettingsLike, When, exchange_folder, resolve_settings


def list_data(settings: SettingsLike = None) -> pd.DataFrame:
    """Candle files with their span, rows and gaps, one row per file.

    Example:
        >>> tg.list_data()[["symbol", "timeframe", "first", "last", "rows", "gaps"]]  # doctest: +SKIP
    """
    from agent.errors import DataError
    from agent.market.store import CandleStore, read_candle_file
    from agent.market.validate import check_candles

    rows = []
    for f in CandleStore(resolve_settings(settings).data_dir).files():
        row: dict[str, object] = {"source": f.source, "exchange": f.exchange, "symbol": f.symbol,
                                  "timeframe": f.timeframe, "path": str(f.path)}  # fmt: skip
        try:
            report = check_candles(read_candle_file(f.path), f.timeframe)
        except DataError as e:
            rows.append(row | {"rows": 0, "problems": str(e)})
            continue
        rows.append(
            row
            | {
                "first": report.first,
                "last": report.last,
                "rows": report.rows,
                "gaps": len(report.gaps),
                "missing_bars": report.missing_bars,
                "problems": "; ".join(report.problems),
            }
        )
    return pd.DataFrame(rows)


def load_candles(
    symbol: str, timeframe: str = "1h", start: When = None, end: When = None, *, settings: SettingsLike = None
) -> pd.DataFrame:
    """Stored candles of `symbol` with start <= open time < end (UTC index `date`, float64 OHLCV).

    Example:
        >>> btc = tg.load_candles("BTC/USDT", "1d", start="2024-01-01")  # doctest: +SKIP
        >>> btc["close"].plot()  # doctest: +SKIP
    """
    from agent.market import store

    s = resolve_settings(settings)
    return store.load_candles(symbol, timeframe, s.data_dir, start, end, exchange_folder(s))
