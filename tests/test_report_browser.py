"""Both run reports (the rule backtest's and the agent run's) are self-contained pages whose interactive
charts render offline in a real headless browser, and a hostile rationale in their hover text stays text.

- DOM checks of the saved HTML (always run): plotly.js inline exactly once, every script inline (no
  `src`, so no CDN), no network resource, one plotly div per chart each drawn by its own inline call, and
  no script element beyond those (a rationale `</script><script>...` cannot open one).
- Browser checks: Debian's `chromium` driven by `chromedriver` through selenium opens the file and the
  figures render (`.js-plotly-plot .main-svg`), escaped names show decoded (`buy & hold`), hovering a fill
  shows the hostile rationale literally and runs nothing. Skipped with the reason when selenium, chromium
  or chromedriver is missing, except in CI (`CI` set), where that is a failure (`.ci/run` installs them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from agent.backtest.models import EngineConfig, SizingRules
from agent.backtest.report import write_report
from agent.backtest.runner import compare, run_backtest
from agent.graph.backtest import run_agent_backtest
from agent.testing.vllm_emulator import VLLMEmulator
from strategies.crossover import SmaCross
from tests.backtest.helpers import plain_rules, random_walk
from tests.browser import chromium
from tests.graph.helpers import emulator_settings, short_source

HOSTILE = "</script><script>window.pwned=1;alert(1)</script> <b>bold</b> & co"
"""A rationale that would run a script if it reached the page as markup."""
PLOTLY_BANNER = re.compile(r"plotly\.js v\d+\.\d+\.\d+")


# --------------------------------------------------------------------------------------------- reports


@pytest.fixture(scope="module")
def rule_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rule backtest's report (600 bars, one symbol, trades)."""
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
    out = tmp_path_factory.mktemp("rule") / "run"
    return write_report(out, result, hold, comparison, {"title": "rule run"})


def _symbol(body: dict[str, Any]) -> str:
    return str(body["response_format"]["json_schema"]["schema"]["properties"]["symbol"]["enum"][0])


@pytest.fixture(scope="module")
def agent_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LLM run's report over 4 bars: BTC is bought on the first answer and sold on the third, both
    decisions carrying the hostile rationale; ETH holds."""
    tmp = tmp_path_factory.mktemp("agent")
    answers: dict[str, int] = {}

    def responder(body: dict[str, Any]) -> dict[str, Any]:
        symbol = _symbol(body)
        n = answers[symbol] = answers.get(symbol, 0) + 1
        buy = symbol == "BTC/USDT" and n < 3
        return {
            "symbol": symbol,
            "action": "buy" if buy else ("sell" if symbol == "BTC/USDT" else "hold"),
            "target_exposure": 0.5 if buy else 0.0,
            "confidence": 0.7,
            "stop_loss": None,
            "take_profit": None,
            "invalidation": "none",
            "rationale": HOSTILE,
        }

    with VLLMEmulator(latency_s=0.0, max_model_len=32768) as emu:
        emu.set_responder(responder)
        settings = emulator_settings(f"sqlite:///{tmp / 'agent.db'}", emu.base_url)
        run = run_agent_backtest(
            settings,
            strategy="llm",
            start=None,
            end=None,
            last_bars=4,
            reports_dir=tmp / "reports",
            show_progress=False,
            source=short_source(settings, 10),
        )
    return tmp / "reports" / run.run_id / "report.html"


# ------------------------------------------------------------------------------------------- DOM check


@dataclass
class _Page(HTMLParser):
    """Script elements (attributes, text), plotly divs and every src / href of a page."""

    scripts: list[tuple[dict[str, str | None], str]] = field(default_factory=list)
    chart_ids: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    _open: dict[str, str | None] | None = None
    _text: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "script":
            self._open, self._text = a, []
        elif tag == "div" and "plotly-graph-div" in (a.get("class") or "").split():
            self.chart_ids.append(a.get("id") or "")

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._open is not None:
            self.scripts.append((self._open, "".join(self._text)))
            self._open = None


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def _assert_offline_charts(path: Path, charts: list[str]) -> _Page:
    page = _parse(path)
    assert page.chart_ids == charts
    assert all("src" not in attrs for attrs, _ in page.scripts), "every script is inline: no CDN"
    assert not [u for u in page.links if re.match(r"\s*(https?:)?//", u)], "no network resource"
    bundles = [text for _, text in page.scripts if PLOTLY_BANNER.search(text[:2000])]
    assert len(bundles) == 1 and len(bundles[0]) > 1_000_000, "plotly.js inline, exactly once"
    calls = [text for _, text in page.scripts if "Plotly.newPlot" in text]
    for chart in charts:
        assert sum(f'"{chart}"' in text for text in calls) == 1, f"{chart} is drawn by one inline call"
    assert len(page.scripts) == 1 + len(charts), "no script element beyond the bundle and one per chart"
    return page


def test_rule_report_embeds_its_charts_offline(rule_report: Path) -> None:
    _assert_offline_charts(rule_report, ["chart-overview", "chart-trades-0"])
    assert (
        "<noscript>" in rule_report.read_text(encoding="utf-8")
        and (rule_report.parent / "equity.png").exists()
    )


def test_agent_report_embeds_its_charts_and_keeps_the_hostile_rationale_inert(agent_report: Path) -> None:
    page = _assert_offline_charts(agent_report, ["chart-overview", "chart-trades-0", "chart-trades-1"])
    html = agent_report.read_text(encoding="utf-8")
    assert "<h2>Model usage</h2>" in html and "<td>llm_calls</td>" in html, "the report's tables stay"
    assert HOSTILE not in html and "<script>window.pwned" not in html
    figures = [text for _, text in page.scripts if "Plotly.newPlot" in text]
    assert any("window.pwned=1;alert(1)" in text for text in figures), "the rationale is in the hover text"
    assert not any("</" in text for text in figures), "plotly's JSON escapes every '</'"


# ----------------------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (`tests.browser.chromium`)."""
    with chromium() as driver:
        yield driver


