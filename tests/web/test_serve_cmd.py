"""`tradegraph serve`: binds 127.0.0.1 by default, refuses another interface without a token, and serves
the app it builds on the configured database (uvicorn replaced by a recorder: no socket is opened)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from agent.cli.main import app
from agent.db.session import open_db


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """Calls of uvicorn.run, recorded; the database of the test environment migrated."""
    open_db(f"sqlite:///{tmp_path / 'tradegraph.db'}")[0].dispose()
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda application, **kw: calls.append({"app": application, **kw}))
    return calls


def test_serve_binds_the_loopback_interface_by_default(served: list[dict[str, Any]]) -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "9911"])
    assert result.exit_code == 0, result.output
    assert served[0]["host"] == "127.0.0.1" and served[0]["port"] == 9911
    assert "http://127.0.0.1:9911/" in result.output
    assert not served[0]["app"].state.web.guard.protect_reads


def test_another_interface_needs_a_token(
    served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert refused.exit_code == 1 and "give --token" in str(refused.exception) and served == []
    short = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--token", "short"])
    assert short.exit_code == 1 and "at least 8 characters" in str(short.exception)
    monkeypatch.setenv("TRADEGRAPH_WEB_TOKEN", "a-long-enough-token")
    ok = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert ok.exit_code == 0, ok.output
    guard = served[0]["app"].state.web.guard
    assert served[0]["host"] == "0.0.0.0" and guard.protect_reads and not guard.loopback_only
