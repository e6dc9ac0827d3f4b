"""The run lifecycle (agent.runs.lifecycle): one id grammar; create, finish, fail on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from agent.db.models import Run
from agent.db.session import open_db
from agent.errors import ConfigError
from agent.runs import lifecycle as lc
from agent.runs.lifecycle import RUN_ID, RunKind, RunSpec, RunStatus


def spec(run_id: str, kind: RunKind = RunKind.BACKTEST, **fields: object) -> RunSpec:
    values: dict[str, object] = dict(
        id=run_id, kind=kind, strategy="sma_cross", symbols=["BTC/USDT"], timeframe="1h", params={"fast": 20},
        config={"fee": 0.001}, start_ts=1, end_ts=2,
    )  # fmt: skip
    values.update(fields)
    return RunSpec(**values)  # type: ignore[arg-type]


def rows(url: str) -> dict[str, Run]:
    engine, factory = open_db(url)
    try:
        with factory() as session:
            return {r.id: r for r in session.scalars(select(Run))}
    finally:
        engine.dispose()


# ---- ids --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(RunKind))
def test_fresh_ids_obey_the_grammar_and_name_their_kind(kind: RunKind) -> None:
    run_id = lc.new_run_id(kind, datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC))
    assert RUN_ID.match(run_id), run_id
    prefix, day, clock, tail = run_id.rsplit("-", 3)
    assert (prefix, day, clock) == (kind.prefix, "20261201", "093005") and len(tail) == 6
    if kind is RunKind.SWEEP:
        assert RUN_ID.match(lc.trial_run_id(run_id, 12345)), "a sweep of 10,000 trials or more still fits"


def test_fresh_ids_sort_by_creation_time_and_do_not_repeat() -> None:
    times = [datetime(2026, 1, d, h, tzinfo=UTC) for d in (1, 2) for h in (0, 13)]
    ids = [lc.new_run_id(RunKind.BACKTEST, t) for t in times]
    assert ids == sorted(ids)
    assert len({lc.new_run_id(RunKind.SWEEP, times[0]) for _ in range(200)}) == 200


def test_fresh_ids_use_utc_whatever_the_clock_zone() -> None:
    from datetime import timedelta, timezone

    local = datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    assert lc.new_run_id(RunKind.BACKTEST, local).startswith("bt-20251231-230000-")


def test_stable_ids_keep_the_daemon_format() -> None:
    """The daemon's ids must not change across versions: a restarted daemon continues its recorded run."""
    import hashlib
    import json

    key = {"strategy": "sma_cross", "feed": "replay", "window": [1, 2]}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    assert lc.stable_run_id("replay", "smacross", key) == f"replay-smacross-{digest}"
    assert lc.stable_run_id("replay", "smacross", dict(reversed(key.items()))) == f"replay-smacross-{digest}"
    assert lc.stable_run_id("replay", "smacross", key | {"window": [1, 3]}) != f"replay-smacross-{digest}"


def test_a_short_paper_name_is_its_own_id() -> None:
    assert lc.stable_run_id("paper", "sma_cross-1h") == "paper-sma_cross-1h"


@given(st.text(min_size=1, max_size=300))
def test_any_name_gives_a_valid_stable_id_that_tells_names_apart(name: str) -> None:
    run_id = lc.stable_run_id("paper", name)
    assert RUN_ID.match(run_id), run_id
    assert lc.stable_run_id("paper", name) == run_id
    if not RUN_ID.match(f"paper-{name}"):
        assert lc.stable_run_id("paper", name + "x") != run_id


def test_a_long_strategy_path_gives_a_valid_paper_id() -> None:
    name = "/home/trader/strategies/momentum_with_volume_filter.py:MomentumWithVolume-1h"
    run_id = lc.stable_run_id("paper", name)
    assert RUN_ID.match(run_id) and run_id.startswith("paper-homet") and len(run_id) == 32


@pytest.mark.parametrize("bad", ["", "no spaces!", "x" * 33, "a/b", "nul\x00"])
def test_invalid_ids_are_one_line_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid --run-id") as e:
        lc.check_run_id(bad, "--run-id")
    assert "\n" not in str(e.value)


# ---- writes -----------------------------------------------------------------------------------------------


