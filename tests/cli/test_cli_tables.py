"""Tables fit a 120-column terminal without cutting a cell: no `strate…`, no `BTC/US…`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner, Result

from agent.cli.main import app
from tests.daemon.helpers import data_dir

WIDTH = 120


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], list[str]]:
    """A database with two-symbol backtests of the longest-named strategies and a sweep; their run ids."""
    folder = data_dir(tmp_path_factory.mktemp("tables"))
    env = {
        "TRADEGRAPH_DATA_DIR": str(folder),
        "TRADEGRAPH_DATABASE_URL": f"sqlite:///{folder / 'tradegraph.db'}",
        "COLUMNS": str(WIDTH),
    }
    window = ["--start", "2025-08-01", "--end", "2025-09-01", "--no-report"]
    ids = []
    for strategy in ("bollinger_reversion", "donchian_breakout", "rsi_reversion"):
        out = _ok(["backtest", "-s", strategy, "--symbols", "BTC/USDT,ETH/USDT", *window], env).output
        ids.append(out.split("run id: ")[1].split()[0])
    sweep = ["sweep", "-s", "sma_cross", "-g", "fast=5,10", "-g", "slow=20,30", "--workers", "1"]
    _ok([*sweep, "--symbol", "BTC/USDT", "--start", "2025-08-01", "--end", "2025-09-01"], env)
    return env, ids


def _ok(args: list[str], env: dict[str, str]) -> Result:
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    return result


def _fits(out: str) -> None:
    assert "…" not in out, out
    too_wide = [line for line in out.splitlines() if len(line.rstrip()) > WIDTH]
    assert not too_wide, too_wide


def test_runs_list_fits_120_columns_with_every_name_whole(runs: tuple[dict[str, str], list[str]]) -> None:
    env, ids = runs
    out = _ok(["runs", "list"], env).output
    _fits(out)
    for name in (
        "bollinger_reversion",
        "donchian_breakout",
        "rsi_reversion",
        "BTC/USDT",
        "ETH/USDT",
        "backtest",
    ):
        assert name in out, name
    assert all(run_id in out for run_id in ids)
    assert "sweep: 4" in out


def test_runs_compare_of_four_runs_fits_120_columns(runs: tuple[dict[str, str], list[str]]) -> None:
    env, ids = runs
    trial = _ok(["runs", "list"], env).output.split("sw-")[1].split()[0]
    out = _ok(["runs", "compare", *ids, f"sw-{trial}-0001"], env).output
    _fits(out)
    assert "bollinger_reversion" in out and "2025-08-01 →" in out


def test_strategies_and_backtest_summary_fit_120_columns(runs: tuple[dict[str, str], list[str]]) -> None:
    env, _ = runs
    _fits(_ok(["strategies"], env).output)
    out = _ok(["runs", "show", runs[1][0]], env).output
    _fits(out)
