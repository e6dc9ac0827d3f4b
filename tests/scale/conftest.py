"""A local Ray instance (2 CPUs) for the scale-out tests, started once; the tests skip with the reason when
the `ray` extra is not installed, except in CI (`CI` set), which installs it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the Ray tests cannot run in CI: the ray extra is missing (pip install -e '.[ray]')")
        pytest.skip("the ray extra is not installed (pip install -e '.[ray]')")
    root = str(Path(__file__).resolve().parents[2])  # workers import `tests` (tasks defined here) too
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": root}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()
