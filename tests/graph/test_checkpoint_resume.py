"""The daemon's runner keeps mid-tick checkpoints: a tick whose ledger write failed resumes from its last
completed node on the next try, without asking the model again, and records the same decisions."""

from __future__ import annotations

import pytest

from agent.graph import nodes
from agent.graph.factory import open_agent
from agent.testing.vllm_emulator import VLLMEmulator
from tests.graph.helpers import emulator_settings, short_source


def test_a_tick_that_failed_at_the_ledger_resumes_from_its_checkpoint(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with VLLMEmulator(latency_s=0.0, max_model_len=32768) as emu:
        settings = emulator_settings(sqlite_url, emu.base_url, llm={"cache_mode": "off"})  # nothing cached
        source = short_source(settings)
        t = source.bar_times(None, None)[-1]
        real_write = nodes.write_tick
        failures = {"left": 1}

        def failing_once(*args: object, **kwargs: object) -> object:
            if failures["left"]:
                failures["left"] -= 1
                raise OSError("disk full (test)")
            return real_write(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(nodes, "write_tick", failing_once)
        with open_agent(settings, run_id="ck", kind="paper", strategy="llm", source=source) as runner:
            assert runner.checkpointer is not None
            with pytest.raises(OSError, match="disk full"):
                runner.tick(t)
            asked = emu.call_count
            assert asked > 0
            out = runner.tick(t)
        assert out.status == "resumed" and emu.call_count == asked, "resumed without asking the model again"
