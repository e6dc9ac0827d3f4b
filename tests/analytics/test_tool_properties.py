"""Invariants of the tool registry (Hypothesis): no call, however malformed, raises into the agent; and the
statistics of any window agree with pandas."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.analytics import tools
from agent.analytics.context import ToolContext
from agent.analytics.models import ToolError, ToolOutput
from agent.config import load_settings
from tests.analytics.conftest import cut, raw

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    ["symbol", "symbols", "start", "end", "timeframe", "name", "period", "window", "run_id", "strategy",
     "params", "grid", "limit", "kind", "ids", "decision_id", "at"]
)  # fmt: skip
SYMBOLS = st.sampled_from(["BTC/USDT", "ETH/USDT", "DOGE/USDT", "btc", "", "BTC/USDT/X"])
DATES = st.sampled_from(["2025-01-01", "2025-13-01", "2019-01-01", "2030-01-01", "today", "2025-03-01T12:00"])


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolContext]:
    tmp: Path = tmp_path_factory.mktemp("props")
    c = ToolContext(load_settings(database_url=f"sqlite:///{tmp / 'p.db'}"), reports_dir=tmp)
    yield c
    c.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from([n for n in tools.TOOLS if n not in ("backtest", "sweep", "chart")]),
    args=st.dictionaries(FIELDS, JSON | SYMBOLS | DATES | st.lists(SYMBOLS, max_size=3), max_size=4),
)
def test_no_call_raises(ctx: ToolContext, name: str, args: dict[str, object]) -> None:
    result = tools.call(ctx, name, args)
    assert isinstance(result, ToolOutput)
    if isinstance(result, ToolError):
        assert result.error.startswith(f"{name}: ") and "\n" not in result.error


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    symbol=st.sampled_from(["BTC/USDT", "ETH/USDT", "SOL/USDT"]),
    first=st.integers(0, 8000),
    bars=st.integers(3, 2000),
)
def test_statistics_of_any_window_match_pandas(ctx: ToolContext, symbol: str, first: int, bars: int) -> None:
    df = raw(symbol)
    start = df.index[first]
    end = df.index[min(first + bars, len(df) - 1)]
    out = tools.call(
        ctx, "statistics", {"symbol": symbol, "start": start.isoformat(), "end": end.isoformat()}
    )
    assert not isinstance(out, ToolError), out
    close = cut(df, start.isoformat(), end.isoformat())["close"]
    r = close.pct_change().dropna()
    got = out.model_dump()
    assert got["bars"] == len(close)
    assert got["volatility"] == pytest.approx(r.std() * math.sqrt(8760), rel=1e-9)
    assert got["max_drawdown"] == pytest.approx((close / close.cummax() - 1).min(), abs=1e-15)
    assert pd.Timestamp(got["first"]) == close.index[0] and pd.Timestamp(got["last"]) == close.index[-1]
