"""Every figure of the market tools against an independent pandas computation on the same bundled candles,
and bad calls turned into one-line tool errors."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pandas as pd
import pytest
import talib

from agent.analytics import tools
from agent.analytics.context import ToolContext
from agent.analytics.models import ToolError
from tests.analytics.conftest import cut, raw

HOURS_PER_YEAR = 365 * 24


def run(ctx: ToolContext, tool: str, **args: object) -> dict[str, object]:
    result = tools.call(ctx, tool, args)
    assert not isinstance(result, ToolError), result
    return result.model_dump()


def test_candles_summary_and_rows(ctx: ToolContext) -> None:
    out = run(ctx, "candles", symbol="btc/usdt", start="2025-03-01", end="2025-03-08", limit=3)
    df = cut(raw("BTC/USDT"), "2025-03-01", "2025-03-08")
    assert out["bars"] == len(df) == 168
    assert out["first_open"] == df["open"].iloc[0] and out["last_close"] == df["close"].iloc[-1]
    assert out["high"] == df["high"].max() and out["low"] == df["low"].min()
    assert out["total_return"] == pytest.approx(df["close"].iloc[-1] / df["open"].iloc[0] - 1, rel=1e-12)
    assert [r["close"] for r in out["rows"]] == list(df["close"].iloc[-3:])  # type: ignore[union-attr]


def test_returns_per_quarter(ctx: ToolContext) -> None:
    out = run(
        ctx,
        "returns",
        symbol="ETH/USDT",
        timeframe="1d",
        start="2024-01-01",
        end="2025-01-01",
        period="quarter",
    )
    close = cut(raw("ETH/USDT", "1d"), "2024-01-01", "2025-01-01")["close"]
    assert out["total_return"] == pytest.approx(close.iloc[-1] / close.iloc[0] - 1, rel=1e-12)
    r = close.pct_change().dropna()
    assert out["mean_return"] == pytest.approx(r.mean(), rel=1e-12)
    quarters = {
        f"{k.year}-Q{k.quarter}": v
        for k, v in (1 + r).groupby(r.index.tz_localize(None).to_period("Q")).prod().items()
    }
    assert out["periods"] == pytest.approx({k: v - 1 for k, v in quarters.items()}, rel=1e-12)


def test_statistics(ctx: ToolContext) -> None:
    out = run(ctx, "statistics", symbol="BTC/USDT", start="2025-01-01", end="2025-04-01")
    close = cut(raw("BTC/USDT"), "2025-01-01", "2025-04-01")["close"]
    r = close.pct_change().dropna()
    assert out["volatility"] == pytest.approx(r.std() * math.sqrt(HOURS_PER_YEAR), rel=1e-12)
    dd = close / close.cummax() - 1
    assert out["max_drawdown"] == pytest.approx(dd.min(), rel=1e-12)
    assert pd.Timestamp(out["drawdown_trough"]) == dd.idxmin()
    assert pd.Timestamp(out["drawdown_peak"]) == close[: dd.idxmin()].idxmax()
    assert out["best_return"] == pytest.approx(r.max()) and out["worst_return"] == pytest.approx(r.min())
    assert out["total_return"] == pytest.approx(close.iloc[-1] / close.iloc[0] - 1, rel=1e-12)


def test_correlation_overall_and_per_quarter(ctx: ToolContext) -> None:
    out = run(ctx, "correlation", symbols=["BTC/USDT", "ETH/USDT"], period="quarter")
    both = pd.concat({"b": raw("BTC/USDT")["close"], "e": raw("ETH/USDT")["close"]}, axis=1).dropna()
    r = both.pct_change().dropna()
    assert out["pairs"]["BTC/USDT~ETH/USDT"] == pytest.approx(r["b"].corr(r["e"]), rel=1e-12)  # type: ignore[index]
    for q, part in r.groupby(r.index.tz_localize(None).to_period("Q")):
        got = out["periods"][f"{q.year}-Q{q.quarter}"]["BTC/USDT~ETH/USDT"]  # type: ignore[index]
        assert got == pytest.approx(part["b"].corr(part["e"]), rel=1e-12)


def test_rolling_volatility_and_return(ctx: ToolContext) -> None:
    close = cut(raw("SOL/USDT"), "2025-02-01", "2025-03-01")["close"]
    vol = (close.pct_change().rolling(48).std() * math.sqrt(HOURS_PER_YEAR)).dropna()
    out = run(ctx, "rolling", symbol="SOL/USDT", start="2025-02-01", end="2025-03-01", window=48, points=3)
    assert out["values"] == len(vol)
    assert out["last"] == pytest.approx(vol.iloc[-1]) and out["mean"] == pytest.approx(vol.mean())
    assert out["max"] == pytest.approx(vol.max()) and pd.Timestamp(out["max_at"]) == vol.idxmax()
    ret = (close / close.shift(24) - 1).dropna()
    out = run(
        ctx, "rolling", symbol="SOL/USDT", start="2025-02-01", end="2025-03-01", stat="return", window=24
    )
    assert out["min"] == pytest.approx(ret.min()) and pd.Timestamp(out["min_at"]) == ret.idxmin()


def test_regimes_follow_their_stated_definitions(ctx: ToolContext) -> None:
    close = cut(raw("ETH/USDT"), "2025-01-01", "2025-07-01")["close"]
    out = run(ctx, "regimes", symbol="ETH/USDT", start="2025-01-01", end="2025-07-01", window=24,
              trend_threshold=0.05, vol_quantile=0.8)  # fmt: skip
    r = close.pct_change()
    vol, ret = r.rolling(24).std(), close / close.shift(24) - 1
    ok = vol.notna() & ret.notna()
    cut_off = np.quantile(vol[ok], 0.8)
    labels = np.where(vol[ok] > cut_off, "high_vol", np.where(ret[ok] > 0.05, "trend_up",
                      np.where(ret[ok] < -0.05, "trend_down", "range")))  # fmt: skip
    expected = pd.Series(labels).value_counts().to_dict()
    assert out["counts"] == expected and out["bars"] == ok.sum()
    assert out["current"] == labels[-1]
    assert len(out["definitions"]) == 3  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["rsi", "ema", "atr", "bbands"])
def test_indicators_read_the_whole_history_before_end(ctx: ToolContext, name: str) -> None:
    df = cut(raw("BTC/USDT"), None, "2025-05-01")
    c, h, lo = (df[k].to_numpy(np.float64) for k in ("close", "high", "low"))
    expected = {
        "rsi": {"rsi": talib.RSI(c, 21)},
        "ema": {"ema": talib.EMA(c, 21)},
        "atr": {"atr": talib.ATR(h, lo, c, 21)},
        "bbands": dict(zip(("upper", "middle", "lower"), talib.BBANDS(c, 21, 2, 2), strict=True)),
    }[name]
    out = run(ctx, "indicator", symbol="BTC/USDT", name=name, period=21, start="2025-04-01", end="2025-05-01")
    assert pd.Timestamp(out["last_bar"]) == df.index[-1]
    for col, values in expected.items():
        assert out["last"][col] == pytest.approx(values[-1], rel=1e-12)  # type: ignore[index]


def test_backtest_is_not_recorded_and_matches_its_costs(ctx: ToolContext) -> None:
    args = {"strategy": "sma_cross", "params": {"fast": 10, "slow": 30}, "symbols": ["BTC/USDT"],
            "start": "2025-06-01", "end": "2025-07-01"}  # fmt: skip
    cheap = run(ctx, "backtest", **args)
    dear = run(ctx, "backtest", **args, fee=0.002)
    assert dear["fee"] == 0.002 and cheap["fee"] == 0.001
    assert dear["metrics"]["total_return"] < cheap["metrics"]["total_return"]  # type: ignore[index,operator]
    close = cut(raw("BTC/USDT"), "2025-06-01", "2025-07-01")["close"]
    hold = cheap["buy_and_hold"]["total_return"]  # type: ignore[index]
    assert hold == pytest.approx(
        close.iloc[-1] / close.iloc[0] - 1, abs=0.01
    )  # bought at the first open, costs
    assert run(ctx, "list_runs")["runs"] == []


def test_sweep_ranks_its_trials(ctx: ToolContext) -> None:
    out = run(ctx, "sweep", strategy="sma_cross", symbols=["BTC/USDT"], start="2025-06-01", end="2025-07-01",
              grid={"fast": [5, 10], "slow": [30, 60]}, rank_by="total_return")  # fmt: skip
    values = [t["metrics"]["total_return"] for t in out["trials"]]  # type: ignore[union-attr,index]
    assert len(values) == 4 and values == sorted(values, reverse=True)


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        (
            "statistics",
            {"symbol": "DOGE/USDT"},
            "unknown symbol 'DOGE/USDT'; stored symbols: BNB/USDT, BTC/USDT",
        ),
        ("statistics", {"symbol": "BTCUSDT"}, "symbol: symbol 'BTCUSDT' must look like BASE/QUOTE"),
        (
            "statistics",
            {"symbol": "BTC/USDT", "start": "yesterday-ish"},
            "start: 'yesterday-ish' is not a date",
        ),
        (
            "statistics",
            {"symbol": "BTC/USDT", "start": "2025-02-01", "end": "2025-01-01"},
            "must be after start",
        ),
        (
            "statistics",
            {"symbol": "BTC/USDT", "start": "2019-01-01", "end": "2019-02-01"},
            "stored: 2024-09-19",
        ),
        ("statistics", {"symbol": "BTC/USDT", "limit": 3}, "limit: Extra inputs are not permitted"),
        ("indicator", {"symbol": "BTC/USDT", "name": "vwap"}, "name: Input should be"),
        ("backtest", {"strategy": "nope", "symbols": ["BTC/USDT"]}, "unknown strategy 'nope'"),
        ("nope", {}, "unknown tool 'nope'; tools: list_market_data"),
    ],
)
def test_bad_calls_are_one_line_tool_errors(
    ctx: ToolContext, name: str, args: dict[str, object], message: str
) -> None:
    result = tools.call(ctx, name, args)
    assert isinstance(result, ToolError)
    assert message in result.error and "\n" not in result.error


def test_arguments_as_json_text(ctx: ToolContext) -> None:
    assert isinstance(tools.call(ctx, "statistics", "{not json"), ToolError)
    out = tools.call(ctx, "statistics", '{"symbol": "BTC/USDT", "start": "2025-01-01", "end": "2025-01-02"}')
    assert not isinstance(out, ToolError)


def test_every_tool_has_a_schema_and_a_description() -> None:
    for spec in tools.openai_tools():
        fn = spec["function"]
        assert fn["description"] and fn["parameters"]["type"] == "object"


def test_a_tool_that_fails_unexpectedly_returns_an_error_the_model_can_read(
    ctx: ToolContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A defect inside one tool does not end the question: the model gets one line naming the tool and
    the failure, and the traceback goes to the log."""
    tool = tools.TOOLS["statistics"]

    def broken(_ctx: ToolContext, _args: object) -> tools.ToolOutput:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(tools.TOOLS, "statistics", dataclasses.replace(tool, run=broken))
    with caplog.at_level(logging.ERROR, logger="tradegraph.analytics"):
        out = tools.call(ctx, "statistics", {"symbol": "BTC/USDT", "timeframe": "1d"})
    assert isinstance(out, ToolError) and "\n" not in out.error
    assert out.error.startswith("statistics: internal error (ZeroDivisionError: division by zero)")
    assert any("ZeroDivisionError" in (r.exc_text or "") for r in caplog.records)
