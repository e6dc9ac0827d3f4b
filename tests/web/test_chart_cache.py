"""The dashboard's chart cache draws a chart once however many callers ask for it at the same time."""

from __future__ import annotations

import threading

import pytest

from agent.web.figures import ChartCache


def test_callers_asking_while_a_chart_is_drawn_wait_for_that_drawing() -> None:
    cache = ChartCache()
    started, release = threading.Event(), threading.Event()
    draws: list[int] = []

    def draw() -> str:
        draws.append(1)
        started.set()
        assert release.wait(10)
        return "<div>chart</div>"

    got: list[str] = []
    first = threading.Thread(target=lambda: got.append(cache.get("k", draw)))
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=lambda: got.append(cache.get("k", draw))) for _ in range(3)]
    for t in others:
        t.start()
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert got == ["<div>chart</div>"] * 4 and len(draws) == 1


def test_a_failed_drawing_leaves_the_chart_to_the_next_caller() -> None:
    cache = ChartCache()

    def broken() -> str:
        raise RuntimeError("no data")

    with pytest.raises(RuntimeError):
        cache.get("k", broken)
    assert cache.get("k", lambda: "drawn") == "drawn"
