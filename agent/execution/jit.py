"""`njit_noalloc`: numba's `njit(cache=True, _nrt=False)`, typed.

The per-bar kernels (`agent.execution.bar`, the engine's loop, the broker's settle step, the curve
statistics) allocate nothing, so they are compiled without numba's reference-counted runtime: a kernel that
allocates an array fails to compile instead of running slower. numba's stubs type `njit(cache=True)` but do
not list the private `_nrt` option, so a call with it has no type. This decorator is that call, written
once with the type numba gives `njit(cache=True)`: a `Dispatcher` with the function's own signature, so
callers are checked against the kernel's annotations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from numba import njit
from numba.core.dispatcher import Dispatcher

_F = TypeVar("_F", bound=Callable[..., object])

_NO_RUNTIME: dict[str, Any] = {"_nrt": False}
"""numba's private option, passed by name: the stubs type `njit`'s public options only."""


def njit_noalloc(fn: _F) -> Dispatcher[_F]:
    """Compile `fn` in nopython mode, cached on disk, without numba's runtime (it may not allocate)."""
    compiled: Dispatcher[_F] = njit(cache=True, **_NO_RUNTIME)(fn)
    return compiled
