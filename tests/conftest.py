"""Shared fixtures: isolated databases (SQLite file, fresh PostgreSQL database) and settings.

PostgreSQL tests use the server at 127.0.0.1:5432 (user postgres, trust auth). Each test gets a database of
its own, created from `test` and dropped afterwards. Set TRADEGRAPH_TEST_PG_URL to point elsewhere. When
the server is unreachable the tests fail (CI must run them); set TRADEGRAPH_SKIP_PG=1 to skip them locally.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("TRADEGRAPH_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's tradegraph.toml or TRADEGRAPH_* variables, or writes the repo's db."""
    for key in list(os.environ):
        if key.startswith("TRADEGRAPH_") and key not in ("TRADEGRAPH_TEST_PG_URL", "TRADEGRAPH_SKIP_PG"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    # the default SQLite database lives in the data directory of the checkout: never write there in tests
    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", f"sqlite:///{tmp_path / 'tradegraph.db'}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of an empty SQLite database file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a brand-new PostgreSQL database, dropped after the test."""
    if os.environ.get("TRADEGRAPH_SKIP_PG") == "1":
        pytest.skip("TRADEGRAPH_SKIP_PG=1")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"tg_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))
