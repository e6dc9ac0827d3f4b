"""notebooks/04_analytics.ipynb runs top to bottom in a fresh kernel, like the other notebooks: three
questions answered by `tg.ask` (a scripted model on the vLLM emulator), each checked in the notebook against
the same figure computed with the notebook API."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notebooks.run import execute, images


@pytest.mark.timeout(300)
def test_04_analytics(tmp_path: Path) -> None:
    nb = execute("04_analytics.ipynb", tmp_path, cell_timeout_s=180)
    assert images(nb) >= 3, "correlation by quarter, drawdown, equity with two fees"
    outputs = "".join(str(o) for cell in nb.cells for o in cell.get("outputs", []))
    assert "[#1]" in outputs and "[#2]" in outputs
    assert list((tmp_path / "data" / "ask").glob("*.json")), "the traces are stored"
