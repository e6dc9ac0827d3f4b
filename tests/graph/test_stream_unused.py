"""What the stream asks that no bar uses: counted (`StreamStats.unused`, the run's `llm_unused_calls`), and
not asked at all where that is known before the bar settles (`ahead`: a symbol without a bar at t)."""

from __future__ import annotations

from pathlib import Path

from agent.graph.backtest import run_agent_backtest
from agent.graph.stream import DecisionStream
from agent.graph.throughput import Throughput
from agent.testing.vllm_emulator import VLLMEmulator
from tests.graph.helpers import emulator_settings, short_source
from tests.graph.test_stream import SYMBOLS, TIMES, Server, _prepare

BTC, ETH = SYMBOLS


def test_answers_asked_ahead_for_symbols_a_bar_does_not_want_are_counted_unused() -> None:
    server = Server()
    stream = DecisionStream(TIMES, SYMBOLS, _prepare, server.submit, 4)
    for i, t in enumerate(TIMES):
        stream.answers(t, [BTC] if i % 2 else [BTC, ETH])  # ETH is wanted on even bars only
    stats = stream.stats()
    unbuilt = 1  # _prepare cannot build ETH's prompt at TIMES[3] (an odd bar): never sent, so never unused
    assert stats.sent == 2 * len(TIMES) - unbuilt
    assert stats.unused == len(TIMES) // 2 - unbuilt


def test_bars_never_settled_count_their_answers_unused() -> None:
    server = Server()
    stream = DecisionStream(TIMES, SYMBOLS, _prepare, server.submit, 3)
    stream.answers(TIMES[0], list(SYMBOLS))
    stream.answers(TIMES[2], list(SYMBOLS))  # bar 1 was skipped (no tick settled it)
    assert stream.stats().unused == 2


def test_a_symbol_known_to_have_no_use_at_a_bar_is_not_asked_ahead_and_asked_on_the_spot_if_wanted() -> None:
    server = Server()
    gap = {TIMES[5], TIMES[6]}  # ETH has no bar there: the graph skips it, nothing to ask

    def ahead(symbol: str, t: int) -> bool:
        return not (symbol == ETH and t in gap)

    stream = DecisionStream(TIMES, SYMBOLS, _prepare, server.submit, 4, ahead=ahead)
    got = {}
    for t in TIMES:
        wanted = [BTC] if t in gap else list(SYMBOLS)
        if t == TIMES[6]:
            wanted = list(SYMBOLS)  # wanted after all: asked now, on its own
        got[t] = stream.answers(t, wanted)
    assert ("ASSET_A", TIMES[5]) in server.sent and server.sent.count(("ASSET_A", TIMES[5])) == 1
    assert server.sent.count(("ASSET_A", TIMES[6])) == 2 and ETH in got[TIMES[6]]
    assert ETH not in got[TIMES[5]] and stream.stats().unused == 0


def test_unused_calls_are_in_the_run_metrics_and_the_progress_line() -> None:
    traffic = Throughput(
        decisions=90,
        cache_hits=0,
        decisions_per_s=9.0,
        in_flight=2,
        latency_p50_ms=200.0,
        latency_p95_ms=250.0,
        prompt_tokens=1000,
        completion_tokens=100,
        prefix_cache_hit_rate=None,
        unused_calls=10,
    )
    assert traffic.metrics()["llm_unused_calls"] == 10
    assert traffic.metrics()["llm_requests"] == 100
    assert "unused 10" in traffic.line()


def test_a_stateless_backtest_reports_every_call_it_made(sqlite_url: str, tmp_path: Path) -> None:
    """With room for one position only, the symbol not held is often left HOLD only: its answers, asked
    ahead, are not used, and the run's metrics say so (every request the emulator saw is accounted for)."""
    with VLLMEmulator(latency_s=0.0, max_num_seqs=64, max_model_len=32768) as emu:
        settings = emulator_settings(
            sqlite_url,
            emu.base_url,
            llm={"prompt_mode": "stateless"},
            risk={"max_position_exposure": 0.3, "max_gross_exposure": 0.3, "cooldown_bars": 0},
        )
        run = run_agent_backtest(
            settings,
            strategy="llm",
            start=None,
            end=None,
            last_bars=48,
            reports_dir=tmp_path,
            show_progress=False,
            source=short_source(settings),
        )
        calls = emu.call_count
    m = run.metrics
    assert m["llm_unused_calls"] > 0
    assert m["llm_requests"] == m["llm_decisions"] + m["llm_unused_calls"] == calls
