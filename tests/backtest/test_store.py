"""Runs in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import pytest

from agent.backtest import store
from agent.db.session import open_db
from agent.errors import ConfigError


def test_run_lifecycle_list_and_fetch(db_url: str) -> None:
    engine, factory = open_db(db_url)
    try:
        base = dict(
            kind="backtest",
            strategy="sma_cross",
            params={"fast": 20},
            symbols=["BTC/USDT"],
            timeframe="1h",
            start_ts=1,
            end_ts=2,
            config={"fee": 0.001},
        )
        store.start_runs(factory, [dict(base, id="bt-1"), dict(base, id="bt-2")])
        store.finish_run(
            factory, "bt-1", {"sharpe": math.nan, "total_return": 0.1, "pf": math.inf}, "r/x.html"
        )
        store.fail_run(factory, "bt-2", "ValueError: boom\nsecond line")
        runs = {r.id: r for r in store.list_runs(factory)}
        assert runs["bt-1"].status == "done" and runs["bt-1"].metrics == {
            "sharpe": None,
            "total_return": 0.1,
            "pf": None,
        }
        assert runs["bt-1"].report_path == "r/x.html" and runs["bt-1"].finished_at is not None
        assert runs["bt-2"].status == "failed" and runs["bt-2"].error == "ValueError: boom"
        assert [r.id for r in store.get_runs(factory, ["bt-2", "bt-1"])] == ["bt-2", "bt-1"]
        assert store.list_runs(factory, kind="sweep") == []
        with pytest.raises(ConfigError, match="no run with id 'nope'"):
            store.get_runs(factory, ["bt-1", "nope"])
    finally:
        engine.dispose()


def test_run_ids_sort_by_time_and_fit_the_column() -> None:
    a, b = store.new_run_id("backtest"), store.new_run_id("sweep")
    assert a.startswith("bt-") and b.startswith("sw-") and len(a) <= 32 and len(b) + 5 <= 32


def test_json_safe_makes_plain_data() -> None:
    import numpy as np

    assert store.json_safe({"a": np.float64(1.5), "b": [np.int64(2), math.nan], "c": (1, -math.inf)}) == {
        "a": 1.5,
        "b": [2, None],
        "c": [1, None],
    }
