"""Why the LLM stage produced no usable decision: the closed set of fault kinds on an abstained result.

Contracts:
- Every abstained `DecisionResult` the gateway returns carries one `LLMFault` (`DecisionResult.fault`);
  a valid model answer (HOLD included) carries None. `reason` keeps the human-readable detail.
- Callers route on the kind, never on the text of `reason` (e.g. the analyse node reports the LLM as
  unavailable when every result is `CIRCUIT_OPEN`).
- The kinds, by where they arise:
  - `CIRCUIT_OPEN`: the breaker refused the call; nothing went out.
  - `TRANSPORT`: no HTTP answer (timeout, refused or dropped connection, failed model discovery).
  - `HTTP_STATUS`: the endpoint answered an HTTP error (5xx, 429, 401/403/404, other 4xx).
  - `OVERSIZE`: the endpoint refused the prompt as longer than its context (HTTP 400), and no smaller
    prompt could be built (the gateway retries once with `request.shrink()` on exactly this kind).
  - `ENVELOPE`: the body was not a usable chat completion (no choices, wrong types, HTML from a proxy,
    larger than allowed).
  - `PARSE`: the answer did not parse or validate, also after the repair retry (invalid JSON, schema,
    reasoning only, cut off by max_tokens, empty).
  - `TOKENIZER`: the prompt could not be counted (the caller's tokenizer failed).
  - `BUDGET`: the prompt budget cannot hold the instructions and the current state; not asked.
"""

from __future__ import annotations

from enum import StrEnum


class LLMFault(StrEnum):
    """The kind of failure behind an abstained LLM result (see the module docstring)."""

    CIRCUIT_OPEN = "circuit_open"
    TRANSPORT = "transport"
    HTTP_STATUS = "http_status"
    OVERSIZE = "oversize"
    ENVELOPE = "envelope"
    PARSE = "parse"
    TOKENIZER = "tokenizer"
    BUDGET = "budget"
