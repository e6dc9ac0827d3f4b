"""Migrations upgrade and downgrade cleanly, and the upgraded schema matches the models exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from agent.db.models import Base
from agent.db.session import downgrade, make_engine, upgrade

TABLES = {
    "runs",
    "decisions",
    "llm_calls",
    "orders",
    "fills",
    "balance_snapshots",
    "position_snapshots",
    "risk_events",
}


def test_upgrade_creates_every_table_and_matches_models(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
    finally:
        engine.dispose()


def test_downgrade_to_base_removes_everything_and_upgrade_again_works(db_url: str) -> None:
    upgrade(db_url)
    downgrade(db_url, "base")
    engine = make_engine(db_url)
    try:
        left = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert left == set()
    finally:
        engine.dispose()
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_sqlite_uses_wal_and_foreign_keys(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


# ---- migrations under a lock, only where writing, and a database from the future ---------------------------


def _head() -> str:
    from alembic.script import ScriptDirectory

    from agent.db.session import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def test_concurrent_upgrades_of_a_fresh_database_both_succeed(db_url: str) -> None:
    import threading

    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def migrate() -> None:
        barrier.wait()
        try:
            upgrade(db_url)
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=migrate) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [], f"a concurrent upgrade failed: {errors[0]!r}"
    assert _revision(db_url) == _head()


def _tables(url: str) -> set[str]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        from pathlib import Path

        if not Path(parsed.database or "").exists():
            return set()
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_read_only_commands_leave_a_fresh_database_unmigrated(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agent.cli.main import app

    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", db_url)
    runner = CliRunner()
    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0 and "no daemon has run on this database" in status.output, status.output
    listed = runner.invoke(app, ["runs", "list"])
    assert listed.exit_code == 0, listed.output
    for args in (["decisions"], ["portfolio"]):  # nothing to show: one line, exit 1
        shown = runner.invoke(app, args)
        assert shown.exit_code == 1 and "holds no run yet" in str(shown.exception), shown.output
    assert runner.invoke(app, ["config", "show"]).exit_code == 0
    assert _tables(db_url) == set(), "a read-only command migrated the database"


def test_a_database_newer_than_the_code_gives_one_line_naming_both_revisions(db_url: str) -> None:
    import os
    import subprocess
    import sys

    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    finally:
        engine.dispose()
    env = {**os.environ, "TRADEGRAPH_DATABASE_URL": db_url}
    for args in (["runs", "list"], ["db", "upgrade"]):
        proc = subprocess.run(
            [sys.executable, "-m", "agent.cli.main", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, (args, proc.stderr)
        assert lines[0].startswith("error: ") and "0999" in lines[0] and _head() in lines[0], lines[0]
    assert _revision(db_url) == "0999"


def _insert(conn: Connection, table: str, **values: object) -> None:
    names = ", ".join(values)
    conn.execute(text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + k for k in values)})"), values)


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def test_upgrading_a_populated_ledger_keeps_every_row_and_stores_each_prompt_once(db_url: str) -> None:
    """0002 → 0003 rebuilds tables on SQLite: no cascade may fire, and messages move to `llm_prompts`."""
    upgrade(db_url, "0002")
    messages = [{"role": "system", "content": "You trade."}, {"role": "user", "content": "bar 1"}]
    request = {
        "attempt": "first",
        "try": 1,
        "cacheable": True,
        "payload": {"model": "m", "messages": messages},
    }
    now = datetime.now(UTC)
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            _insert(
                conn,
                "runs",
                id="r",
                kind="paper",
                strategy="s",
                params="{}",
                symbols="[]",
                timeframe="1h",
                status="done",
                config="{}",
                metrics="{}",
                created_at=now,
            )
            for i in (1, 2):  # the same prompt sent twice
                _insert(
                    conn,
                    "llm_calls",
                    id=i,
                    run_id="r",
                    request_hash="h",
                    prompt_hash="p",
                    endpoint="e",
                    profile="vllm",
                    model="m",
                    request=json.dumps(request),
                    from_cache=False,
                    created_at=now,
                )
            _insert(
                conn,
                "decisions",
                id=1,
                run_id="r",
                symbol="BTC/USDT",
                bar_ts=0,
                source="llm",
                action="buy",
                abstained=False,
                llm_call_id=2,
                clamps="[]",
                created_at=now,
            )
            _insert(
                conn,
                "orders",
                id=1,
                run_id="r",
                client_order_id="c",
                decision_id=1,
                symbol="BTC/USDT",
                bar_ts=0,
                side="buy",
                type="market",
                amount=0.5,
                price=100.0,
                status="filled",
                created_at=now,
            )
            _insert(
                conn,
                "fills",
                order_id=1,
                run_id="r",
                symbol="BTC/USDT",
                bar_ts=0,
                side="buy",
                amount=0.5,
                price=100.0,
                fee=0.05,
                fee_currency="USDT",
                created_at=now,
            )
        upgrade(db_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM fills")).scalar() == 1
            assert conn.execute(text("SELECT decision_id FROM orders")).scalar() == 1
            assert conn.execute(text("SELECT llm_call_id FROM decisions")).scalar() == 2
            (stored,) = conn.execute(text("SELECT messages FROM llm_prompts")).scalars().all()
            assert _json(stored) == messages
            for req, digest in conn.execute(text("SELECT request, messages_hash FROM llm_calls")).all():
                assert _json(req) == {**request, "payload": {"model": "m"}} and digest
        downgrade(db_url, "0002")
        with engine.connect() as conn:
            assert [_json(r) for r in conn.execute(text("SELECT request FROM llm_calls")).scalars()] == [
                request
            ] * 2
            assert conn.execute(text("SELECT COUNT(*) FROM fills")).scalar() == 1
    finally:
        engine.dispose()


def test_db_current_names_both_revisions_and_migrates_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from agent.cli.main import app

    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", db_url)
    fresh = CliRunner().invoke(app, ["db", "current"])
    assert fresh.exit_code == 0 and f"schema revision none (this tradegraph: {_head()})" in fresh.output
    assert _tables(db_url) == set()
    upgrade(db_url, "0002")
    behind = CliRunner().invoke(app, ["db", "current"])
    assert f"schema revision 0002 (this tradegraph: {_head()})" in behind.output
    assert "tradegraph db upgrade" in behind.output and _revision(db_url) == "0002"
