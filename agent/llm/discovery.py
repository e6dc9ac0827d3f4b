"""Endpoint discovery and health: which model is served, its context length, and whether it is alive.

Contracts:
- `discover(base_url, llm)` reads `/v1/models` (model id and vLLM's `max_model_len`), probes `/health`
  (vLLM: 200, or 503 when the engine is dead; llama-cpp-python has no such route, so an answering
  `/v1/models` counts as healthy) and the tokenize endpoint (vLLM `/tokenize`, llama-cpp-python
  `/extras/tokenize`).
- One total deadline (`timeout_s`, default `DISCOVERY_DEADLINE_S`) covers the whole discovery, not each
  read: a server that drips its answer a byte at a time cannot hold start-up. The tokenize probe is
  optional: it gets at most `TOKENIZE_PROBE_S`, and at most half of what is left, and any fault there
  (error, garbage, hang) only means `tokenize=None`.
- The model list may hold cards (`{"id": ..., "max_model_len": ...}`) or plain id strings.
- Context length: `max_model_len` when the server reports a finite positive number, else `llm.local_n_ctx`
  for a profile the embedded server speaks (`Profile.embedded`: llamacpp), else None (not reported: the
  prompt budget then assumes `agent.llm.context.DEFAULT_CONTEXT_LEN`); `EndpointInfo.context_source` says
  which.
- An unreachable, refusing or too slow endpoint raises `LLMUnavailable` with one line naming the URL and
  the cause; this module is the only place (with the gateway's explicit `health()`) that raises it.
- `list_models` is the `/v1/models` part alone (the gateway's model lookup), under the same deadline rule.
- `adiscover` is the coroutine (httpx2, the HTTP library the openai client uses); `discover` runs it to
  completion from synchronous code, inside a running event loop too (`agent.asyncutil.run_sync`).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import httpx2

from agent.asyncutil import run_sync
from agent.config import LLMSettings
from agent.errors import LLMUnavailable
from agent.llm.profiles import profile_of

DISCOVERY_DEADLINE_S = 15.0
"""Longest the whole discovery may take."""
TOKENIZE_PROBE_S = 2.0
"""Longest the optional tokenize probe may take (within the discovery deadline)."""


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


def discover(base_url: str, llm: LLMSettings, timeout_s: float = DISCOVERY_DEADLINE_S) -> EndpointInfo:
    """Probe `base_url` and describe it, within `timeout_s` seconds in total.

    Args:
        base_url: The OpenAI-compatible base URL (ending in /v1).
        llm: The LLM settings (model choice, fallbacks for the context length, API key).
        timeout_s: Deadline for the whole discovery.

    Returns:
        The endpoint's description.

    Raises:
        LLMUnavailable: The endpoint is unreachable, refuses the key, is unhealthy, serves no model, or
            does not finish answering within the deadline.
    """
    return run_sync(adiscover(base_url, llm, timeout_s))


async def adiscover(base_url: str, llm: LLMSettings, timeout_s: float = DISCOVERY_DEADLINE_S) -> EndpointInfo:
    """`discover` as a coroutine."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    try:
        async with asyncio.timeout_at(deadline), _client(llm, timeout_s) as http:
            cards = await _models(http, base_url)
            ids = tuple(card_id for card_id, _ in cards)
            model = llm.model or ids[0]
            if model not in ids:
                raise LLMUnavailable(
                    f"LLM endpoint {base_url} does not serve model {model!r} (serves: {', '.join(ids)})"
                )
            health = await _health(http, base_url)
            probe_s = min(TOKENIZE_PROBE_S, (deadline - loop.time()) / 2)
            tokenize = await _tokenize_style(http, base_url, model, probe_s)
    except TimeoutError:
        raise LLMUnavailable(
            f"LLM endpoint {base_url} did not finish answering discovery within {timeout_s:g} s"
        ) from None
    max_len, source = _context_length(cards[ids.index(model)][1], llm)
    return EndpointInfo(base_url, model, ids, max_len, source, health, tokenize)


