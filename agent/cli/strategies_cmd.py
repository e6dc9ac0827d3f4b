"""`tradegraph strategies`: the built-in strategies and their parameters; and the strategy-name check the
other commands run first ("did you mean ...?").

Contracts:
- The listing is read from the strategies themselves (`strategies.registry.BUILTINS`, each class's pydantic
  `Params`): name, the docstring's first line, and per parameter its type, default, allowed range (from the
  field's `ge`/`gt`/`le`/`lt`), default sweep grid and description. The exit-plan parameters every strategy
  shares are listed once. Nothing is hard-coded here, so a new built-in shows up by itself.
- `check_strategy(spec)` accepts a built-in name, `llm`, `hybrid` and anything that looks like a file or
  module spec (`path.py`, `module:Class`; those are checked where they are loaded). Any other name raises
  `StrategyError` (`unknown strategy 'sma_cros' (did you mean 'sma_cross'?); built-ins: ...`), printed as
  one line with exit 1 by `agent.cli.main`, before anything is read or written.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo
    from rich.table import Table

    from strategies.base import Strategy

MODEL_MODES = ("llm", "hybrid")
"""Strategy names that ask the model (`agent.graph.mode.StrategyKind`)."""


def register(app: typer.Typer) -> None:
    """Add `strategies`."""
    app.command("strategies")(strategies)


def strategies() -> None:
    """List the built-in strategies with their parameters: default, allowed range and default sweep grid."""
    from rich.console import Console

    from strategies.base import StrategyParams
    from strategies.registry import BUILTINS

    console = Console()
    shared = set(StrategyParams.model_fields)
    console.print(_table("built-in strategies (--strategy NAME --param NAME=VALUE)", BUILTINS, shared))
    console.print(_shared_table(StrategyParams.model_fields))
    console.print(
        "also: --strategy llm (the model decides), --strategy hybrid (a rule proposes, the model confirms), "
        "or --strategy path/to/file.py:ClassName"
    )


def check_strategy(spec: str) -> None:
    """Raise `StrategyError` with a suggestion when `spec` names no strategy (see the module contract)."""
    from agent.errors import StrategyError
    from strategies.registry import BUILTINS

    name = spec.strip()
    if name in BUILTINS or name in MODEL_MODES or ":" in name or name.endswith(".py"):
        return
    known = [*BUILTINS, *MODEL_MODES]
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise StrategyError(
        f"unknown strategy {name!r}{hint}; built-ins: {', '.join(BUILTINS)}; model: {', '.join(MODEL_MODES)} "
        "(or path/to/file.py:ClassName; see: tradegraph strategies)"
    )


def _table(title: str, builtins: dict[str, type[Strategy]], shared: set[str]) -> Table:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("strategy", no_wrap=True)
    table.add_column("parameter", no_wrap=True)
    table.add_column("default", justify="right", no_wrap=True)
    table.add_column("allowed", no_wrap=True)
    table.add_column("sweep grid", no_wrap=True)
    table.add_column("what it does", overflow="fold")
    for n, (name, cls) in enumerate(builtins.items()):
        if n:
            table.add_section()
        own = {k: f for k, f in cls.Params.model_fields.items() if k not in shared}
        grid = cls.default_grid()
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        if not own:
            table.add_row(name, "-", "", "", "", summary)
        for i, (key, field) in enumerate(own.items()):
            text = " ".join(t for t in (summary if i == 0 else "", field.description or "") if t)
            table.add_row(
                name if i == 0 else "", key, _value(field.default), _range(field), _grid(grid.get(key)), text
            )
    return table


def _shared_table(fields: dict[str, FieldInfo]) -> Table:
    from rich.table import Table

    table = Table(title="exit plan: parameters of every strategy")
    for col in ("parameter", "default", "allowed", "what it does"):
        table.add_column(col, no_wrap=col != "what it does", overflow="fold")
    for key, field in fields.items():
        table.add_row(key, _value(field.default), _range(field), field.description or "")
    return table


def _value(value: Any) -> str:
    return "off" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _range(field: FieldInfo) -> str:
    """`[2, 1000]`, `(0, 100]`: the bounds declared on the field (`ge`/`gt`/`le`/`lt`)."""
    low = high = None
    low_open = high_open = False
    for m in field.metadata:
        for attr, is_low, is_open in (("ge", True, False), ("gt", True, True), ("le", False, False)):
            if getattr(m, attr, None) is not None:
                if is_low:
                    low, low_open = getattr(m, attr), is_open
                else:
                    high, high_open = getattr(m, attr), is_open
        if getattr(m, "lt", None) is not None:
            high, high_open = m.lt, True
    if low is None and high is None:
        return "any"
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else _value(low)
    hi = "inf" if high is None else _value(high)
    return f"{left}{lo}, {hi}{right}"


def _grid(bounds: tuple[float, float, float] | None) -> str:
    if bounds is None:
        return "-"
    start, stop, step = bounds
    return f"{start:g}:{stop:g}:{step:g}"
