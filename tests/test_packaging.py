"""Packaging: a wheel of tradegraph carries the bundled sample, and an installed tradegraph used outside the
checkout finds it through the same fallback `tradegraph data list`, backtests and `--replay` use
(`agent.market.store.sample_dirs`).

The wheel is built from a copy of what the build reads (pyproject.toml, README.md, agent/, strategies/ and,
from data/, only README.md and binance/), so the checkout's downloads and databases are never read and no
`build/` folder lands in it. Building needs setuptools >= 77 in the environment (the `dev` extra).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from agent.config import PROJECT_ROOT

SAMPLE = PROJECT_ROOT / "data" / "binance"
INSTALLED_SAMPLE = "agent/market/sample/"
"""Where the wheel puts the checkout's `data/README.md` and `data/binance/`."""


def _pip(*args: str, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PIP_NO_INDEX": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _sources(dest: Path) -> Path:
    """A copy of the build's inputs (see the module docstring)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT_ROOT / name, dest / name)
    for name in ("agent", "strategies"):
        shutil.copytree(PROJECT_ROOT / name, dest / name, ignore=skip)
    (dest / "data").mkdir()
    shutil.copy2(PROJECT_ROOT / "data" / "README.md", dest / "data" / "README.md")
    shutil.copytree(SAMPLE, dest / "data" / "binance")
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of the current sources."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(_sources(src)), cwd=root)
    (built,) = (root / "dist").glob("tradegraph-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_carries_the_bundled_sample_its_attribution_and_every_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sample = sorted(p.name for p in SAMPLE.glob("*.feather"))
    assert len(sample) >= 8
    assert {f"{INSTALLED_SAMPLE}binance/{name}" for name in sample} <= names
    assert f"{INSTALLED_SAMPLE}README.md" in names, "the provenance and license travel with the data"
    packaged = sorted(n for n in names if n.startswith(INSTALLED_SAMPLE))
    assert len(packaged) == len(sample) + 1, f"only the sample and its README: {packaged}"
    packages = {
        str(p.relative_to(PROJECT_ROOT))
        for top in ("agent", "strategies")
        for p in (PROJECT_ROOT / top).rglob("__init__.py")
    }
    assert packages <= names, f"packages missing from pyproject's list: {sorted(packages - names)}"
    assert "agent/db/migrations/env.py" in names and "agent/db/migrations/script.py.mako" in names


@pytest.mark.slow
def test_an_installed_tradegraph_lists_and_loads_the_bundled_sample_outside_the_checkout(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    _pip("install", "--no-deps", "--target", str(site), str(wheel), cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = f"""
import json, sys
sys.path.insert(0, {str(site)!r})
from agent.config import load_settings
from agent.market import store
data_dir = load_settings().data_dir  # the working folder's data/, as every command uses it
files = store.CandleStore(data_dir).files()
frame = store.load_candles("BTC/USDT", "1h", data_dir, start="2025-09-01", end="2025-09-02")
print(json.dumps({{
    "module": store.__file__,
    "dirs": [str(d) for d in store.sample_dirs(data_dir)],
    "files": [[f.source, f.symbol, f.timeframe, str(f.path)] for f in files],
    "rows": len(frame),
}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    installed = site / "agent" / "market" / "sample" / "binance"
    assert Path(out["module"]).is_relative_to(site), "the installed copy is imported, not the checkout"
    assert out["dirs"] == [str(elsewhere / "data" / "binance"), str(installed)]
    listed = {(symbol, timeframe): Path(path) for source, symbol, timeframe, path in out["files"]}
    assert all(source == "bundled" for source, *_ in out["files"])
    assert sorted(p.name for p in listed.values()) == sorted(p.name for p in SAMPLE.glob("*.feather"))
    assert all(p.parent == installed for p in listed.values())
    assert ("BTC/USDT", "1h") in listed and out["rows"] == 24
