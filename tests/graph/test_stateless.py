"""The stateless prompt mode: the ledger of an agent backtest does not depend on how many requests are in
flight or in which order answers arrive; a rerun from the cache makes no call and reproduces it bit for bit;
the same run ticked bar by bar without the stream (as the daemon would) gives the same ledger."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from agent.config import Settings
from agent.graph.backtest import AgentBacktest, run_agent_backtest
from agent.graph.factory import open_agent
from agent.market.source import FrameSource
from agent.testing.vllm_emulator import VLLMEmulator, default_answer
from tests.graph.helpers import book, emulator_settings, short_source

BARS = 48


def _assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for key in a:
        pd.testing.assert_frame_equal(a[key], b[key], check_exact=True, obj=key)


def _shuffled_arrival(seed: int) -> Any:
    """The emulator's own deterministic answer to each body, delivered after a random delay, so answers
    arrive in an order unrelated to the order they were asked in."""
    rng = random.Random(seed)

    def respond(body: dict[str, Any]) -> Any:
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
        reply = default_answer(body, random.Random(int.from_bytes(digest[:8], "big")))
        return dataclasses.replace(reply, delay_s=rng.uniform(0.0, 0.02))

    return respond


def _run(settings: Settings, source: FrameSource, tmp_path: Path, run_id: str) -> AgentBacktest:
    return run_agent_backtest(
        settings,
        strategy="llm",
        start=None,
        end=None,
        last_bars=BARS,
        reports_dir=tmp_path,
        show_progress=False,
        source=source,
        run_id=run_id,
    )


@pytest.fixture
def emulator() -> Any:
    with VLLMEmulator(latency_s=0.0, max_num_seqs=64, max_model_len=32768) as emu:
        yield emu


def test_the_ledger_does_not_depend_on_concurrency_or_arrival_order(
    emulator: VLLMEmulator, tmp_path: Path
) -> None:
    books = []
    for i, (concurrency, seed) in enumerate([(1, 0), (4, 1), (64, 2)]):
        db_url = f"sqlite:///{tmp_path / f'c{concurrency}.db'}"  # one database each: no shared cache
        settings = emulator_settings(
            db_url, emulator.base_url, llm={"prompt_mode": "stateless", "concurrency": concurrency}
        )
        emulator.set_responder(_shuffled_arrival(seed))
        run = _run(settings, short_source(settings), tmp_path, f"stateless-{i}")
        assert run.metrics["llm_prompt_mode"] == "stateless"
        books.append(book(db_url, run.run_id))
    assert (books[0]["decisions"]["source"] == "llm").any(), "the model decides some bars"
    assert (books[0]["fills"]["side"] == "buy").any(), "and trades happen"
    for other in books[1:]:
        _assert_same(books[0], other)


def test_a_rerun_from_the_cache_makes_no_call_and_the_same_ledger(
    emulator: VLLMEmulator, sqlite_url: str, tmp_path: Path
) -> None:
    settings = emulator_settings(sqlite_url, emulator.base_url, llm={"prompt_mode": "stateless"})
    source = short_source(settings)
    first = _run(settings, source, tmp_path, "first")
    calls = emulator.call_count
    second = _run(settings, source, tmp_path, "second")
    assert emulator.call_count == calls, "the rerun is served from the cache"
    a, b = book(sqlite_url, first.run_id), book(sqlite_url, second.run_id)
    _assert_same(a, b)


def test_ticking_bar_by_bar_without_the_stream_gives_the_same_ledger(
    emulator: VLLMEmulator, sqlite_url: str, tmp_path: Path
) -> None:
    settings = emulator_settings(sqlite_url, emulator.base_url, llm={"prompt_mode": "stateless"})
    source = short_source(settings)
    streamed = _run(settings, source, tmp_path, "streamed")
    times = source.bar_times(None, None)[-BARS:]
    other = tmp_path / "sequential.db"
    seq_settings = settings.model_copy(update={"database_url": f"sqlite:///{other}"})
    with open_agent(
        seq_settings, run_id="sequential", kind="agent_backtest", strategy="llm", source=source
    ) as r:
        assert r.rt.stream is None
        for t in times:  # the daemon's way: one tick per bar, nothing requested ahead
            r.tick(t)
    _assert_same(book(settings.db_url, streamed.run_id), book(seq_settings.db_url, "sequential"))


def test_a_stateless_prompt_shows_no_account_positions_or_past_decisions(
    emulator: VLLMEmulator, sqlite_url: str, tmp_path: Path
) -> None:
    settings = emulator_settings(sqlite_url, emulator.base_url, llm={"prompt_mode": "stateless"})
    _run(settings, short_source(settings), tmp_path, "look")
    text = "\n".join(m["content"] for body in emulator.calls for m in body["messages"])
    assert "## Decision" in text and "## Now" in text and "Not shown (stateless prompt)" in text
    for section in ("cash ", "## Open positions", "## Your recent decisions"):
        assert section not in text


def test_the_report_names_the_model_prompt_mode_and_window_and_shows_the_traffic(
    emulator: VLLMEmulator, sqlite_url: str, tmp_path: Path
) -> None:
    settings = emulator_settings(sqlite_url, emulator.base_url, llm={"prompt_mode": "stateless"})
    run = _run(settings, short_source(settings), tmp_path, "header")
    page = run.report.read_text()
    for fact in ("nemotron", "vllm", "stateless", "prompt budget", "1500 tokens", f"{BARS} 1h bars"):
        assert fact in page, fact
    for figure in ("llm_decisions_per_s", "llm_latency_p95_ms", "llm_prefix_cache_hit_rate"):
        assert figure in page and figure in run.metrics, figure
    assert run.metrics["llm_decisions"] + run.metrics["llm_cache_hits"] > 0
