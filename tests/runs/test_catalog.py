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


def test_a_sweep_is_one_entry_with_its_best_trial_and_its_trial_count(db_url: str) -> None:
    engine, factory = open_db(db_url)
    try:
        early = lc.new_run_id(RunKind.BACKTEST, datetime(2026, 1, 1, tzinfo=UTC))
        lc.create_run(factory, RunSpec(early, RunKind.BACKTEST, "sma_cross", ["BTC/USDT"], "1h"))
        sweeps = [lc.new_run_id(RunKind.SWEEP, datetime(2026, 1, d, tzinfo=UTC)) for d in (2, 3)]
        for sweep, n in zip(sweeps, (12, 3), strict=True):
            trials = [RunSpec(lc.trial_run_id(sweep, i), RunKind.SWEEP, "sma_cross", ["BTC/USDT"], "1h")
                      for i in range(1, n + 1)]  # fmt: skip
            lc.record_done(factory, [(t, {"strategy": {"sharpe": 1.0 / i}}) for i, t in enumerate(trials, 1)])
        entries = catalog.list_entries(factory, limit=3)
        assert len(entries) == 3, "a sweep of 12 trials takes one row"
        groups = [e for e in entries if isinstance(e, catalog.SweepGroup)]
        assert {(g.sweep_id, g.trials, g.best.id) for g in groups} == {
            (sweeps[0], 12, f"{sweeps[0]}-0001"),
            (sweeps[1], 3, f"{sweeps[1]}-0001"),
        }
        assert [e.id for e in entries if not isinstance(e, catalog.SweepGroup)] == [early]
        assert len(catalog.list_entries(factory, kind="sweep")) == 2
        assert [getattr(e, "id", None) for e in catalog.list_entries(factory, kind="backtest")] == [early]
        trials = catalog.sweep_trials(factory, sweeps[0])
        assert [t.id for t in trials] == [lc.trial_run_id(sweeps[0], i) for i in range(1, 13)]
        assert lc.sweep_of(trials[-1].id) == sweeps[0]
        with pytest.raises(ConfigError, match="no sweep with id 'sw-nope'"):
            catalog.sweep_trials(factory, "sw-nope")
    finally:
        engine.dispose()
