"""`tradegraph runs list | show | compare`: every run kind stores the same metric set, shown side by side."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from agent.cli.main import app
from agent.db.models import Run
from agent.db.session import SchemaError, open_db
from agent.runs.metrics import LABELS, METRIC_KEYS
from agent.testing.vllm_emulator import VLLMEmulator
from tests.daemon.helpers import (
    DATA_END,
    HOUR,
    SMA,
    data_dir,
    iso,
    ledger,
    replay_command,
    start_daemon,
    stop_daemon,
    subprocess_env,
    wait_for,
)

START, END = DATA_END - 72 * HOUR, DATA_END
"""Three days: long enough for the SMA 5/20 to trade, too short to annualise."""
SMA_ARGS = ["-p", f"fast={SMA['fast']}", "-p", f"slow={SMA['slow']}"]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The daemon tests' configuration (SMA on BTC/USDT 1h, bundled data, cooldown 1) for the CLI here too."""
    folder = data_dir(tmp_path)
    values = subprocess_env(folder, f"sqlite:///{folder / 'tradegraph.db'}")
    for key, value in values.items():
        if key.startswith("TRADEGRAPH_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("COLUMNS", "400")
    return values


def cli(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def runs(url: str) -> dict[str, Run]:
    engine, factory = open_db(url, migrate=False)
    try:
        with factory() as session:
            return {r.id: r for r in session.scalars(select(Run))}
    finally:
        engine.dispose()


def row(output: str, label: str) -> list[str]:
    """The cells after `label` in the table row that starts with it."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if cells and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in:\n{output}")


def test_a_rule_run_an_llm_run_and_a_daemon_replay_compare_on_one_metric_set(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = env["TRADEGRAPH_DATABASE_URL"]
    window = ["--symbol", "BTC/USDT", "--timeframe", "1h", "--start", iso(START), "--end", iso(END)]
    cli("backtest", "-s", "sma_cross", *SMA_ARGS, *window, "--no-report")
    replay = replay_command(
        "--speed", "3600000", "--start", iso(START), "--end", iso(END), "--run-id", "daemon-cmp"
    )
    daemon = subprocess.run(replay, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert daemon.returncode == 0, daemon.stderr[-3000:]
    with VLLMEmulator(latency_s=0.0) as emu:
        for key, value in {"PROFILE": "vllm", "BASE_URL": emu.base_url, "MODEL": "nemotron"}.items():
            monkeypatch.setenv(f"TRADEGRAPH_LLM__{key}", value)
        monkeypatch.setenv("TRADEGRAPH_LLM__CONTEXT_TOKENS", "1600")
        llm_window = [*window[:4], "--start", iso(END - 6 * HOUR), "--end", iso(END)]
        cli("backtest", "-s", "llm", *llm_window)
    recorded = runs(url)
    by_kind = {r.kind: r for r in recorded.values()}
    assert set(by_kind) == {"backtest", "daemon", "agent_backtest"}
    rule, agent, replay = by_kind["backtest"], by_kind["agent_backtest"], by_kind["daemon"]
    assert replay.id == "daemon-cmp" and replay.status == "done"
    for run in (rule, agent, replay):
        stored = run.metrics
        assert {"strategy", "buy_and_hold", "cash", "warnings"} <= set(stored), run.kind
        assert set(METRIC_KEYS) <= set(stored["strategy"]), run.kind
        assert set(stored["buy_and_hold"]) == set(stored["cash"]) == set(METRIC_KEYS), run.kind
        assert stored["strategy"]["cagr"] is None and "too short to annualise" in stored["warnings"][0]
    # the same rule over the same bars: the daemon's ledger and the engine agree, trades included
    for key in ("total_return", "max_drawdown", "trades", "win_rate", "fills", "fees_paid", "turnover"):
        assert replay.metrics["strategy"][key] == pytest.approx(rule.metrics["strategy"][key], rel=1e-9), key
    assert replay.metrics["strategy"]["trades"] > 0
    assert replay.metrics["buy_and_hold"]["total_return"] == rule.metrics["buy_and_hold"]["total_return"]
    assert agent.metrics["strategy"]["decisions"] == 6 and agent.metrics["strategy"]["llm_calls"] > 0

    shown = cli("runs", "compare", rule.id, agent.id, replay.id).output
    assert all(run.id in shown for run in (rule, agent, replay))
    for key in METRIC_KEYS:
        assert len(row(shown, LABELS[key][0])) == 3, key
    assert row(shown, "kind") == ["backtest", "agent_backtest", "daemon"]
    assert row(shown, "CAGR (annualised return)") == ["-"] * 3, "three days are not annualised"
    assert row(shown, "total return")[0] == row(shown, "total return")[2] != "-"
    assert all(cell.startswith("72 bars") or cell.startswith("6 bars") for cell in row(shown, "warnings"))
    assert row(shown, "abstentions")[0] == "0" and row(shown, "decisions")[0] == "-"
    show = cli("runs", "show", agent.id).output
    assert row(show, "llm calls") != ["-"] and "report" in show


def test_a_running_daemon_shows_its_figures_and_keeps_them_when_stopped(
    env: dict[str, str], tmp_path: Path
) -> None:
    url = env["TRADEGRAPH_DATABASE_URL"]
    log = tmp_path / "daemon.log"
    proc = start_daemon(Path(env["TRADEGRAPH_DATA_DIR"]), url, log, "--speed", str(3600 * 5), "--start",
                        iso(DATA_END - 2000 * HOUR), "--run-id", "daemon-live")  # fmt: skip
    try:

        def figures() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                run = runs(url).get("daemon-live")
            except SchemaError:  # the daemon is still migrating its new database
                return False
            return run is not None and (run.metrics or {}).get("strategy", {}).get("bars", 0) >= 3

        wait_for(figures, 120, "the daemon's first figures")
        shown = cli("runs", "show", "daemon-live").output
        assert row(shown, "status") == ["running"] and row(shown, "total return") != ["-"]
        assert row(shown, "buy & hold return") != ["-"]
        proc.terminate()
        proc.wait(timeout=60)
    finally:
        stop_daemon(proc)
    run = runs(url)["daemon-live"]
    assert run.status == "running", "a stopped daemon's run is resumed later, not done"
    assert run.metrics["strategy"]["bars"] == len(ledger(url, "daemon-live")["balances"]), "figures at stop"


def test_a_four_bar_backtest_prints_no_annualised_figure_and_warns(env: dict[str, str]) -> None:
    args = ["backtest", "-s", "sma_cross", "--symbol", "BTC/USDT", "--timeframe", "1h", "--no-report"]
    out = cli(*args, "--start", iso(DATA_END - 4 * HOUR), "--end", iso(DATA_END)).output
    assert "note: 4 bars (0.2 days) are too short to annualise" in " ".join(out.split())
    assert row(out, "CAGR")[0] == "-" and row(out, "Sharpe")[0] == "-" and row(out, "total return")[0] != "-"
    (run,) = runs(env["TRADEGRAPH_DATABASE_URL"]).values()
    shown = cli("runs", "compare", run.id).output
    assert row(shown, "CAGR (annualised return)") == ["-"] and row(shown, "volatility (ann.)") == ["-"]
    assert row(shown, "warnings")[0].startswith("4 bars (0.2 days) are too short to annualise")


@pytest.mark.parametrize("command", ["compare", "show"])
def test_an_unknown_run_id_is_one_line_and_exit_2(env: dict[str, str], command: str) -> None:
    cli(
        "backtest",
        "-s",
        "sma_cross",
        "--symbol",
        "BTC/USDT",
        "--start",
        iso(DATA_END - 48 * HOUR),
        "--no-report",
    )
    (run,) = runs(env["TRADEGRAPH_DATABASE_URL"]).values()
    result = CliRunner().invoke(app, ["runs", command, run.id, "bt-nope"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "error: no run with id 'bt-nope' (see: tradegraph runs list)\n"


def test_runs_list_shows_a_sweep_as_one_row_and_its_trials_on_demand(env: dict[str, str]) -> None:
    window = ["--symbol", "BTC/USDT", "--start", iso(DATA_END - 240 * HOUR), "--end", iso(DATA_END)]
    cli("backtest", "-s", "sma_cross", *window, "--no-report")
    cli("sweep", "-s", "sma_cross", "-g", "fast=5,10", "-g", "slow=20,30,40", *window, "--workers", "1")
    recorded = runs(env["TRADEGRAPH_DATABASE_URL"])
    trials = sorted(r.id for r in recorded.values() if r.kind == "sweep")
    sweep_id = trials[0].rsplit("-", 1)[0]
    assert len(trials) == 6 and all(set(METRIC_KEYS) <= set(recorded[t].metrics["strategy"]) for t in trials)
    assert recorded[trials[0]].metrics["buy_and_hold"]["total_return"] is not None
    listed = cli("runs", "list").output
    assert "2 most recent runs" in listed and sweep_id in listed and "sweep: 6 trials, best shown" in listed
    assert trials[1] not in listed
    only = cli("runs", "list", "--sweep", sweep_id).output
    assert "6 most recent runs" in only and all(t in only for t in trials)
    unknown = CliRunner().invoke(app, ["runs", "list", "--sweep", "sw-nope"])
    assert unknown.exit_code == 2 and unknown.stderr.startswith("error: no sweep with id 'sw-nope'")
    bad_kind = CliRunner().invoke(app, ["runs", "list", "--kind", "weekly"])
    assert bad_kind.exit_code == 2