def _open(driver: Any, path: Path, charts: list[str]) -> None:
    """Load the file and wait until every chart has drawn its SVG (a condition, polled; not a sleep)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.as_uri())
    wanted = len(charts)
    WebDriverWait(driver, 60).until(
        lambda d: (
            d.execute_script("return document.querySelectorAll('.js-plotly-plot .main-svg').length") >= wanted
        )
    )
    for chart in charts:
        drawn = driver.execute_script(
            f"return document.querySelectorAll('#{chart} .scatterlayer .trace').length"
        )
        assert drawn > 0, f"{chart} drew no trace"
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe
    fetched = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [u for u in fetched if not u.startswith("file:")], "the page loads nothing from a network"


def _legend(driver: Any, chart: str) -> list[str]:
    return list(
        driver.execute_script(
            f"return [...document.querySelectorAll('#{chart} .legendtext')].map(e => e.textContent)"
        )
    )


def test_rule_report_charts_render_in_a_headless_browser(browser: Any, rule_report: Path) -> None:
    _open(browser, rule_report, ["chart-overview", "chart-trades-0"])
    assert {"sma_cross", "buy & hold", "cash"} <= set(_legend(browser, "chart-overview"))
    markers = browser.execute_script(
        "return document.querySelectorAll('#chart-trades-0 .points path').length"
    )
    assert markers > 0, "the trades are drawn on the price"


def test_agent_report_charts_render_and_hover_shows_the_rationale_as_text(
    browser: Any, agent_report: Path
) -> None:
    _open(browser, agent_report, ["chart-overview", "chart-trades-0", "chart-trades-1"])
    assert {"agent", "buy & hold", "cash"} <= set(_legend(browser, "chart-overview"))
    shown = browser.execute_script(
        """
        const gd = document.getElementById('chart-trades-0');
        const buys = gd.data.findIndex(t => t.mode === 'markers');
        Plotly.Fx.hover(gd, [{curveNumber: buys, pointNumber: 0}]);
        return [...gd.querySelectorAll('.hovertext')].map(e => e.textContent).join(' ');
        """
    )
    assert "</script><script>window.pwned=1;alert(1)</script>" in shown, "shown literally"
    assert "<b>bold</b>" in shown, "plotly's own markup in the rationale is shown, not applied"
    assert browser.execute_script("return window.pwned === undefined"), "nothing from the rationale ran"


# ------------------------------------------------------------------------------------- campaign report

CAMPAIGN = """
[campaign]
name = "browser"
timeframe = "1d"
symbols = ["BTC/USDT", "ETH/USDT"]

[statistics]
samples = 200

[[windows]]
name = "w"
start = "2023-01-01"
end = "2023-04-01"

[[strategies]]
name = "sma"
spec = "sma_cross"

[[strategies]]
name = "HOSTILE"
spec = "rsi_reversion"
"""


@pytest.fixture(scope="module")
def campaign_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tradegraph eval`'s report of a rule campaign (one window, two symbols), one strategy named with
    markup."""
    from agent.config import DEFAULT_DATA_DIR, load_settings
    from agent.eval import report, table
    from agent.eval.campaign import load_campaign
    from agent.eval.runner import run_campaign

    tmp = tmp_path_factory.mktemp("campaign")
    (tmp / "data").mkdir()
    (tmp / "data" / "binance").symlink_to(DEFAULT_DATA_DIR / "binance", target_is_directory=True)
    path = tmp / "c.toml"
    path.write_text(CAMPAIGN.replace("HOSTILE", HOSTILE.replace('"', "'")), encoding="utf-8")
    settings = load_settings(database_url=f"sqlite:///{tmp / 'c.db'}", data_dir=tmp / "data")
    campaign = load_campaign(path, settings)
    results = run_campaign(campaign, settings, tmp / "reports", show_progress=False)
    groups = table.build(campaign, results)
    return report.write(tmp / "out", campaign, results, groups, table.cutoff_rows(campaign, results))


def test_campaign_report_embeds_its_charts_offline_and_keeps_names_inert(campaign_report: Path) -> None:
    page = _assert_offline_charts(campaign_report, ["chart-0", "chart-1"])
    html = campaign_report.read_text(encoding="utf-8")
    assert HOSTILE.replace('"', "'") not in html and "<b>bold</b>" not in html
    assert html.count("<h2>w · ") == 2 and "deflated Sharpe" in html
    assert not any("</" in text for _, text in page.scripts if "Plotly.newPlot" in text)


def test_campaign_report_charts_render_in_a_headless_browser(browser: Any, campaign_report: Path) -> None:
    _open(browser, campaign_report, ["chart-0", "chart-1"])
    assert {"sma", "buy & hold", "cash"} <= set(_legend(browser, "chart-0"))
    assert browser.execute_script("return window.pwned === undefined"), "nothing from a name ran"
    shown = browser.execute_script("return document.body.innerText")
    assert "window.pwned=1" in shown, "the hostile name is shown as text"
