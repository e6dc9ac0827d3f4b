"""Reading runs back (agent.runs.catalog), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.db.session import open_db
from agent.errors import ConfigError
from agent.runs import catalog
from agent.runs import lifecycle as lc
from agent.runs.lifecycle import RunKind, RunSpec


def test_list_newest_first_by_kind_and_fetch_in_the_order_given(db_url: str) -> None:
    engine, factory = open_db(db_url)
    try:
        ids = [lc.new_run_id(RunKind.BACKTEST, datetime(2026, 1, 1, h, tzinfo=UTC)) for h in (1, 2)]
        for run_id in ids:
            lc.create_run(factory, RunSpec(run_id, RunKind.BACKTEST, "sma_cross", ["BTC/USDT"], "1h"))
        lc.create_run(factory, RunSpec("paper-x-1h", RunKind.PAPER, "x", ["BTC/USDT"], "1h"))
        assert {r.id for r in catalog.list_runs(factory)} == {*ids, "paper-x-1h"}
        assert [r.id for r in catalog.list_runs(factory, kind="backtest")] == ids[::-1]
        assert catalog.list_runs(factory, kind="sweep") == []
        assert len(catalog.list_runs(factory, limit=1)) == 1
        assert [r.id for r in catalog.get_runs(factory, [ids[1], ids[0]])] == [ids[1], ids[0]]
        with pytest.raises(ConfigError, match="no run with id 'nope'"):
            catalog.get_runs(factory, [ids[0], "nope"])
    finally:
        engine.dispose()
