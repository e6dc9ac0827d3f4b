"""What a new user types first: `--version`, `strategies`, and a mistyped command or strategy name."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import main as cli
from agent.cli.main import app
from strategies.base import StrategyParams
from strategies.registry import BUILTINS
from tests.daemon.helpers import data_dir


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data folder over the bundled candles; 120 columns."""
    folder = data_dir(tmp_path)
    monkeypatch.setenv("TRADEGRAPH_DATA_DIR", str(folder))
    monkeypatch.setenv("TRADEGRAPH_DATABASE_URL", f"sqlite:///{folder / 'tradegraph.db'}")
    monkeypatch.setenv("TRADEGRAPH_STRATEGY", "sma_cross")
    monkeypatch.setenv("COLUMNS", "120")
    return folder


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`tradegraph ARGS` through `main()` (errors as printed to a user): exit code and stderr."""
    monkeypatch.setattr(sys, "argv", ["tradegraph", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return int(done.value.code or 0), capsys.readouterr().err


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"tradegraph {version('tradegraph')}"


def test_strategies_lists_every_builtin_with_defaults_ranges_and_grids(env: Path) -> None:
    result = CliRunner().invoke(app, ["strategies"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 120
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines() if "│" in line]
    for name, cls in BUILTINS.items():
        assert name in out
        grid = cls.default_grid()
        for key, field in cls.Params.model_fields.items():
            if key in StrategyParams.model_fields:
                continue
            matching = [r for r in rows if len(r) >= 5 and r[1] == key and r[2] == f"{field.default:g}"]
            assert matching, (name, key, out)
            row = matching[0]
            if key in grid:
                start, stop, step = grid[key]
                assert f"{start:g}:{stop:g}:{step:g}" in row[4]
    assert "sma_cross" in out and "[2, 1000]" in out  # fast: ge=2, le=1000
    for key in StrategyParams.model_fields:  # the exit plan, listed once
        assert out.count(key) == 1, key
    assert "llm" in out and "hybrid" in out


def test_a_mistyped_command_gets_a_suggestion() -> None:
    result = CliRunner().invoke(app, ["statsu"])
    assert result.exit_code == 2
    assert "No such command 'statsu'. Did you mean 'status'" in result.output


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (["backtest", "--strategy", "sma_cros", "--symbol", "BTC/USDT"], "sma_cross"),
        (["sweep", "--strategy", "smacross", "--grid", "fast=5,10"], "sma_cross"),
        (["check-lookahead", "--strategy", "rsi_revrsion"], "rsi_reversion"),
        (["run", "--replay", "--strategy", "macd_"], "macd"),
        (["run", "--replay", "--strategy", "lmm"], "llm"),
        (["tick", "--strategy", "hybird"], "hybrid"),
    ],
)
def test_a_mistyped_strategy_gets_a_suggestion_in_one_line_before_anything_is_written(
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    suggestion: str,
) -> None:
    code, err = _main(monkeypatch, capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    assert f"(did you mean {suggestion!r}?)" in lines[0] and lines[0].startswith("error: unknown strategy")
    assert not (env / "tradegraph.db").exists() and not (env / "store").exists()


def test_a_strategy_name_far_from_any_gets_the_list_without_a_guess(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _main(monkeypatch, capsys, "backtest", "--strategy", "zzzz")
    assert code == 1 and "did you mean" not in err and "built-ins: buy_and_hold, sma_cross" in err
