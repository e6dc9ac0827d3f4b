"""The LLM gateway: one path from `DecisionRequest`s to validated decisions over `openai.AsyncOpenAI`.

Contracts (implements `agent.llm.protocol.DecisionGateway`):
- `decide_many(requests)` returns exactly one `DecisionResult` per request, in order, and never raises for
  a bad answer or a failing endpoint: every fault ends in an abstained HOLD whose `reason` names it
  ("timeout", "http 500", "connection error: ...", "context too long", "circuit open", "invalid json: ...",
  "schema: ...", "reasoning only, no content", "cut off by max_tokens", ...) and whose `fault` is its
  `LLMFault` kind, set here where it abstains (callers route on the kind, never on the reason's text).
  Only database failures (infrastructure) propagate.
- Requests run concurrently, at most `llm.concurrency` in flight (one semaphore per event loop).
- Cache (`llm.cache_mode`): all request hashes are looked up in one query before any call; hits are served
  without touching the endpoint. Every attempt and every hit is written to `llm_calls` in one batch (in a
  worker thread) before `decide_many` returns, and each result carries the `llm_call_id` of its last row.
  The prompts of the requests sent are written to `llm_prompts` while those requests are in flight, so the
  write after the answers holds only the call rows.
- Faults: per-attempt deadline `llm.timeout_s`; connection errors, 5xx and 429 are retried up to
  `llm.max_retries` times with exponential backoff and jitter (injectable `sleep`); a timeout is not retried.
  A circuit breaker (`circuit.py`) counts calls that failed after their retries. A 400 for an over-long
  prompt is retried once with `request.shrink()` when available. An answer that does not parse or validate
  gets one repair retry (the error and the bad answer's first `REPAIR_ECHO_MAX` characters, made storable,
  are sent back); if that fails too, abstain.
- Bounded reads: every response body is read at most `llm.max_response_bytes` bytes (`bodycap`: a declared
  longer body is refused before reading, a longer stream is cut off, decoded size counts too). An answer
  over the cap abstains ("response too large: ...") with no repair retry, and nothing of it is stored. A
  body of the wrong shape ("bad response: ...", see `parse.read_completion`) abstains the same way. Rows
  with an error are never served from the cache.
- A valid decision whose action is outside `request.allowed_actions` is returned as-is (the schema sent
  already restricts the enum; the risk layer rejects and records what slips through).
- `LLMUnavailable` is raised only by the explicit `health()` check.
- What is hashed and recorded is what goes on the wire: the payload from `profiles.request_payload` is
  posted as is (`client.post`, streamed), over the SDK's aiohttp transport when aiohttp is installed (less
  CPU per call than httpx2's), with the SDK's own retries off (`max_retries=0`).
- The HTTP client belongs to the event loop that first used it: use `async with LLMGateway(...)` (or
  `await aclose()`) in that loop; `decide_many_sync`/`decide_one_sync` run and close their own loop.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx2
import openai

from agent.config import LLMSettings
from agent.db.prompts import PromptText
from agent.errors import LLMUnavailable
from agent.llm import profiles
from agent.llm.bodycap import ResponseTooLarge, cap_response_body, read_capped
from agent.llm.cache import CachedAnswer, CallRecord, CallStore, hit_record, request_hash, request_key
from agent.llm.circuit import CircuitBreaker, backoff_delay
from agent.llm.discovery import EndpointInfo, discover, list_models
from agent.llm.faults import LLMFault
from agent.llm.parse import (
    Outcome,
    Parsed,
    classify_status,
    classify_transport,
    parse_answer,
    read_body,
)
from agent.llm.schema import DecisionRequest, DecisionResult, TradeDecision, hold
from agent.redact import mask_url_credentials
from agent.textsafe import for_storage

T = TypeVar("T")
_Fields = dict[str, Any]
REPAIR_ECHO_MAX = 4096
"""Characters of a bad answer sent back in the repair prompt (a valid decision is well under 2,000)."""


@dataclass
class _Job:
    """One request on its way through the gateway, with the rows it produced."""

    request: DecisionRequest
    payload: dict[str, Any]
    hash: str
    prompt: PromptText | None = None
    """The payload's messages as stored (canonical JSON and digest), serialised once with `hash`."""
    records: list[CallRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class _LoopState:
    semaphore: asyncio.Semaphore
    client: openai.AsyncOpenAI | None = None


class LLMGateway:
    """Asks an OpenAI-compatible endpoint (vLLM, llama.cpp, OpenAI) for trade decisions."""

    def __init__(
        self,
        llm: LLMSettings,
        base_url: str,
        *,
        store: CallStore | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
    ) -> None:
        """Create a gateway.

        Args:
            llm: The `[llm]` settings (profile, sampling, limits, cache mode).
            base_url: The endpoint, e.g. `http://gpu:8000/v1` (see `local_server.resolve_endpoint`).
            store: Where calls are recorded and cached; None = no audit, no cache (probes only).
            sleep: Awaitable sleep used between retries (tests inject a fake).
            clock: Monotonic clock for the circuit breaker.
            rng: Source of retry jitter.
            backoff_base_s: First retry delay before jitter; doubles per retry.
            backoff_max_s: Cap on one retry delay.
        """
        self.llm = llm
        self.base_url = base_url.rstrip("/")
        self.endpoint = mask_url_credentials(self.base_url)
        """The endpoint as recorded and shown (credentials in the URL masked)."""
        self.store = store
        self.circuit = CircuitBreaker(llm.circuit_failures, llm.circuit_cooldown_s, clock)
        self._sleep = sleep
        self._rng = rng or random.Random(0)
        self._backoff = (backoff_base_s, backoff_max_s)
        self._model: str | None = llm.model
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._background: _BackgroundLoop | None = None

    # ---------------------------------------------------------------- public API

    @property
    def model(self) -> str | None:
        """The model asked: the configured one, else the one discovered on first use (None before)."""
        return self._model

    async def decide_many(self, requests: Sequence[DecisionRequest]) -> list[DecisionResult]:
        """One result per request, in order (see the module docstring)."""
        if not requests:
            return []
        state = self._state()
        if self._model is None and not self.circuit.allow():
            orphans = [self._orphan(r, "circuit open", LLMFault.CIRCUIT_OPEN) for r in requests]
            return await self._finish(orphans)
        try:
            model = await self._resolve_model(state)
        except (LLMUnavailable, openai.OpenAIError, TimeoutError) as e:
            self.circuit.record_failure()
            reason = f"model discovery failed: {_short(e) if str(e) else 'timeout'}"
            return await self._finish([self._orphan(r, reason, LLMFault.TRANSPORT) for r in requests])
        jobs = [self._job(r, model, r.messages) for r in requests]
        hits: dict[str, CachedAnswer] = {}
        if self.store is not None and self.llm.cache_mode in ("read", "readwrite"):
            hits = await asyncio.to_thread(self.store.lookup, [j.hash for j in jobs])
        done: list[tuple[_Job, _Fields] | None] = []
        for job in jobs:
            hit = hits.get(job.hash)
            done.append(self._serve_cached(job, hit) if hit else None)
        misses = [i for i, d in enumerate(done) if d is None]
        ahead = [p for i in misses if (p := jobs[i].prompt) is not None]
        stored = (
            asyncio.ensure_future(asyncio.to_thread(self.store.store_prompts, ahead))
            if ahead and self.store
            else None
        )
        try:
            answered = await asyncio.gather(*(self._decide(jobs[i], state) for i in misses))
        finally:
            if stored is not None:
                await stored  # the prompts, written while the requests were in flight
        for i, outcome in zip(misses, answered, strict=True):
            done[i] = outcome
        return await self._finish([d for d in done if d is not None])

    def decide_many_sync(self, requests: Sequence[DecisionRequest]) -> list[DecisionResult]:
        """Blocking `decide_many` for the CLI, the graph and notebooks (works inside a running loop too).

        Runs on a background event loop owned by the gateway, so the HTTP client and its connections are
        reused from call to call; `close()` (or the end of a `with` block, or garbage collection) stops it.
        """
        return self._loop().run(self.decide_many(requests))

    def submit_many(self, requests: Sequence[DecisionRequest]) -> Future[list[DecisionResult]]:
        """`decide_many` started on the gateway's background loop without waiting: the future holds its
        results. Many submissions run at once, still at most `llm.concurrency` requests in flight (the
        loop's one semaphore); the decision request stream (`agent.graph.stream`) keeps bars ahead in flight
        this way."""
        return self._loop().submit(self.decide_many(requests))

    def _loop(self) -> _BackgroundLoop:
        if self._background is None:
            self._background = _BackgroundLoop(self._states)
            weakref.finalize(self, self._background.stop)
        return self._background

    def decide_one_sync(self, request: DecisionRequest) -> DecisionResult:
        """Blocking single decision."""
        return self.decide_many_sync([request])[0]

    async def aclose(self) -> None:
        """Close the HTTP client of the running loop (call before that loop ends)."""
        state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None and state.client is not None:
            await state.client.close()

    def close(self) -> None:
        """Stop the background loop of the sync wrappers, closing its HTTP client."""
        if self._background is not None:
            self._background.stop()
            self._background = None

    def __enter__(self) -> LLMGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LLMGateway:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def health(self) -> EndpointInfo:
        """Explicit health check.

        Raises:
            LLMUnavailable: The circuit is open, or the endpoint is unreachable or unhealthy.
        """
        if not self.circuit.allow():
            raise LLMUnavailable(
                f"LLM circuit open after {self.circuit.failures} consecutive failures at {self.endpoint}; "
                f"next probe in {self.circuit.retry_in_s():.0f}s"
            )
        info = await asyncio.to_thread(discover, self.base_url, self.llm)
        self._model = self._model or info.model
        return info

    # ---------------------------------------------------------------- orchestration

    def _job(self, request: DecisionRequest, model: str, messages: Sequence[dict[str, str]]) -> _Job:
        schema = profiles.decision_schema(request, self.llm.profile)
        payload = profiles.request_payload(self.llm, model, list(messages), schema)
        key = request_key(payload, request.stored if messages is request.messages else None)
        return _Job(request, payload, key.hash, key.prompt)

    async def _decide(self, job: _Job, state: _LoopState) -> tuple[_Job, _Fields]:
        out = await self._call(job, job.payload, job.request.prompt_hash, "first", state)
        if out.fault is LLMFault.OVERSIZE and job.request.shrink is not None:
            out = await self._shrink_retry(job, state)
        if out.error:
            return job, self._abstain(job, out.error, out, fault=_fault(out))
        parsed = self._parse(out.content, out.finish_reason, out.reasoning)
        if parsed.decision is not None:
            return job, self._success(job, parsed, out)
        first_error = str(parsed.error)
        job.records[-1].error = first_error
        echo = for_storage(out.content[:REPAIR_ECHO_MAX]) if out.content else out.content
        messages = profiles.repair_messages(job.payload["messages"], echo, first_error)
        job.extra["repair_of"] = first_error
        repaired = await self._call(job, {**job.payload, "messages": messages}, None, "repair", state)
        if repaired.error:
            reason = f"{first_error}; repair: {repaired.error}"
            return job, self._abstain(job, reason, repaired, fault=_fault(repaired))
        parsed = self._parse(repaired.content, repaired.finish_reason, repaired.reasoning)
        if parsed.decision is not None:
            return job, self._success(job, parsed, repaired)
        job.records[-1].error = parsed.error
        reason = f"{first_error}; repair: {parsed.error}"
        return job, self._abstain(job, reason, repaired, fault=LLMFault.PARSE)

    async def _shrink_retry(self, job: _Job, state: _LoopState) -> Outcome:
        assert job.request.shrink is not None
        try:
            smaller = job.request.shrink()
        except Exception as e:  # noqa: BLE001 - a failing shrink hook must end in HOLD, not a crash
            return Outcome(error=f"context too long (shrink failed: {_short(e)})", fault=LLMFault.OVERSIZE)
        if smaller is None:
            return Outcome(error="context too long", fault=LLMFault.OVERSIZE)
        shrunk = self._job(smaller, job.payload["model"], smaller.messages)
        job.payload = shrunk.payload
        job.prompt = shrunk.prompt
        job.extra["shrunk_prompt_hash"] = smaller.prompt_hash
        return await self._call(job, shrunk.payload, smaller.prompt_hash, "shrink", state)

    async def _finish(self, done: list[tuple[_Job, _Fields]]) -> list[DecisionResult]:
        """Persist every row in one batch and stamp each result with its last row's id."""
        if self.store is None:
            return [DecisionResult(**fields) for _, fields in done]
        rows = [rec for job, _ in done for rec in job.records]
        ids = await asyncio.to_thread(self.store.insert_many, rows)
        results, i = [], 0
        for job, fields in done:
            i += len(job.records)
            results.append(DecisionResult(**fields, llm_call_id=ids[i - 1] if job.records else None))
        return results

    # ---------------------------------------------------------------- one call, with retries

    async def _call(
        self, job: _Job, payload: dict[str, Any], prompt_hash: str | None, kind: str, state: _LoopState
    ) -> Outcome:
        """Send `payload` (retrying transport faults); every try becomes a row in `job.records`."""
        for n in range(self.llm.max_retries + 1):
            out = await self._send(payload, state)
            job.records.append(self._record(job, payload, prompt_hash, kind, n, out))
            if out.error is None:
                self.circuit.record_success()
                return out
            if not out.retryable or n == self.llm.max_retries:
                if out.endpoint_fault:
                    self.circuit.record_failure()
                return out
            await self._sleep(backoff_delay(n, *self._backoff, self._rng))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, payload: dict[str, Any], state: _LoopState) -> Outcome:
        """One HTTP attempt under the semaphore and the circuit breaker (one probe at a time if half-open)."""
        if not self.circuit.allow():
            return Outcome(error="circuit open", fault=LLMFault.CIRCUIT_OPEN)
        async with state.semaphore:
            with self.circuit.attempt() as allowed:
                if not allowed:
                    return Outcome(error="circuit open", fault=LLMFault.CIRCUIT_OPEN)
                return await self._exchange(payload, state)

    async def _exchange(self, payload: dict[str, Any], state: _LoopState) -> Outcome:
        """The HTTP request and its answer, under the per-attempt deadline."""
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(self.llm.timeout_s):
                resp = await self._client(state).post(  # streamed: the body is read here, capped
                    "/chat/completions", cast_to=httpx2.Response, body=payload, stream=True
                )
                body = await read_capped(resp, self.llm.max_response_bytes)
        except ResponseTooLarge as e:
            return Outcome(error=f"response too large: {e}", latency_ms=_ms(t0), fault=LLMFault.ENVELOPE)
        except (TimeoutError, openai.APIConnectionError, httpx2.TransportError) as e:
            return classify_transport(e, _ms(t0))
        except openai.APIStatusError as e:
            return classify_status(e.status_code, str(e.message or e), _ms(t0))
        except openai.OpenAIError as e:
            return Outcome(error=f"bad response: {_short(e)}", latency_ms=_ms(t0), fault=LLMFault.ENVELOPE)
        except ValueError as e:  # the HTTP client refused to send (aiohttp: credentials in the URL + a key)
            return Outcome(error=f"not sent: {_short(e)}", latency_ms=_ms(t0), fault=LLMFault.TRANSPORT)
        return read_body(body, _ms(t0), self.llm.max_response_bytes)

    # ---------------------------------------------------------------- results and rows

    def _record(
        self, job: _Job, payload: dict[str, Any], prompt_hash: str | None, kind: str, n: int, out: Outcome
    ) -> CallRecord:
        prompt, completion, cached = out.usage
        return CallRecord(
            request_hash=job.hash,
            prompt_hash=prompt_hash or job.request.prompt_hash,
            endpoint=self.endpoint,
            profile=self.llm.profile,
            model=out.model or payload["model"],
            request={"attempt": kind, "try": n, "cacheable": False, "payload": payload},
            run_id=job.request.run_id,
            response_text=out.content,
            reasoning=out.reasoning,
            finish_reason=out.finish_reason,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            latency_ms=out.latency_ms,
            error=out.error,
            prompt=job.prompt if payload is job.payload else None,  # a repair's messages are its own
        )

    def _parse(self, content: str | None, finish_reason: str | None, reasoning: str | None) -> Parsed:
        """`parse_answer` for the schema this profile sends (grammar-bound rows ask for prices as text)."""
        prices_as_text = profiles.profile_of(self.llm.profile).grammar_bounds
        return parse_answer(content, finish_reason, reasoning, prices_as_text=prices_as_text)

    def _success(self, job: _Job, parsed: Parsed, out: Outcome) -> _Fields:
        assert parsed.decision is not None
        if self.llm.cache_mode in ("write", "readwrite"):
            job.records[-1].request["cacheable"] = True
        return _result(job, parsed.decision, out, model=job.records[-1].model)

    def _abstain(self, job: _Job, reason: str, out: Outcome | None = None, *, fault: LLMFault) -> _Fields:
        if job.records and job.records[-1].error is None:
            job.records[-1].error = reason
        if not job.records:  # nothing went out (e.g. shrink refused): still leave an audit row
            job.records.append(self._record(job, job.payload, None, "none", 0, Outcome(error=reason)))
        decision = hold(job.request.symbol, f"abstained: {reason}")
        out = out or Outcome()
        return _result(job, decision, out, model=job.records[-1].model, reason=reason, fault=fault)

    def _orphan(self, request: DecisionRequest, reason: str, fault: LLMFault) -> tuple[_Job, _Fields]:
        job = _Job(request, {"model": self._model or "unknown", "messages": list(request.messages)}, "")
        job.hash = request_hash(job.payload)
        return job, self._abstain(job, reason, fault=fault)

    def _serve_cached(self, job: _Job, hit: CachedAnswer) -> tuple[_Job, _Fields] | None:
        parsed = self._parse(hit.response_text, hit.finish_reason, hit.reasoning)
        if parsed.decision is None:
            return None  # schema changed since it was stored: ask again
        req = job.request
        job.records.append(
            hit_record(hit, job.hash, req.prompt_hash, self.endpoint, self.llm.profile, req.run_id)
        )
        out = Outcome(
            content=hit.response_text,
            reasoning=hit.reasoning,
            usage=(hit.prompt_tokens, hit.completion_tokens, hit.cached_tokens),
            latency_ms=0.0,
        )
        job.extra["source_id"] = hit.id
        return job, _result(job, parsed.decision, out, model=hit.model, from_cache=True)

    # ---------------------------------------------------------------- plumbing

    def _state(self) -> _LoopState:
        """The semaphore (and client) of the running loop: httpx2 pools are bound to one loop."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState(asyncio.Semaphore(self.llm.concurrency))
        return state

    def _client(self, state: _LoopState) -> openai.AsyncOpenAI:
        """The loop's client, created on first use (a fully cached run never builds one)."""
        if state.client is None:
            timeout = httpx2.Timeout(self.llm.timeout_s + 5.0, connect=5.0)
            hooks = {"response": [cap_response_body(self.llm.max_response_bytes)]}
            try:  # the SDK's aiohttp transport costs about a third less CPU per call than httpx2's own
                http: httpx2.AsyncClient = openai.DefaultAioHttpClient(timeout=timeout, event_hooks=hooks)
            except RuntimeError:  # aiohttp is not installed: the SDK's default transport
                http = openai.DefaultAsyncHttpxClient(timeout=timeout, event_hooks=hooks)
            state.client = openai.AsyncOpenAI(
                api_key=self.llm.api_key.get_secret_value() or "EMPTY",
                base_url=self.base_url,
                max_retries=0,
                timeout=timeout,
                http_client=http,
            )
        return state.client

    async def _resolve_model(self, state: _LoopState) -> str:
        if self._model is None:  # discovery's reading: model cards or plain ids, one total deadline
            self._model = (await list_models(self.base_url, self.llm, self.llm.timeout_s))[0]
        return self._model


