"""The dashboard in a real headless browser (Debian's chromium through chromedriver), served by uvicorn in a
thread, while a daemon replays the bundled candles in another thread (one 1h bar per second):

- the overview's equity chart is drawn (plotly's SVG inside `#equity-chart`), with no CSP violation;
- a new decision appears in the open decisions page without a reload (server-sent events), within two
  ticks of the bar the page was loaded at;
- the kill switch is turned on from the overview, its state shows ON with who set it, and the next tick's
  decisions carry the `kill_switch` clamp; it is turned off again;
- a decision whose rationale is `<script>` markup shows as text, live and on its own page, and runs nothing.

Screenshots go to the test's temporary folder. Skipped with the reason when selenium, chromium or
chromedriver is missing, except in CI (`CI` set), where that is a failure (`.ci/run` installs them).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from agent.daemon import Daemon, DaemonOptions
from agent.daemon.lease import read_lease
from agent.db.models import Decision
from agent.db.session import open_db
from agent.web import close, create_app
from tests.browser import chromium
from tests.daemon.helpers import DATA_END, HOUR, SMA, data_dir, iso, settings, wait_for
from tests.web.helpers import HOSTILE, RUN, add_hostile_decision


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (`tests.browser.chromium`)."""
    with chromium() as driver:
        yield driver


class Served:
    """The dashboard under uvicorn in a thread, and a daemon replaying in another."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'live.db'}"
        open_db(self.url)[0].dispose()
        cfg = settings(data_dir(tmp_path), self.url)
        options = DaemonOptions(
            replay=True, speed=3600, start=iso(DATA_END - 400 * HOUR), params=SMA, run_id=RUN, max_bars=1
        )
        self.daemon = Daemon(cfg, options)
        self.daemon_thread = threading.Thread(target=self.daemon.run, name="daemon-under-test")
        self.daemon_thread.start()
        self.engine, self.factory = open_db(self.url)
        wait_for(lambda: self.decision_bars(), 60, "the daemon's first decisions")
        self.app = create_app(cfg)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        config.timeout_graceful_shutdown = 1
        self.server = uvicorn.Server(config)
        self.server_thread = threading.Thread(target=self.server.run, name="dashboard-under-test")
        self.server_thread.start()
        wait_for(lambda: self.server.started, 30, "uvicorn to start")
        self.base = f"http://127.0.0.1:{self.port}"

    def decision_bars(self) -> list[tuple[int, int, list[Any]]]:
        """(id, bar, clamps) of the run's decisions, in id order."""
        with self.factory() as session:
            rows = session.execute(
                select(Decision.id, Decision.bar_ts, Decision.clamps)
                .where(Decision.run_id == RUN, Decision.source != "llm")
                .order_by(Decision.id)
            ).all()
        return [(int(i), int(b), list(c)) for i, b, c in rows]

    def last_bar(self) -> int:
        return max(b for _, b, _ in self.decision_bars())

    def stop(self) -> None:
        self.daemon.stop.request("test done")
        self.server.should_exit = True
        self.server_thread.join(30)
        self.daemon_thread.join(60)
        close(self.app)
        self.engine.dispose()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    try:
        yield s
    finally:
        s.stop()


def _shot(driver: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 0


def _text(driver: Any, element_id: str) -> str:
    """An element's text, or '' while the page is being reloaded (the element found went stale)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return str(driver.find_element(By.ID, element_id).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def _csp_violations(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


@pytest.mark.timeout(300)
def test_the_dashboard_in_a_browser_against_a_replaying_daemon(
    browser: Any, served: Served, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    # the overview's equity chart is drawn
    browser.get(served.base + "/")
    wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#equity-chart .main-svg"), 60, "the equity chart"
    )
    assert browser.find_element(By.ID, "health-state").text in ("alive", "degraded", "stalled")
    _shot(browser, tmp_path, "overview")

    # a new decision appears without a reload, within two ticks
    browser.get(served.base + "/decisions")
    loaded_at = served.last_bar()
    browser.execute_script("window.sameDocument = 1;")
    first = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, "#decisions tbody tr[data-id]"), 30, "a live decision"
    )
    assert browser.execute_script("return window.sameDocument;") == 1  # no reload happened
    new_id = int(first[-1].get_attribute("data-id"))
    bar = next(b for i, b, _ in served.decision_bars() if i == new_id)
    assert bar <= loaded_at + 2 * HOUR
    _shot(browser, tmp_path, "decisions-live")

    # a <script> rationale arrives live and shows as text
    hostile = add_hostile_decision(served.url, DATA_END + 50 * HOUR)
    row = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, f'#decisions tbody tr[data-id="{hostile}"]'),
        30,
        "the hostile decision",
    )
    assert HOSTILE[:60] in row[0].text
    assert browser.execute_script("return window.pwned;") is None
    browser.get(f"{served.base}/decisions/{hostile}")
    assert browser.find_element(By.ID, "rationale").text == HOSTILE
    assert browser.execute_script("return window.pwned;") is None
    _shot(browser, tmp_path, "hostile-decision")

    # the kill switch: on from the overview, recorded, honoured at the next tick; then off
    browser.get(served.base + "/")
    browser.find_element(By.ID, "who").clear()
    browser.find_element(By.ID, "who").send_keys("browser-test")
    browser.find_element(By.ID, "kill_switch-toggle").click()
    state = wait_for(lambda: "ON" in (t := _text(browser, "kill_switch-state")) and t, 30, "kill switch ON")
    assert "kill switch: ON" in state
    assert "browser-test" in browser.find_element(By.TAG_NAME, "main").text
    recorded = served.last_bar()  # the control is in the ledger: the ticks after this bar's see it
    _shot(browser, tmp_path, "kill-switch-on")
    wait_for(lambda: served.last_bar() >= recorded + 2 * HOUR, 60, "two more ticks")
    after = [(b, c) for _, b, c in served.decision_bars() if b > recorded]
    clamped = [b for b, c in after if any(x.get("kind") == "kill_switch" for x in c)]
    assert clamped and min(clamped) <= recorded + 2 * HOUR  # the next tick (or the one in flight, then next)
    assert all(b in clamped for b, _ in after if b >= min(clamped))  # and every tick after it, while on
    browser.find_element(By.ID, "kill_switch-toggle").click()
    wait_for(lambda: "off" in _text(browser, "kill_switch-state"), 30, "kill switch off")
    lease = read_lease(served.factory)
    assert lease is not None and lease.run_id == RUN
    assert _csp_violations(browser) == []
