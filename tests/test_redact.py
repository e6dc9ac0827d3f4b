"""Credentials embedded in URLs (`scheme://user:password@host`) never reach output: the one masking function,
and each place that shows or records a URL (config show, logs, `error:` lines)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from agent.cli.main import app
from agent.daemon.logging import setup_logging
from agent.redact import mask_url_credentials

_USERINFO = st.text(
    alphabet=st.characters(codec="ascii", categories=("L", "N"), include_characters="-._~!$&'()*+,;=%"),
    min_size=1,
    max_size=20,
)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("http://user:pw@host:8000/v1", "http://user:***@host:8000/v1"),
        ("postgresql+psycopg://bob:s3cret@db.example/trade", "postgresql+psycopg://bob:***@db.example/trade"),
        ("https://tok3n@proxy.example", "https://***@proxy.example"),
        ("https://user:p@ss@host/x", "https://user:***@host/x"),
        ("error: reach http://a:b@h/v1/models: refused", "error: reach http://a:***@h/v1/models: refused"),
        ("two: http://a:b@h and ws://c:d@k/", "two: http://a:***@h and ws://c:***@k/"),
        ("http://host:8000/v1?mail=a@b", "http://host:8000/v1?mail=a@b"),
        ("no url, mail bob@example.com", "no url, mail bob@example.com"),
        ("sqlite:////tmp/x@y/tradegraph.db", "sqlite:////tmp/x@y/tradegraph.db"),
    ],
)
def test_mask_url_credentials_examples(text: str, masked: str) -> None:
    assert mask_url_credentials(text) == masked


@given(
    scheme=st.sampled_from(["http", "https", "postgresql+psycopg", "redis", "ws"]),
    user=_USERINFO,
    password=_USERINFO,
    path=st.sampled_from(["", "/", "/v1", "/db?sslmode=require", ":5432/db"]),
    before=st.sampled_from(["", "url ", "(", "'", '"url": "']),
)
def test_mask_url_credentials_never_shows_the_password(
    scheme: str, user: str, password: str, path: str, before: str
) -> None:
    text = f"{before}{scheme}://{user}:{password}@host.example{path} tail"
    assert mask_url_credentials(text) == f"{before}{scheme}://{user}:***@host.example{path} tail"
    assert mask_url_credentials(mask_url_credentials(text)) == mask_url_credentials(text)


def test_config_show_masks_credentials_in_every_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEGRAPH_LLM__BASE_URL", "http://alice:llm-pw-1@gpu-host:8000/v1")
    monkeypatch.setenv("TRADEGRAPH_EXCHANGE__API_URL", "https://proxy-token-2@proxy.example")
    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", "postgresql+psycopg://bob:db-pw-3@db.example/trade")
    shown = CliRunner().invoke(app, ["config", "show", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["llm"]["base_url"] == "http://alice:***@gpu-host:8000/v1"
    assert data["exchange"]["api_url"] == "https://***@proxy.example"
    assert data["database_url"] == "postgresql+psycopg://bob:***@db.example/trade"
    table = CliRunner().invoke(app, ["config", "show"])
    assert table.exit_code == 0
    for secret in ("llm-pw-1", "proxy-token-2", "db-pw-3"):
        assert secret not in shown.output and secret not in table.output


def test_logs_mask_credentials_in_urls_that_are_not_configured_secrets() -> None:
    stream = io.StringIO()
    handlers = setup_logging("json", None, [], stream=stream)
    log = logging.getLogger("tradegraph.test_redact")
    try:
        log.warning("endpoint %s down", "http://u:log-pw-1@gpu:8000/v1", extra={"url": "https://tok-2@h/"})
        try:
            raise RuntimeError("cannot reach postgresql://bob:log-pw-3@db/x")
        except RuntimeError:
            log.exception("failed")
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    for secret in ("log-pw-1", "tok-2", "log-pw-3"):
        assert secret not in out
    first = json.loads(out.splitlines()[0])
    assert first["msg"] == "endpoint http://u:***@gpu:8000/v1 down" and first["url"] == "https://***@h/"


def test_error_line_masks_credentials_in_urls() -> None:
    env = {
        "TRADEGRAPH_LLM__BASE_URL": "http://bob:err-pw-1@127.0.0.1:9/v1",
        "TRADEGRAPH_LLM__PROFILE": "vllm",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli.main", "llm", "check"],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "bob:***@127.0.0.1:9" in lines[0]
    assert "err-pw-1" not in proc.stderr + proc.stdout