async def list_models(
    base_url: str, llm: LLMSettings, timeout_s: float = DISCOVERY_DEADLINE_S
) -> tuple[str, ...]:
    """The ids `/v1/models` lists (cards or plain strings), within `timeout_s` in total; `LLMUnavailable`
    as for `discover`."""
    try:
        async with asyncio.timeout(timeout_s), _client(llm, timeout_s) as http:
            return tuple(card_id for card_id, _ in await _models(http, base_url))
    except TimeoutError:
        raise LLMUnavailable(
            f"LLM endpoint {base_url} did not list its models within {timeout_s:g} s"
        ) from None


def _client(llm: LLMSettings, timeout_s: float) -> httpx2.AsyncClient:
    headers = {"Authorization": f"Bearer {llm.api_key.get_secret_value() or 'EMPTY'}"}
    return httpx2.AsyncClient(timeout=timeout_s, headers=headers)


def _context_length(reported: Any, llm: LLMSettings) -> tuple[int | None, str]:
    """The context length and where it came from (a non-finite or non-positive value is not a length)."""
    usable = isinstance(reported, int | float) and not isinstance(reported, bool)
    if usable and math.isfinite(reported) and reported >= 1:
        return int(reported), "max_model_len"
    if profile_of(llm.profile).embedded:
        return llm.local_n_ctx, "settings.llm.local_n_ctx"
    why = "not reported" if reported is None else f"not reported (max_model_len {reported!r} ignored)"
    return None, why


async def _get(http: httpx2.AsyncClient, url: str) -> httpx2.Response:
    try:
        return await http.get(url)
    except httpx2.TimeoutException:
        raise TimeoutError from None  # one message for every deadline: see `adiscover`
    except httpx2.HTTPError as e:
        raise LLMUnavailable(f"cannot reach LLM endpoint {url}: {type(e).__name__}: {e}") from None


async def _models(http: httpx2.AsyncClient, base_url: str) -> list[tuple[str, Any]]:
    """(model id, reported max_model_len or None) per served model."""
    url = base_url.rstrip("/") + "/models"
    resp = await _get(http, url)
    if resp.status_code in (401, 403):
        raise LLMUnavailable(f"LLM endpoint {url} refused the API key (HTTP {resp.status_code})")
    if resp.status_code != 200:
        raise LLMUnavailable(f"LLM endpoint {url} answered HTTP {resp.status_code}")
    try:
        entries = resp.json()["data"]
    except (ValueError, KeyError, TypeError):
        raise LLMUnavailable(f"LLM endpoint {url} did not answer an OpenAI model list") from None
    cards = []
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, str) and entry:
            cards.append((entry, None))
        elif isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
            cards.append((entry["id"], entry.get("max_model_len")))
    if not cards:
        raise LLMUnavailable(f"LLM endpoint {url} serves no model")
    return cards


async def _health(http: httpx2.AsyncClient, base_url: str) -> str:
    url = server_root(base_url) + "/health"
    resp = await _get(http, url)
    if resp.status_code == 200:
        return "ok"
    if resp.status_code == 404:
        return "ok (no /health route; /v1/models answered)"
    raise LLMUnavailable(f"LLM endpoint {url} is unhealthy (HTTP {resp.status_code})")


async def _tokenize_style(http: httpx2.AsyncClient, base_url: str, model: str, within_s: float) -> str | None:
    """Which tokenize API answers, if any, within `within_s` seconds (every fault means None)."""
    root = server_root(base_url)
    probes = (
        ("vllm", root + "/tokenize", {"model": model, "prompt": "ping"}),
        ("llamacpp", root + "/extras/tokenize", {"input": "ping"}),
    )
    try:
        async with asyncio.timeout(max(0.0, within_s)):
            for style, url, body in probes:
                resp = await http.post(url, json=body)
                if resp.status_code == 200 and "tokens" in _json_or_empty(resp):
                    return style
    except (TimeoutError, httpx2.HTTPError):
        return None
    return None


def _json_or_empty(resp: httpx2.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