def test_create_finish_fail(db_url: str) -> None:
    engine, factory = open_db(db_url)
    try:
        assert lc.create_run(factory, spec("bt-1", params={"x": math.nan}))
        assert lc.create_run(factory, spec("bt-2"))
        assert not lc.create_run(factory, spec("bt-1", strategy="other")), "an existing run is left as it is"
        lc.finish_run(factory, "bt-1", {"sharpe": math.nan, "total_return": 0.1, "pf": math.inf}, "r/x.html")
        lc.fail_run(factory, "bt-2", ValueError("boom\nsecond  line"))
        lc.fail_run(factory, "missing", "ignored: the run does not exist")
    finally:
        engine.dispose()
    got = rows(db_url)
    assert set(got) == {"bt-1", "bt-2"}
    one, two = got["bt-1"], got["bt-2"]
    assert (one.status, one.strategy, one.params, one.report_path) == (
        "done",
        "sma_cross",
        {"x": None},
        "r/x.html",
    )
    assert one.metrics == {"sharpe": None, "total_return": 0.1, "pf": None} and one.finished_at is not None
    assert (two.status, two.error) == (
        "failed",
        "ValueError: boom second line",
    ) and two.finished_at is not None
    assert RunStatus(one.status) is RunStatus.DONE and RunKind(one.kind) is RunKind.BACKTEST


def test_finish_without_metrics_keeps_them(db_url: str) -> None:
    engine, factory = open_db(db_url)
    try:
        lc.create_run(factory, spec("daemon-a", RunKind.DAEMON))
        lc.finish_run(factory, "daemon-a")
    finally:
        engine.dispose()
    run = rows(db_url)["daemon-a"]
    assert (run.status, run.kind, run.metrics, run.report_path) == ("done", "daemon", {}, None)


def test_record_done_writes_finished_trials_in_one_go(db_url: str) -> None:
    engine, factory = open_db(db_url)
    try:
        sweep = lc.new_run_id(RunKind.SWEEP)
        lc.record_done(factory, [
            (spec(lc.trial_run_id(sweep, i), RunKind.SWEEP, config={"rank": i}), {"sharpe": float(i)})
            for i in (1, 2)
        ])  # fmt: skip
    finally:
        engine.dispose()
    got = rows(db_url)
    assert sorted(got) == [f"{sweep}-0001", f"{sweep}-0002"]
    assert all(r.status == "done" and r.finished_at is not None and r.kind == "sweep" for r in got.values())
    assert got[f"{sweep}-0002"].metrics == {"sharpe": 2.0} and got[f"{sweep}-0002"].config == {"rank": 2}


def test_a_bad_id_or_kind_records_nothing(db_url: str) -> None:
    engine, factory = open_db(db_url)
    try:
        with pytest.raises(ConfigError, match="invalid run id"):
            lc.create_run(factory, spec("x" * 40))
        with pytest.raises(ValueError, match="not a valid RunKind"):
            lc.create_run(factory, spec("ok", kind="weekly"))  # type: ignore[arg-type]
    finally:
        engine.dispose()
    assert rows(db_url) == {}


def test_fail_run_stores_an_error_quoting_nul_and_lone_surrogates(db_url: str) -> None:
    """A NUL failed PostgreSQL's insert and a lone surrogate SQLite's: the failure itself was lost."""
    engine, factory = open_db(db_url)
    try:
        lc.create_run(factory, spec("bt-nul"))
        lc.fail_run(factory, "bt-nul", RuntimeError("model said \x00 then \ud800 " + "y" * 5000))
    finally:
        engine.dispose()
    error = rows(db_url)["bt-nul"].error
    assert error is not None and error.startswith("RuntimeError: model said \ufffd then \ufffd y")
    assert len(error) == lc.MAX_ERROR and error.endswith("...")


@pytest.mark.parametrize(
    ("error", "stored"),
    [(None, "failed"), ("", "failed"), (KeyboardInterrupt(), "KeyboardInterrupt"), ("a\r\nb\tc", "a b c")],
)
def test_error_line(error: str | BaseException | None, stored: str) -> None:
    assert lc.error_line(error) == stored


def test_json_safe_makes_plain_data() -> None:
    import numpy as np

    assert lc.json_safe({"a": np.float64(1.5), "b": [np.int64(2), math.nan], "c": (1, -math.inf)}) == {
        "a": 1.5,
        "b": [2, None],
        "c": [1, None],
    }


def test_a_run_error_never_stores_credentials_from_a_url() -> None:
    error = ConnectionError("cannot reach http://alice:s3cret@gpu-host:8000/v1/models")
    line = lc.error_line(error)
    assert "s3cret" not in line and "gpu-host:8000" in line
