"""The report files: self-contained HTML (interactive charts; tests/test_report_browser.py opens it in a
browser), PNG, CSVs; nothing half-written on failure."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from agent.backtest import report as report_module
from agent.backtest.models import EngineConfig, SizingRules
from agent.backtest.report import write_report
from agent.backtest.runner import compare, run_backtest
from strategies.crossover import SmaCross
from tests.backtest.helpers import plain_rules, random_walk


def _run() -> tuple:
    frames = {"X/USDT": random_walk(600, seed=2)}
    rules = [plain_rules("X/USDT", fee=0.001)]
    result = run_backtest(
        frames,
        SmaCross(fast=5, slow=20, stop_atr=3.0),
        timeframe="1h",
        rules=rules,
        config=EngineConfig(1000.0),
        sizing=SizingRules(),
    )
    hold, comparison = compare(frames, result, rules)
    return result, hold, comparison


def test_report_files_are_complete_and_self_contained(tmp_path: Path) -> None:
    result, hold, comparison = _run()
    path = write_report(
        tmp_path / "run1", result, hold, comparison, {"title": "t <&>", "run id": "run1"}, ["a note"]
    )
    assert path == tmp_path / "run1" / "report.html"
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "equity.png",
        "fills.csv",
        "report.html",
        "trades.csv",
    ]
    assert (path.parent / "equity.png").read_bytes().startswith(b"\x89PNG")
    html = path.read_text()
    assert "t &lt;&amp;&gt;" in html and "a note" in html and "buy &amp; hold" in html
    # one interactive chart of equity, drawdown and exposure, one of the symbol's trades; the PNG for no-JS
    assert re.findall(r'<div id="(chart-[\w-]+)" class="plotly-graph-div"', html) == [
        "chart-overview",
        "chart-trades-0",
    ]
    assert "<noscript>" in html and "src='equity.png'" in html
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)  # plotly.js names links in strings
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", markup)  # no network resource
    trades = pd.read_csv(path.parent / "trades.csv")
    assert len(trades) == result.metrics["trades"] + result.metrics["open_trades"]
    assert f"{result.metrics['final_equity']:,.2f}" in html


def test_a_failing_report_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result, hold, comparison = _run()

    def boom(*_args: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "_body", boom)
    with pytest.raises(RuntimeError):
        write_report(tmp_path / "run2", result, hold, comparison, {"title": "x"})
    assert list(tmp_path.iterdir()) == []
