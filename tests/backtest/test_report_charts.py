"""The chart module (`agent.backtest.charts`): figures from records, text inert, long series thinned
without losing their extremes, plotly.js inline."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agent.backtest import charts
from agent.backtest.models import EngineConfig, SizingRules
from agent.backtest.runner import run_backtest
from strategies.crossover import SmaCross
from tests.backtest.helpers import plain_rules, random_walk

HOSTILE = "</script><script>alert(1)</script>"


def _overview(n: int) -> charts.Overview:
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    equity = pd.Series(1000.0 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, n))), index=index)
    return charts.Overview(
        (charts.Line("strategy", equity), charts.Line("buy & hold", equity * 0.5 + 500.0)),
        1000.0,
        (charts.Line("strategy", pd.Series(np.linspace(0.0, 1.0, n), index=index)),),
    )


def test_plotlys_json_cannot_close_the_script_it_sits_in() -> None:
    """The guarantee the reports rely on, checked on raw text that bypassed `for_html`."""
    fig = go.Figure(go.Scatter(x=[1, 2], y=[1, 2], name=HOSTILE, hovertext=[HOSTILE, HOSTILE]))
    html = charts.div(fig, "c")
    assert html.count("<script") == 1 and html.count("</script>") == 1, "only the figure's own element"
    assert "\\u003c\\u002fscript\\u003e" in html, "'</' arrives escaped"


def test_every_text_of_a_figure_is_escaped() -> None:
    index = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    marks = charts.PriceMarks(
        HOSTILE,
        pd.Series([1.0, 2.0, 3.0], index=index),
        (charts.Fill(index[1], 2.0, "buy", HOSTILE),),
    )
    fig = charts.trades_figure(marks, title=HOSTILE)
    texts = [fig.layout.title.text] + [t.name for t in fig.data] + list(fig.data[1].hovertext)
    assert all("<script>" not in t and "&lt;script&gt;" in t for t in texts if t not in ("buy",))


@given(st.text(max_size=500))
def test_hover_text_is_inert_and_bounded(note: str) -> None:
    shown = charts.hover_text(note)
    plain = shown.replace("<br>", "")
    assert "<" not in plain and ">" not in plain, "no markup but the line breaks"
    assert re.search(r"&(?!amp;|lt;|gt;|quot;|#x27;)", plain) is None, "every & starts a whole entity"
    assert shown.count("<br>") <= charts.NOTE_SHOWN // 40


@given(
    arrays(np.float64, st.integers(1, 400), elements=st.floats(-1e6, 1e6) | st.just(np.nan)),
    st.integers(6, 60),
)
def test_thinning_keeps_order_ends_and_extremes(values: np.ndarray, max_points: int) -> None:
    keep, factor = charts.thin(values, max_points)
    assert np.all(np.diff(keep) > 0) and keep[0] == 0 and keep[-1] == len(values) - 1
    if len(values) <= max_points:
        assert factor == 1 and len(keep) == len(values)
        return
    assert factor > 1 and len(keep) <= max_points + 4
    if np.isfinite(values).any():
        assert np.nanargmin(values) in keep and np.nanargmax(values) in keep


def test_a_long_run_is_thinned_and_says_so() -> None:
    fig = charts.overview_figure(_overview(charts.MAX_POINTS * 3))
    assert all(len(t.x) <= charts.MAX_POINTS + 4 for t in fig.data)
    assert "min and max of every" in fig.layout.title.text
    short = charts.overview_figure(_overview(500))
    assert short.layout.title.text is None and len(short.data[0].x) == 500


def test_the_overview_has_equity_with_cash_drawdown_and_exposure() -> None:
    ov = _overview(200)
    fig = charts.overview_figure(ov)
    names = [(t.name, t.yaxis) for t in fig.data]
    assert ("strategy", "y") in names and ("buy &amp; hold", "y") in names and ("cash", "y") in names
    assert {t.yaxis for t in fig.data} == {"y", "y2", "y3"}, "equity, drawdown, exposure share one time axis"
    drawdown = [t for t in fig.data if t.yaxis == "y2"][0]
    assert np.allclose(drawdown.y, charts.drawdown_pct(ov.equity[0].values, 1000.0)) and max(drawdown.y) <= 0


def test_a_simulations_fills_are_marked_by_kind() -> None:
    frames = {"X/USDT": random_walk(600, seed=2)}
    result = run_backtest(
        frames,
        SmaCross(fast=5, slow=20, stop_atr=1.0),
        timeframe="1h",
        rules=[plain_rules("X/USDT", fee=0.001)],
        config=EngineConfig(1000.0),
        sizing=SizingRules(),
    )
    marks = charts.sim_marks(result.sim, 0, result.close[:, 0])
    sim = result.sim
    assert len(marks.fills) == len(sim.fill_bar)
    assert sum(f.kind == "buy" for f in marks.fills) == int((sim.fill_side > 0).sum())
    assert any(f.kind == "exit" for f in marks.fills), "a tight stop fires at least once"
    assert all(f.note.split(":")[0] in charts.EXIT_REASONS for f in marks.fills if f.kind == "exit")
    assert charts.fill_kind(False, "exit") == "sell" and charts.fill_kind(True, "entry") == "buy"


def test_the_script_is_the_bundled_plotly_js_and_the_fallback_a_png() -> None:
    script = charts.script()
    assert script.startswith("<script") and "src=" not in script[:40] and len(script) > 1_000_000
    assert charts.overview_png(_overview(50)).startswith(b"\x89PNG")
    assert "src='equity.png'" in charts.noscript("equity.png")
