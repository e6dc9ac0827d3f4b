"""Daemon logs: one JSON object per line with the call's extra fields, a rotating file, and no configured
secret in any line (message, arguments, extra fields, traceback)."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from agent.config import Settings
from agent.daemon.logging import LOG_FILE, configured_secrets, setup_logging

SECRETS = {"api_key": "AKIA-ex4mple-KEY", "secret": 'p"ss\\w0rd/+=&', "password": "tr4ding-pass"}
LLM_KEY = "sk-llm-0123456789"
DB_PASSWORD = "db-s3cr3t/pw"


def _settings() -> Settings:
    return Settings(
        exchange={"id": "binance", **SECRETS},
        llm={"api_key": LLM_KEY},
        database_url="postgresql+psycopg://tg:db-s3cr3t%2Fpw@127.0.0.1:5432/tradegraph",
    )


def test_configured_secrets_lists_every_secret_but_placeholders() -> None:
    found = configured_secrets(_settings())
    assert set(found) == {*SECRETS.values(), LLM_KEY, DB_PASSWORD}
    assert configured_secrets(Settings()) == []  # the offline default LLM key "EMPTY" is no secret


def test_json_lines_carry_extra_fields_and_no_secret(tmp_path: Path) -> None:
    stream = io.StringIO()
    setup_logging("json", tmp_path / "logs", configured_secrets(_settings()), stream=stream)
    log = logging.getLogger("tradegraph.daemon.test")
    log.info(
        "tick %s done", "2025-09-19 22:00", extra={"event": "tick", "run_id": "r1", "bar_ts": 1758319200000}
    )
    log.warning(
        "exchange said %s with key %s",
        SECRETS["secret"],
        SECRETS["api_key"],
        extra={"event": "skip", "detail": {"url": f"https://x/?apiKey={SECRETS['api_key']}"}},
    )
    try:
        raise RuntimeError(f"auth failed for {LLM_KEY} and {DB_PASSWORD} (postgresql://tg:db-s3cr3t%2Fpw@h)")
    except RuntimeError:
        log.exception("llm down", extra={"event": "error", "args_seen": [SECRETS["password"]]})
    for handler in logging.getLogger().handlers:
        handler.flush()
    for text in (stream.getvalue(), (tmp_path / "logs" / LOG_FILE).read_text()):
        lines = [json.loads(line) for line in text.strip().splitlines()]
        assert [line["event"] for line in lines] == ["tick", "skip", "error"]
        assert lines[0] | {"ts": None} == {
            "ts": None,
            "level": "INFO",
            "logger": "tradegraph.daemon.test",
            "msg": "tick 2025-09-19 22:00 done",
            "event": "tick",
            "run_id": "r1",
            "bar_ts": 1758319200000,
        }
        assert lines[1]["msg"] == "exchange said *** with key ***"
        assert lines[1]["detail"] == {"url": "https://x/?apiKey=***"}
        assert "RuntimeError: auth failed for *** and ***" in lines[2]["exc"]
        assert lines[2]["args_seen"] == ["***"]
        for secret in [*SECRETS.values(), LLM_KEY, DB_PASSWORD, "db-s3cr3t%2Fpw"]:
            assert secret not in text and json.dumps(secret)[1:-1] not in text


def test_text_format_and_rotation(tmp_path: Path) -> None:
    stream = io.StringIO()
    setup_logging("text", tmp_path, ["hunter2-secret"], stream=stream, max_bytes=2_000, backups=2)
    log = logging.getLogger("tradegraph.daemon.test")
    for i in range(100):
        log.info("line %d with hunter2-secret", i, extra={"event": "tick", "bar_ts": i})
    for handler in logging.getLogger().handlers:
        handler.flush()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [LOG_FILE, f"{LOG_FILE}.1", f"{LOG_FILE}.2"]
    assert all((tmp_path / f).stat().st_size <= 2_200 for f in files)
    last = stream.getvalue().strip().splitlines()[-1]
    assert last.endswith("tradegraph.daemon.test: line 99 with *** event=tick bar_ts=1970-01-01T00:00Z")
    assert "hunter2" not in stream.getvalue()


def test_setup_twice_replaces_its_handlers(tmp_path: Path) -> None:
    before = len(logging.getLogger().handlers)
    setup_logging("text", tmp_path, [])
    setup_logging("json", tmp_path, [])
    assert len(logging.getLogger().handlers) == before + 2
    assert logging.getLogger("apscheduler").level == logging.WARNING
