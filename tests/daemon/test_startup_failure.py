"""A daemon whose exchange is unreachable at start (issue 15): the failure is in `daemon.log` and in
`tradegraph status`, not only on the terminal that started it."""

from __future__ import annotations

import io
import logging
import socket
from pathlib import Path

import pytest

from agent.daemon import Daemon, DaemonOptions
from agent.daemon.health import read_health
from agent.daemon.logging import LOG_FILE, setup_logging
from agent.daemon.status import read_status, render
from agent.db.session import open_db
from agent.errors import TemporaryExchangeError
from tests.daemon.helpers import SMA, settings


def test_a_network_failure_at_start_reaches_daemon_log_and_status(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"sqlite:///{tmp_path / 'down.db'}"
    exchange = {
        "id": "binance",
        "api_url": f"http://127.0.0.1:{port}",
        "max_retries": 1,
        "backoff_base_s": 0.0,
    }
    cfg = settings(tmp_path / "live", url, exchange=exchange)
    root = logging.getLogger()
    level = root.level
    handlers = setup_logging("text", tmp_path / "logs", [], stream=io.StringIO())
    try:
        with pytest.raises(TemporaryExchangeError, match="load_markets failed"):
            Daemon(cfg, DaemonOptions(params=SMA, run_id="down")).run()
    finally:
        for handler in handlers:
            handler.close()
            root.removeHandler(handler)
        root.setLevel(level)
    logged = (tmp_path / "logs" / LOG_FILE).read_text()
    assert "load_markets failed after 2 attempts" in logged
    assert "event=daemon_failed" in logged
    engine, factory = open_db(url, migrate=False)
    try:
        health = read_health(factory, 0, "down")
        assert health.state == "stopped"
        assert health.reason is not None and "load_markets failed after 2 attempts" in health.reason
        shown = render(read_status(factory, 0, "down", 5))
        from rich.console import Console

        console = Console(file=io.StringIO(), width=200)
        console.print(shown)
        assert "load_markets failed" in console.file.getvalue()  # type: ignore[attr-defined]
    finally:
        engine.dispose()
