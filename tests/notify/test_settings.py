"""The `[notify]` settings: URLs from TOML or the environment, shown as `scheme://***` by `config show`,
their token-like parts masked in the daemon's logs, a URL Apprise cannot use refused without showing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from agent.config import NotifySettings, Settings, load_settings
from agent.daemon.logging import configured_secrets
from agent.errors import ConfigError
from agent.notify import make_notifier, url_secrets

TELEGRAM = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567"
SLACK = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#general"


def test_config_show_masks_notification_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "tradegraph.toml").write_text(
        f'[notify]\nurls = ["{TELEGRAM}"]\nrate_per_minute = 5\nevents = ["fill", "breaker"]\n'
    )
    monkeypatch.setenv("TRADEGRAPH_CONFIG", str(tmp_path / "tradegraph.toml"))
    shown = CliRunner().invoke(app, ["config", "show", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)["notify"]
    assert data["urls"] == ["tgram://***"] and data["rate_per_minute"] == 5
    table = CliRunner().invoke(app, ["config", "show"])
    assert table.exit_code == 0
    for piece in ("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "123456789", "1001234567"):
        assert piece not in shown.output and piece not in table.output


def test_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGRAPH_NOTIFY__URLS", json.dumps([SLACK]))
    monkeypatch.setenv("TRADEGRAPH_NOTIFY__EVENTS", '["fill"]')
    s = load_settings()
    assert [u.get_secret_value() for u in s.notify.urls] == [SLACK] and s.notify.events == ["fill"]


def test_unknown_event_kind_is_refused_without_showing_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGRAPH_NOTIFY__EVENTS", '["fills"]')
    with pytest.raises(ConfigError, match="notify.events"):
        load_settings()
    monkeypatch.delenv("TRADEGRAPH_NOTIFY__EVENTS")
    monkeypatch.setenv("TRADEGRAPH_NOTIFY__URLS", json.dumps({"a": TELEGRAM}))
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "AAHdqTcv" not in str(refused.value)


def test_the_daemon_log_masks_each_urls_token_like_parts() -> None:
    secrets = configured_secrets(Settings(notify={"urls": [TELEGRAM, SLACK, "json://127.0.0.1:8080/hook"]}))
    for piece in ("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "TIiajkdnlazkcOXrIdevi7FQ", "T1JJ3T3L2", TELEGRAM):
        assert piece in secrets
    assert "127.0.0.1" not in secrets and "hooks.slack.com" not in url_secrets("https://hooks.slack.com/x")


def test_a_url_apprise_cannot_use_is_refused_by_position_and_scheme_only() -> None:
    with pytest.raises(ConfigError, match=r"notify.urls\[1\] \(nosuch://\*\*\*\)") as refused:
        make_notifier(NotifySettings(urls=[SLACK, "nosuch://sekrit-token-value"]))
    assert "sekrit" not in str(refused.value)


def test_the_daemon_refuses_a_bad_url_before_taking_the_lease(tmp_path: Path) -> None:
    from agent.daemon import Daemon, DaemonOptions
    from agent.daemon.lease import read_lease
    from agent.db.session import open_db
    from tests.daemon.helpers import SMA, data_dir, settings

    url = f"sqlite:///{tmp_path / 'bad.db'}"
    cfg = settings(data_dir(tmp_path), url, notify={"urls": ["nosuch://sekrit-token-value"]})
    with pytest.raises(ConfigError, match=r"notify.urls\[0\]"):
        Daemon(cfg, DaemonOptions(replay=True, params=SMA, run_id="bad")).run()
    engine, factory = open_db(url, migrate=False)
    try:
        assert read_lease(factory) is None
    finally:
        engine.dispose()
