"""Run a coroutine to completion from synchronous code, whether or not an event loop is already running.

Jupyter runs its own loop, so `asyncio.run` fails there; the graph's nodes are synchronous and call the
async gateway through `run_sync`, which uses a private loop in a helper thread when a loop is running.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` and return its result (exceptions propagate)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    results: list[T] = []
    errors: list[BaseException] = []

    def _target() -> None:
        try:
            results.append(asyncio.run(coro))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(e)

    thread = threading.Thread(target=_target, name="tradegraph-run-sync")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]
