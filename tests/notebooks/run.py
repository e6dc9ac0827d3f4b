"""Executing a notebook the way the tests do: a fresh kernel (this interpreter's ipykernel) started in a
temporary working directory, with a fresh SQLite database named by `TRADEGRAPH_DATABASE_URL`."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def execute(name: str, workdir: Path, cell_timeout_s: int) -> nbformat.NotebookNode:
    """Run `notebooks/<name>` top to bottom in `workdir`; raises `CellExecutionError` on the first failure."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGRAPH_")}
    env["TRADEGRAPH_DATABASE_URL"] = f"sqlite:///{workdir / 'notebook-test.db'}"
    env.pop("MPLBACKEND", None)  # the kernel picks its inline backend, as in Jupyter
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=cell_timeout_s,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute(env=env)
    return nb


def images(nb: nbformat.NotebookNode) -> int:
    """Number of PNG figures among the outputs."""
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))
