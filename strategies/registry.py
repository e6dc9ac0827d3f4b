"""Find a strategy by name or load one from a user's file, and build it from raw parameter values.

Contracts:
- A spec is a built-in name (`sma_cross`), `path/to/file.py:ClassName`, `path/to/file.py` (the file's only
  `Strategy` subclass) or `package.module:ClassName`.
- Anything that cannot be resolved (unknown name, missing file, import error, not a `Strategy`) raises
  `StrategyError` with one line; so do unknown or invalid parameters.
- Raw parameter values may be strings (`--param fast=20`); pydantic converts them.
- A spec string is all a worker process needs to rebuild the class (sweeps pass specs, not classes).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from agent.errors import StrategyError
from strategies.base import Strategy
from strategies.breakout import DonchianBreakout
from strategies.buy_and_hold import BuyAndHold
from strategies.crossover import EmaCross, Macd, SmaCross
from strategies.reversion import BollingerReversion, RsiReversion

BUILTINS: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (BuyAndHold, SmaCross, EmaCross, Macd, RsiReversion, BollingerReversion, DonchianBreakout)
}


def strategy_class(spec: str) -> type[Strategy]:
    """The `Strategy` subclass a spec names."""
    spec = spec.strip()
    if spec in BUILTINS:
        return BUILTINS[spec]
    if ":" in spec or spec.endswith(".py"):
        return _load_external(spec)
    raise StrategyError(
        f"unknown strategy {spec!r}; built-ins: {', '.join(BUILTINS)} (or path/to/file.py:ClassName)"
    )


def build_strategy(spec: str, values: Mapping[str, Any] | None = None) -> Strategy:
    """An instance of the strategy `spec` with validated parameters."""
    cls = strategy_class(spec)
    return cls(cls.make_params(dict(values or {})))


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    """`["fast=20", "slow=50"]` -> `{"fast": "20", "slow": "50"}`; malformed or repeated keys raise."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise StrategyError(f"bad parameter {pair!r}; use NAME=VALUE, e.g. --param fast=20")
        if key in out:
            raise StrategyError(f"parameter {key!r} given twice")
        out[key] = value.strip()
    return out


def _load_external(spec: str) -> type[Strategy]:
    target, _, class_name = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if target.endswith(".py") or Path(target).exists():
        module = _import_file(Path(target))
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise StrategyError(f"cannot import strategy module {target!r}: {e}") from None
    if class_name:
        cls = getattr(module, class_name, None)
        if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
            raise StrategyError(f"{target} has no Strategy subclass named {class_name!r}")
    else:
        found = [
            c
            for c in vars(module).values()
            if inspect.isclass(c) and issubclass(c, Strategy) and c.__module__ == module.__name__
        ]
        if len(found) != 1:
            raise StrategyError(
                f"{target} defines {len(found)} Strategy classes; name one with {target}:Class"
            )
        cls = found[0]
    if inspect.isabstract(cls):
        raise StrategyError(f"{spec}: {cls.__name__} does not implement signal()")
    if not cls.name:
        cls.name = cls.__name__
    return cls


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise StrategyError(f"strategy file {path} does not exist")
    resolved = path.resolve()
    name = "tradegraph_user_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise StrategyError(f"cannot load strategy file {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - user code: any failure becomes one line
        del sys.modules[name]
        raise StrategyError(f"cannot load strategy file {path}: {type(e).__name__}: {e}") from None
    return module
