"""Every notebook runs top to bottom in a fresh kernel, in a temporary working directory with a fresh SQLite
database, and draws its figures. What the notebooks record lands in that database and that folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.notebooks.run import execute, images


def _runs(workdir: Path) -> dict[str, int]:
    engine = create_engine(f"sqlite:///{workdir / 'notebook-test.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT kind, count(*) FROM runs GROUP BY kind")).all()
    finally:
        engine.dispose()
    return {str(kind): int(n) for kind, n in rows}


def test_01_market_data(tmp_path: Path) -> None:
    nb = execute("01_market_data.ipynb", tmp_path, cell_timeout_s=120)
    assert images(nb) >= 6, "candles, returns, volatility, drawdowns, correlations, regimes"
    assert not (tmp_path / "notebook-test.db").exists(), "reading candles records nothing"


def test_02_backtests(tmp_path: Path) -> None:
    nb = execute("02_backtests.ipynb", tmp_path, cell_timeout_s=180)
    assert images(nb) >= 3, "equity curves, sweep heatmap, the leaky strategy's curve"
    outputs = "".join(str(o) for cell in nb.cells for o in cell.get("outputs", []))
    assert "dip_below_trend()" in outputs and "True" in outputs, "the look-ahead table flags the leak"
    runs = _runs(tmp_path)
    assert runs["backtest"] == 7 and runs["sweep"] == 9, runs  # 6 built-ins + the leaky one; a 3 x 3 grid


@pytest.mark.llamacpp
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_03_agent(tmp_path: Path) -> None:
    nb = execute("03_agent.ipynb", tmp_path, cell_timeout_s=300)
    assert images(nb) >= 2, "equity and calibration figures"
    runs = _runs(tmp_path)
    assert runs == {"notebook": 1, "agent_backtest": 1}, runs
    reports = list((tmp_path / "data" / "reports").glob("*/report.html"))
    assert len(reports) == 1, "the run report is written under the working directory's data/"
