"""Committed notebooks carry no outputs and no execution counts, so diffs show code and prose only."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.notebooks.run import NOTEBOOKS

PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_notebooks_are_there() -> None:
    names = ["01_market_data.ipynb", "02_backtests.ipynb", "03_agent.ipynb", "04_analytics.ipynb"]
    assert [p.name for p in PATHS] == names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_no_outputs_and_no_execution_counts(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{path}: cells {dirty} carry outputs or execution counts; clear them before committing"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    machine_dirs = tuple(f"/{name}/" for name in ("work", "tmp", "root"))
    assert not any(d in cell.source for cell in nb.cells for d in machine_dirs), "machine paths"
