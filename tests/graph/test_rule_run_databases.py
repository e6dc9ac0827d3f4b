"""A rule strategy through the whole graph gives the same ledger on SQLite and PostgreSQL (checkpoints
included), and the graph skips the model entirely when the strategy does not use it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_settings
from agent.db.session import open_db
from agent.graph.backtest import run_agent_backtest
from tests.graph.helpers import assert_ledger_identities, ledger, short_source


def _run(db_url: str, tmp_path: Path) -> dict:
    settings = load_settings(database_url=db_url, symbols=["BTC/USDT", "ETH/USDT"])
    run = run_agent_backtest(
        settings,
        strategy="sma_cross",
        params={"fast": 5, "slow": 20},
        start=None,
        end=None,
        last_bars=120,
        reports_dir=tmp_path,
        show_progress=False,
        run_id="rule-run",
        source=short_source(settings, days=30),
    )
    assert run.metrics["strategy"]["llm_calls"] == 0
    engine, factory = open_db(db_url)
    try:
        return ledger(factory, "rule-run")
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_same_ledger_on_sqlite_and_postgres(sqlite_url: str, pg_url: str, tmp_path: Path) -> None:
    lite = _run(sqlite_url, tmp_path / "a")
    pg = _run(pg_url, tmp_path / "b")
    assert len(lite["fills"]) > 0
    assert_ledger_identities(lite, 10_000.0)
    for key in lite:
        assert lite[key].reset_index(drop=True).equals(pg[key].reset_index(drop=True)), key


def test_unreachable_live_exchange_is_one_line_error_after_retries() -> None:
    import socket

    from agent.errors import TemporaryExchangeError
    from agent.graph.factory import trading_rules

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        settings = load_settings(
            exchange={
                "id": "binance",
                "api_url": f"http://127.0.0.1:{port}",
                "max_retries": 1,
                "backoff_base_s": 0.0,
                "backoff_max_s": 0.0,
            }
        )
        with pytest.raises(TemporaryExchangeError) as e:
            trading_rules(settings)
    assert "load_markets" in str(e.value) and "\n" not in str(e.value)
