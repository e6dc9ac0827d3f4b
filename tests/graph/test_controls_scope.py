"""The operator's controls in the database (kill switch, pause) apply to live runs only: a backtest's ticks
do not even read them (one query per tick saved), while a daemon's ticks read them at every tick."""

from __future__ import annotations

from pathlib import Path

import pytest

import agent.risk.breakers as breakers
from agent.config import load_settings
from agent.db.controls import read_controls
from agent.graph.runner import open_runner, replay_rules
from tests.graph.helpers import short_source


def _ticks(db_url: str, kind: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run 5 ticks of a rule strategy as a `kind` run and return how often the controls were read."""
    from agent.graph.factory import rule_strategy

    calls = 0

    def counting(factory):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return read_controls(factory)

    monkeypatch.setattr(breakers, "read_controls", counting)
    settings = load_settings(database_url=db_url, symbols=["BTC/USDT", "ETH/USDT"])
    source = short_source(settings, days=10)
    times = source.history("BTC/USDT", source.last_ts("BTC/USDT")).index[-5:]
    with open_runner(
        settings,
        run_id=f"{kind}-run",
        kind=kind,
        strategy="sma_cross",
        source=source,
        rules=replay_rules(settings, settings.symbols),
        rule=rule_strategy(settings, "sma_cross", {"fast": 5, "slow": 20}),
        checkpoint=False,
    ) as runner:
        for ts in times:
            assert runner.tick(int(ts.value // 1_000_000)).status == "done"
    return calls


def test_a_backtest_does_not_read_the_operators_controls(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert _ticks(sqlite_url, "agent_backtest", monkeypatch) == 0


def test_a_daemon_reads_them_at_every_tick(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert _ticks(sqlite_url, "daemon", monkeypatch) == 5
