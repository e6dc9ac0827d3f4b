"""The gateway against the embedded model (SmolLM2-135M on llama-cpp-python's server): what `tradegraph llm
check` asks is answered schema-valid, over several sampling seeds at the default temperature.

Marked `llamacpp`; it runs whenever llama-cpp-python is installed (CI installs the `local` extra).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("llama_cpp", reason="needs the local extra: pip install 'tradegraph[local]'")

from agent.cli.llm_cmd import probe_request  # noqa: E402
from agent.config import LLMSettings  # noqa: E402
from agent.llm.gateway import LLMGateway  # noqa: E402
from agent.llm.local_server import LocalLLMServer  # noqa: E402
from agent.llm.schema import INVALIDATION_MAX, RATIONALE_MAX  # noqa: E402


@pytest.fixture(scope="module")
def server() -> Iterator[LocalLLMServer]:
    with LocalLLMServer(port=None, n_ctx=2048, threads=1) as srv:  # one thread: see test_local_llamacpp
        yield srv


@pytest.mark.llamacpp
def test_the_check_probe_is_schema_valid_at_every_seed(server: LocalLLMServer) -> None:
    """`llm check` used to fail on the default model every time: raw newlines inside strings, then (with
    string lengths unbounded in the grammar) an `invalidation` longer than the schema allows."""
    failures = []
    for seed in (1234, 0, 1, 2, 3, 4):  # 1234 is the default seed, the one `llm check` sends
        llm = LLMSettings(profile="llamacpp", model="smollm2-135m", cache_mode="off", seed=seed)
        with LLMGateway(llm, server.base_url) as gateway:
            result = gateway.decide_one_sync(probe_request())
        if result.abstained:
            failures.append((seed, result.reason, result.response_text))
            continue
        assert len(result.decision.rationale) <= RATIONALE_MAX
        assert len(result.decision.invalidation) <= INVALIDATION_MAX
    assert not failures, failures
