"""Every mode records its run through agent.runs.lifecycle: ids that fit, failures that are stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from agent.config import Settings
from agent.db.models import Run
from agent.db.session import open_db
from agent.runs.lifecycle import RUN_ID

HOSTILE = "the model said \x00 and \ud800"
STORED = "the model said \ufffd and \ufffd"


def runs(url: str) -> list[Run]:
    engine, factory = open_db(url)
    try:
        with factory() as session:
            return list(session.scalars(select(Run)))
    finally:
        engine.dispose()


def test_a_failed_backtest_raises_its_own_error_and_records_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.backtest import service

    def boom(*args: Any) -> Any:
        raise RuntimeError(HOSTILE)

    monkeypatch.setattr(service, "simulate_prepared", boom)
    request = service.BacktestRequest("sma_cross", symbols=["BTC/USDT"], timeframe="1h",
                                      start="2025-09-01", end="2025-09-10")  # fmt: skip
    with pytest.raises(RuntimeError, match="the model said"):
        service.run_request(request, Settings(database_url=db_url), None)
    (run,) = runs(db_url)
    assert (run.kind, run.status, run.error) == ("backtest", "failed", f"RuntimeError: {STORED}")
    assert RUN_ID.match(run.id) and run.id.startswith("bt-")


def test_a_failed_agent_backtest_raises_its_own_error_and_records_it(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from agent.graph import backtest

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(HOSTILE)

    monkeypatch.setattr(backtest, "drive", boom)
    settings = Settings(database_url=db_url, symbols=["BTC/USDT"], timeframe="1h")
    with pytest.raises(RuntimeError, match="the model said"):
        backtest.run_agent_backtest(settings, strategy="sma_cross", start="2025-09-10", end="2025-09-11",
                                    reports_dir=tmp_path, show_progress=False)  # fmt: skip
    (run,) = runs(db_url)
    assert (run.kind, run.status, run.error) == ("agent_backtest", "failed", f"RuntimeError: {STORED}")
    assert RUN_ID.match(run.id) and run.id.startswith("agent-")


@pytest.mark.postgres
def test_tick_with_a_strategy_file_records_a_paper_run_id_that_fits(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`paper-<strategy>-<timeframe>` overflowed the 32-character id column for a strategy given by file."""
    from typer.testing import CliRunner

    from agent.cli.main import app

    (tmp_path / "momentum_with_volume_filter_v2.py").write_text(
        "from strategies.crossover import SmaCross\n\n\nclass MomentumWithVolume(SmaCross):\n"
        "    name = 'momentum_with_volume'\n"
    )
    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", pg_url)
    spec = "momentum_with_volume_filter_v2.py:MomentumWithVolume"
    args = ["tick", "--strategy", spec, "--at", "2025-09-19 20:00"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "already_done" in again.output, "the same tick advances the same run"
    (run,) = runs(pg_url)
    assert (
        RUN_ID.match(run.id)
        and run.id.startswith("paper-momentum_with")
        and (run.kind, run.strategy)
        == (
            "paper",
            spec,
        )
    )
