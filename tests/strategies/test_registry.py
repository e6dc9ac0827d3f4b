"""Loading strategies by name, from a user's file, or from a module; parameter parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import StrategyError
from strategies import build_strategy, parse_params, strategy_class
from strategies.crossover import SmaCross

USER_STRATEGY = """
import numpy as np
from pydantic import Field
from strategies.base import Strategy, StrategyParams


class Params(StrategyParams):
    level: float = Field(100.0, gt=0)


class AboveLevel(Strategy):
    name = "above_level"
    Params = Params

    def signal(self, candles):
        return (candles["close"].to_numpy() > self.params.level).astype(float)
"""


def test_builtin_by_name() -> None:
    assert strategy_class("sma_cross") is SmaCross


def test_user_file_with_and_without_class_name(tmp_path: Path) -> None:
    path = tmp_path / "my_strategy.py"
    path.write_text(USER_STRATEGY)
    cls = strategy_class(f"{path}:AboveLevel")
    assert cls.name == "above_level"
    assert strategy_class(str(path)) is cls
    assert build_strategy(f"{path}:AboveLevel", {"level": "5"}).params.level == 5.0


def test_module_spec() -> None:
    assert strategy_class("strategies.crossover:SmaCross") is SmaCross


@pytest.mark.parametrize(
    ("spec", "content", "message"),
    [
        ("nope", None, "unknown strategy 'nope'; built-ins: buy_and_hold"),
        ("missing.py:X", None, "strategy file missing.py does not exist"),
        ("bad.py:X", "def (:\n", "cannot load strategy file bad.py: SyntaxError"),
        ("empty.py:X", "x = 1\n", "empty.py has no Strategy subclass named 'X'"),
        ("empty.py", "x = 1\n", "empty.py defines 0 Strategy classes"),
        ("no_such_module_xyz:X", None, "cannot import strategy module 'no_such_module_xyz'"),
    ],
)
def test_unresolvable_specs_raise_one_line(
    tmp_path: Path, spec: str, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / spec.split(":")[0]).write_text(content)
    with pytest.raises(StrategyError, match=message) as info:
        strategy_class(spec)
    assert "\n" not in str(info.value)


def test_parse_params() -> None:
    assert parse_params(["fast=20", " slow = 50 "]) == {"fast": "20", "slow": "50"}
    for bad in (["fast"], ["=3"], ["fast="]):
        with pytest.raises(StrategyError, match="use NAME=VALUE"):
            parse_params(bad)
    with pytest.raises(StrategyError, match="given twice"):
        parse_params(["a=1", "a=2"])
