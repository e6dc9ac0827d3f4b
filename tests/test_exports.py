"""`agent.__all__` is the public surface: complete, importable, and lazy, so `import agent` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import agent
import agent.notebook


def test_all_names_the_whole_notebook_api() -> None:
    assert set(agent.notebook.__all__) <= set(agent.__all__)
    assert {"Settings", "load_settings", "TradegraphError", "__version__"} <= set(agent.__all__)
    assert len(agent.__all__) == len(set(agent.__all__))


@pytest.mark.parametrize("name", agent.__all__)
def test_every_exported_name_is_importable(name: str) -> None:
    value = getattr(agent, name)
    assert value is not None
    assert name in dir(agent)
    if name in agent.notebook.__all__:
        assert value is getattr(agent.notebook, name), "re-exported, not copied"
        assert (value.__doc__ or "").strip(), f"{name} has a docstring"


def test_notebook_functions_have_examples() -> None:
    functions = [n for n in agent.notebook.__all__ if n[0].islower()]
    assert functions
    for name in functions:
        assert "Example:" in (getattr(agent, name).__doc__ or ""), f"{name}: docstring without an example"


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'run_backtests'"):
        agent.run_backtests  # noqa: B018


def test_import_agent_loads_no_heavy_module() -> None:
    code = (
        "import sys, agent\n"
        "names = ('pandas', 'numpy', 'numba', 'langgraph', 'sqlalchemy', 'ccxt', 'agent.notebook')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import agent loaded {out.stdout.strip()}"
