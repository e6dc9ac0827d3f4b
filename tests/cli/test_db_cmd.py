"""`tradegraph db upgrade|downgrade` on the configured database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from agent.cli.main import app
from agent.db.session import make_engine


def test_db_upgrade_creates_schema_in_configured_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'x.db'}"
    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", url)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    assert "runs" in inspect(engine).get_table_names()
    engine.dispose()
    result = CliRunner().invoke(app, ["db", "downgrade", "base"])
    assert result.exit_code == 0, result.output
    engine = make_engine(url)
    assert "runs" not in inspect(engine).get_table_names()
    engine.dispose()


def test_db_upgrade_default_url_lives_in_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRADEGRAPH_DATABASE_URL")  # set by the autouse fixture; here we test the default
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(tmp_path / "d"))
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "tradegraph.db").exists()
