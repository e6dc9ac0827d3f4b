"""`compiled()`: a cached nopython kernel without numba's runtime; a kernel that allocates is refused."""

from __future__ import annotations

import numpy as np
import pytest
from numba.core.dispatcher import Dispatcher
from numba.core.errors import TypingError

from agent.execution.compiled import compiled


def _scaled_sum(values: np.ndarray, scale: float) -> float:
    total = 0.0
    for v in values:
        total += v * scale
    return total


def _fresh_array(n: int) -> float:
    return float(np.zeros(n).sum())


def test_a_kernel_that_allocates_nothing_compiles_and_runs() -> None:
    kernel = compiled()(_scaled_sum)
    assert isinstance(kernel, Dispatcher)
    assert kernel(np.array([1.0, 2.0, 3.0]), 2.0) == 12.0
    assert kernel.targetoptions.get("_nrt") is False


def test_a_kernel_that_allocates_is_refused_at_compile_time() -> None:
    kernel = compiled()(_fresh_array)
    assert _fresh_array(3) == 0.0  # fine in Python, so the refusal is numba's
    with pytest.raises(TypingError):
        kernel(3)
