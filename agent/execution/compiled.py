"""`compiled`: the numba decorator of the per-bar code, typed so the functions keep their annotations.

Contracts:
- `compiled()` is `numba.njit(cache=True, _nrt=False)`: compiled on first use and cached on disk; the function
  allocates nothing, so arrays pass between such functions without reference counting.
- `compiled(inline=True)` also inlines the function into its compiled callers (`inline="always"`): the small
  per-bar steps become one flat loop in the engine.
- The decorated function keeps its Python signature for type checking (numba ignores annotations).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


def compiled(*, inline: bool = False) -> Callable[[F], F]:
    """The decorator (see the module contract)."""
    options: dict[str, Any] = {"cache": True, "_nrt": False}
    if inline:
        options["inline"] = "always"
    return cast(Callable[[F], F], njit(**options))