def _result(
    job: _Job,
    decision: TradeDecision,
    out: Outcome,
    *,
    model: str | None,
    reason: str | None = None,
    fault: LLMFault | None = None,
    from_cache: bool = False,
) -> _Fields:
    """The fields of a `DecisionResult`; it is built once its `llm_call_id` is known."""
    return {
        "request": job.request,
        "decision": decision,
        "abstained": reason is not None,
        "reason": reason,
        "model": model,
        "reasoning": out.reasoning,
        "response_text": out.content,
        "prompt_tokens": out.usage[0],
        "completion_tokens": out.usage[1],
        "cached_tokens": out.usage[2],
        "latency_ms": out.latency_ms,
        "from_cache": from_cache,
        "fault": fault,
        "extra": {"attempts": 0 if from_cache else len(job.records), **job.extra},
    }


def _fault(out: Outcome) -> LLMFault:
    """The kind of a failed attempt (an error nobody classified is an answer that could not be read)."""
    return out.fault if out.fault is not None else LLMFault.ENVELOPE


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:200]


class _BackgroundLoop:
    """An event loop in a daemon thread, for the sync wrappers; `stop()` closes its client, then the loop."""

    def __init__(self, states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]) -> None:
        self._states = states
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="llm-gateway", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and wait for its result (re-raising its exception)."""
        return self.submit(coro).result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Start `coro` on the loop; its future holds the result (or the exception)."""
        if self._loop.is_closed():
            coro.close()
            raise RuntimeError("the gateway was closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def stop(self) -> None:
        """Close the loop's HTTP client, stop the loop and join its thread (idempotent)."""
        if self._loop.is_closed():
            return
        state = self._states.pop(self._loop, None)
        if state is not None and state.client is not None:
            asyncio.run_coroutine_threadsafe(state.client.close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
