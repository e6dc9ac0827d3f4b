"""Endpoint discovery and health: which model is served, its context length, and whether it is alive.

Contracts:
- `discover(base_url, llm)` reads `/v1/models` (model id and vLLM's `max_model_len`), probes `/health`
  (vLLM: 200, or 503 when the engine is dead; llama-cpp-python has no such route, so an answering
  `/v1/models` counts as healthy) and the tokenize endpoint (vLLM `/tokenize`, llama-cpp-python
  `/extras/tokenize`).
- Context length: `max_model_len` when the server reports it, else `llm.local_n_ctx` for the llamacpp profile,
  else `llm.context_tokens`; `EndpointInfo.context_source` says which.
- An unreachable or refusing endpoint raises `LLMUnavailable` with one line naming the URL and the cause;
  this module is the only place (with the gateway's explicit `health()`) that raises it.
- Blocking I/O over httpx2 (the HTTP library the openai client uses); callers in an event loop run it in
  a worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2

from agent.config import LLMSettings
from agent.errors import LLMUnavailable


@dataclass(frozen=True)
class EndpointInfo:
    """What discovery found out about one endpoint."""

    base_url: str
    model: str
    models: tuple[str, ...]
    max_model_len: int | None
    context_source: str
    health: str
    tokenize: str | None
    """'vllm' (/tokenize), 'llamacpp' (/extras/tokenize) or None."""


def server_root(base_url: str) -> str:
    """`http://host:8000/v1` -> `http://host:8000` (where /health, /metrics and /tokenize live)."""
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


def discover(base_url: str, llm: LLMSettings, timeout_s: float = 10.0) -> EndpointInfo:
    """Probe `base_url` and describe it.

    Args:
        base_url: The OpenAI-compatible base URL (ending in /v1).
        llm: The LLM settings (model choice, fallbacks for the context length, API key).
        timeout_s: Per-request timeout.

    Returns:
        The endpoint's description.

    Raises:
        LLMUnavailable: The endpoint is unreachable, refuses the key, is unhealthy, or serves no model.
    """
    headers = {"Authorization": f"Bearer {llm.api_key.get_secret_value() or 'EMPTY'}"}
    with httpx2.Client(timeout=timeout_s, headers=headers) as http:
        cards = _models(http, base_url)
        ids = tuple(str(c.get("id")) for c in cards)
        model = llm.model or ids[0]
        if model not in ids:
            raise LLMUnavailable(
                f"LLM endpoint {base_url} does not serve model {model!r} (serves: {', '.join(ids)})"
            )
        card = cards[ids.index(model)]
        health = _health(http, base_url)
        tokenize = _tokenize_style(http, base_url, model)
    max_len = card.get("max_model_len")
    max_len = int(max_len) if isinstance(max_len, int | float) else None
    source = "max_model_len"
    if max_len is None:
        if llm.profile == "llamacpp":
            max_len, source = llm.local_n_ctx, "settings.llm.local_n_ctx"
        else:
            max_len, source = llm.context_tokens, "settings.llm.context_tokens"
    return EndpointInfo(base_url, model, ids, max_len, source, health, tokenize)


def _get(http: httpx2.Client, url: str) -> httpx2.Response:
    try:
        return http.get(url)
    except httpx2.HTTPError as e:
        raise LLMUnavailable(f"cannot reach LLM endpoint {url}: {type(e).__name__}: {e}") from None


def _models(http: httpx2.Client, base_url: str) -> list[dict[str, Any]]:
    url = base_url.rstrip("/") + "/models"
    resp = _get(http, url)
    if resp.status_code in (401, 403):
        raise LLMUnavailable(f"LLM endpoint {url} refused the API key (HTTP {resp.status_code})")
    if resp.status_code != 200:
        raise LLMUnavailable(f"LLM endpoint {url} answered HTTP {resp.status_code}")
    try:
        cards = resp.json()["data"]
    except (ValueError, KeyError, TypeError):
        raise LLMUnavailable(f"LLM endpoint {url} did not answer an OpenAI model list") from None
    if not cards:
        raise LLMUnavailable(f"LLM endpoint {url} serves no model")
    return [c for c in cards if isinstance(c, dict)]


def _health(http: httpx2.Client, base_url: str) -> str:
    url = server_root(base_url) + "/health"
    resp = _get(http, url)
    if resp.status_code == 200:
        return "ok"
    if resp.status_code == 404:
        return "ok (no /health route; /v1/models answered)"
    raise LLMUnavailable(f"LLM endpoint {url} is unhealthy (HTTP {resp.status_code})")


def _tokenize_style(http: httpx2.Client, base_url: str, model: str) -> str | None:
    root = server_root(base_url)
    probes = (
        ("vllm", root + "/tokenize", {"model": model, "prompt": "ping"}),
        ("llamacpp", root + "/extras/tokenize", {"input": "ping"}),
    )
    for style, url, body in probes:
        try:
            resp = http.post(url, json=body)
        except httpx2.HTTPError:
            return None
        if resp.status_code == 200 and "tokens" in _json_or_empty(resp):
            return style
    return None


def _json_or_empty(resp: httpx2.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
