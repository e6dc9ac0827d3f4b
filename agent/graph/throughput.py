"""How fast an agent run talks to its model: the figures the progress bar and the run's metrics show.

Contracts:
- `Throughput.of(rt, elapsed_s, in_flight)` reads the runtime's counters (filled by the analyse node) and
  the wall time since the first bar; nothing here does I/O.
- A decision is one answer the model gave for one symbol at one bar (cache hits counted apart); answers
  requested ahead that no settled bar used (`rt.unused_calls`: stateless mode asks before the risk layer
  has decided whether the symbol has a choice) are counted apart, as `unused_calls`, and `requests` is
  both: what the endpoint was asked (context-length retries aside); latency
  percentiles are over the endpoint's answers only; the prefix-cache hit rate is the share of prompt tokens
  the server reported as cached (`usage.prompt_tokens_details.cached_tokens`), None when it reported none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.graph.runtime import AgentRuntime


@dataclass(frozen=True)
class Throughput:
    """An agent run's model traffic so far."""

    decisions: int
    """Answers from the endpoint (not from the cache)."""
    cache_hits: int
    decisions_per_s: float
    in_flight: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    prefix_cache_hit_rate: float | None
    unused_calls: int = 0
    """Answers requested ahead that no settled bar used (their tokens and latencies are not counted)."""

    @property
    def requests(self) -> int:
        """Requests the endpoint answered: the decisions used and the unused answers."""
        return self.decisions + self.unused_calls

    @classmethod
    def of(cls, rt: AgentRuntime, elapsed_s: float, in_flight: int = 0) -> Throughput:
        """The figures of `rt` after `elapsed_s` seconds of driving."""
        lat = np.asarray(rt.latencies_ms, dtype=float)
        p50, p95 = (float(v) for v in np.percentile(lat, [50, 95])) if lat.size else (None, None)
        rate = rt.cached_tokens / rt.prompt_tokens if rt.prompt_tokens and rt.cached_tokens else None
        return cls(
            decisions=rt.llm_calls,
            cache_hits=rt.cache_hits,
            decisions_per_s=(rt.llm_calls + rt.cache_hits) / elapsed_s if elapsed_s > 0 else 0.0,
            in_flight=in_flight,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            prompt_tokens=rt.prompt_tokens,
            completion_tokens=rt.tokens - rt.prompt_tokens,
            prefix_cache_hit_rate=rate,
            unused_calls=rt.unused_calls,
        )

    def line(self) -> str:
        """One line for the progress bar."""
        lat = (
            f"p50 {self.latency_p50_ms:.0f} ms p95 {self.latency_p95_ms:.0f} ms"
            if self.latency_p50_ms is not None and self.latency_p95_ms is not None
            else "latency -"
        )
        hit = f"{self.prefix_cache_hit_rate:.0%}" if self.prefix_cache_hit_rate is not None else "-"
        return (
            f"{self.decisions_per_s:.1f} dec/s  in flight {self.in_flight}  {lat}  calls {self.decisions}  "
            f"cached {self.cache_hits}  unused {self.unused_calls}  "
            f"tokens {self.prompt_tokens:,}+{self.completion_tokens:,}  prefix hits {hit}"
        )

    def metrics(self) -> dict[str, float | int | None]:
        """The figures as run metrics (`llm_*` keys)."""
        return {
            "llm_decisions": self.decisions,
            "llm_cache_hits": self.cache_hits,
            "llm_unused_calls": self.unused_calls,
            "llm_requests": self.requests,
            "llm_decisions_per_s": self.decisions_per_s,
            "llm_latency_p50_ms": self.latency_p50_ms,
            "llm_latency_p95_ms": self.latency_p95_ms,
            "llm_prompt_tokens": self.prompt_tokens,
            "llm_completion_tokens": self.completion_tokens,
            "llm_prefix_cache_hit_rate": self.prefix_cache_hit_rate,
        }
