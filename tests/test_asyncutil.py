"""`run_sync`: a coroutine's result (or its exception) from sync code, with or without a running loop."""

from __future__ import annotations

import asyncio

import pytest

from agent.asyncutil import run_sync


async def _value() -> int:
    await asyncio.sleep(0)
    return 5


async def _fails() -> int:
    raise ValueError("from the coroutine")


def test_without_a_running_loop() -> None:
    assert run_sync(_value()) == 5
    with pytest.raises(ValueError, match="from the coroutine"):
        run_sync(_fails())


def test_inside_a_running_loop_as_in_jupyter() -> None:
    async def notebook_cell() -> int:
        with pytest.raises(ValueError, match="from the coroutine"):
            run_sync(_fails())
        return run_sync(_value())

    assert asyncio.run(notebook_cell()) == 5
