"""An in-process vLLM OpenAI-compatible server for tests and benchmarks (no GPU, no model).

Usage::

    with VLLMEmulator(latency_s=0.2, max_num_seqs=16, max_model_len=32768) as emu:
        gateway = LLMGateway(settings.llm, emu.base_url, ...)
        emu.script("http_500", Reply(content="{oops"))   # next two chat requests, in arrival order
        emu.set_responder(lambda body: {...})              # then this, for every later request
        emu.calls, emu.call_count                          # JSON bodies / number of chat requests so far
        emu.peak_running, emu.requests, emu.reset()        # most running at once, (method, path) log

Contracts:
- Runs aiohttp on 127.0.0.1 (port 0) in a background thread with its own event loop; hundreds of concurrent
  connections are fine. At most `max_num_seqs` requests are "running"; the rest wait (vLLM's
  `--max-num-seqs`). Each running request takes `latency_s` from its body's arrival, its parsing, tokenising
  and prefix-cache bookkeeping included (the time it waited for a slot excluded), as a server's latency is
  measured: on a machine shared with the client, the emulator's own CPU does not lengthen it. A scripted
  `delay_s` is slept as given.
- vLLM's dialect: `/v1/models` (with `max_model_len`), `/v1/chat/completions` (plain, and SSE with a final
  usage chunk when `stream_options.include_usage`), `/tokenize`, `/health` (503 when `healthy=False`),
  `/metrics` (Prometheus). Errors are `{"error": {"message", "type", "param", "code"}}`; an over-long prompt
  gets vLLM's 400 context-length message.
- Structured output like vLLM: `response_format` json_schema / json_object(+schema) and
  `structured_outputs.json|choice` constrain the answer; `guided_*` fields are ignored (recorded in
  `ignored_fields`) and the answer is unconstrained prose, as on vLLM >= 0.12.
- Default answers are deterministic: a schema-valid instance derived from a hash of the request body.
  Nemotron-style reasoning (`reasoning`, or `reasoning_content` with `reasoning_field=`) is returned
  unless `chat_template_kwargs.enable_thinking` is false. Output beyond `max_tokens` is cut
  (`finish_reason="length"`).
- Prefix caching: prompts are tokenised by a crude regex tokenizer (`/tokenize` uses it too: an empty prompt
  is 0 tokens, and counts add up over texts split after a newline, as with a real tokenizer);
  `usage.prompt_tokens_details.cached_tokens` counts whole `block_size` blocks shared with earlier prompts
  (like vLLM's APC).
- Faults on demand through `script(...)`/`set_responder(...)`: any `Reply`, or a name in `FAULTS`:
  "timeout" (no answer until the client gives up), "http_500", "http_503", "http_429", "context_length"
  (vLLM's 400), "malformed_json", "schema_violation", "reasoning_only" (reasoning, no content), "length"
  (cut off, `finish_reason="length"`), "prose" (unconstrained text), "bad_body" (not a chat completion).
  Hostile answers, for BTC/USDT: valid JSON of the wrong envelope shape ("usage_string", "usage_list",
  "model_object", "choices_object", "content_parts"); numbers written as booleans or strings
  ("exposure_bool", "exposure_string", "stop_bool"); "duplicate_keys" (`action` and `target_exposure` twice,
  the second pair a buy); text fields with NUL ("nul_text"), lone surrogates ("lone_surrogate"), terminal
  escape sequences ("escape_sequences") or Rich markup ("rich_markup"), and raw newlines and tabs inside
  strings ("raw_newline", as SmolLM2 writes them). All but "lone_surrogate" (not Unicode text, so refused by
  the schema) are valid decisions (HOLD); its reasoning, like "nul_text"'s, carries the raw character too.
  "oversized" streams a valid decision followed by 30 MB of spaces (`Reply.pad_bytes`), chunked with no
  Content-Length; "oversized_declared" is the same with its Content-Length declared. Padded bodies are
  generated while they are written: the emulator never holds them.
- Tokenizer and discovery faults, set as attributes: `tokenize_fault` (one of `TOKENIZE_FAULTS`: "http_500",
  "garbage" (an HTML body), "hang", "drip" (the answer one byte per `drip_s`)) applies to every `/tokenize`;
  `models_fault` (one of `MODELS_FAULTS`: "hang", "drip", "nan_max_model_len", "inf_max_model_len",
  "plain_strings" (`data` lists bare model ids)) to every `/v1/models`.
- Tool calls as vLLM returns them with `--enable-auto-tool-choice`: a `Reply` with `tool_calls`
  (`ToolCall(name, arguments)`) answers `message.tool_calls` (`{"id", "type": "function", "function":
  {"name", "arguments": JSON text}}`), `content` None unless the reply has text, and
  `finish_reason="tool_calls"`; the arguments count as completion tokens. Script a conversation with
  `script(...)` (callables see the request, tool results included) or `set_responder(...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import math
import random
import re
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

_TOKEN = re.compile(r"\n|[^\S\n]?\w+|[^\S\n]?[^\w\s]|[^\S\n]+")
"""A newline is always a token of its own (a pre-token boundary, as in BPE tokenizers), so the counts of
texts split after a newline add up to the count of the whole."""
__all__ = [
    "FAULTS",
    "MODELS_FAULTS",
    "TOKENIZE_FAULTS",
    "Reply",
    "ToolCall",
    "Responder",
    "VLLMEmulator",
    "fault",
    "tokenize",
]
TOKENIZE_FAULTS = ("http_500", "garbage", "hang", "drip")
MODELS_FAULTS = ("hang", "drip", "nan_max_model_len", "inf_max_model_len", "plain_strings")


def tokenize(text: str) -> list[int]:
    """The emulator's stand-in tokenizer: word/punctuation pieces mapped to stable ids.

    No piece spans a newline, so the text is tokenised line by line through a memo: a prompt that repeats
    an earlier one's history rows costs the emulator only its new lines (its CPU shares the machine with
    the client it serves in `bench_agent_backtest.py`)."""
    lines = text.split("\n")
    tokens: list[int] = []
    for line in lines[:-1]:
        tokens += _line_tokens(line)
        tokens.append(_NEWLINE)
    return tokens + list(_line_tokens(lines[-1]))


_NEWLINE = zlib.crc32(b"\n") & 0xFFFFF


@functools.lru_cache(maxsize=1 << 16)
def _line_tokens(line: str) -> tuple[int, ...]:
    return tuple(zlib.crc32(p.encode("utf-8")) & 0xFFFFF for p in _TOKEN.findall(line))


@functools.lru_cache(maxsize=4096)
def _tokenize_cached(text: str) -> tuple[int, ...]:
    return tuple(tokenize(text))


def prompt_tokens(messages: list[dict[str, Any]], template_kwargs: dict[str, Any]) -> list[int]:
    """Tokens of a ChatML-like rendering; the thinking switch changes them, as Nemotron's template does.

    Each message is tokenised on its own (and memoised: stable system prompts repeat across requests).
    """
    tokens: list[int] = []
    for m in messages:
        tokens += _tokenize_cached(f"<|im_start|>{m.get('role')}\n{m.get('content') or ''}<|im_end|>\n")
    tokens += _tokenize_cached("<|im_start|>assistant\n")
    if template_kwargs.get("enable_thinking") is False:
        tokens += _tokenize_cached("<think></think>")
    return tokens


class VLLMEmulator:
    """A local HTTP server speaking vLLM's OpenAI-compatible dialect (see the module docstring)."""

    def __init__(
        self,
        *,
        model: str = "nemotron",
        max_model_len: int = 32768,
        latency_s: float = 0.0,
        max_num_seqs: int = 256,
        block_size: int = 16,
        reasoning_field: str = "reasoning",
        prompt_tokens_details: bool = True,
        hang_s: float = 300.0,
    ) -> None:
        """Configure (not start) the emulator; `with` starts and stops it."""
        self.model, self.max_model_len, self.latency_s = model, max_model_len, latency_s
        self.max_num_seqs, self.block_size, self.hang_s = max_num_seqs, block_size, hang_s
        self.reasoning_field, self.prompt_tokens_details = reasoning_field, prompt_tokens_details
        self.healthy = True
        self.tokenize_fault: str | None = None
        self.models_fault: str | None = None
        self.drip_s = 0.02
        self.ignored_fields: list[str] = []
        self._lock = threading.Lock()
        self._script: deque[Reply | str | Responder] = deque()
        self._responder: Responder | None = None
        self._calls: list[bytes] = []  # raw bodies: bytes are not tracked by the GC, parsed dicts are
        self._requests: list[tuple[str, str]] = []
        self._blocks: OrderedDict[int, None] = OrderedDict()
        self._m = dict.fromkeys(("running", "waiting", "peak", "queries", "hits", "prompt", "gen", "ok"), 0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._seqs: asyncio.Semaphore | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle and test API

    def __enter__(self) -> VLLMEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 10.0) -> None:
        """Start serving in a background thread; returns once the port is bound."""
        self._loop = asyncio.new_event_loop()
        ready = self._loop.create_future()
        started = threading.Event()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._startup(ready))
            started.set()
            self._loop.run_forever()
            self._loop.close()

        self._thread = threading.Thread(target=run, name="vllm-emulator", daemon=True)
        self._thread.start()
        if not started.wait(timeout_s):
            raise RuntimeError("vLLM emulator did not start")

    def stop(self) -> None:
        """Stop the server (pending hung requests are released) and join its thread."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop = self._thread = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (`http://127.0.0.1:<port>/v1`)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """Where `/health`, `/metrics` and `/tokenize` live."""
        return f"http://127.0.0.1:{self.port}"

    def script(self, *items: Reply | str | Responder) -> None:
        """Queue one-shot answers for the next chat requests (a fault name, a `Reply` or a callable)."""
        for item in items:
            if isinstance(item, str) and item not in FAULTS:
                raise ValueError(f"unknown fault {item!r}; known: {sorted(FAULTS)}")
        with self._lock:
            self._script.extend(items)

    def set_responder(self, responder: Responder | None) -> None:
        """Answer every unscripted chat request with `responder(body)` (None = the default answers).

        The callable returns a `Reply`, a fault name, a dict (sent as the JSON content), or None (default).
        """
        self._responder = responder

    @property
    def calls(self) -> list[dict[str, Any]]:
        """JSON bodies of the chat-completion requests received, in arrival order."""
        with self._lock:
            raw = list(self._calls)
        return [json.loads(b) for b in raw]

    @property
    def call_count(self) -> int:
        """How many chat-completion requests arrived."""
        return len(self._calls)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every HTTP request received."""
        with self._lock:
            return list(self._requests)

    @property
    def peak_running(self) -> int:
        """The most requests that were running at once (never above `max_num_seqs`)."""
        return self._m["peak"]

    def reset(self) -> None:
        """Forget calls, script, responder and the prefix cache."""
        with self._lock:
            self._calls.clear()
            self._requests.clear()
            self._script.clear()
            self._blocks.clear()
        self._responder = None

    # ------------------------------------------------------------ server

    async def _startup(self, ready: asyncio.Future[None]) -> None:
        self._stopping = asyncio.Event()
        self._seqs = asyncio.Semaphore(self.max_num_seqs)
        app = web.Application(client_max_size=64 * 1024**2, middlewares=[self._log])
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/tokenize", self._tokenize)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _shutdown(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()
        await self._runner.cleanup()

    @web.middleware
    async def _log(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        with self._lock:
            self._requests.append((request.method, request.path))
        return await handler(request)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if self.models_fault is not None:
            return await self._models_fault(request, self.models_fault)
        card = {
            "id": self.model,
            "object": "model",
            "created": 0,
            "owned_by": "vllm",
            "root": self.model,
            "parent": None,
            "max_model_len": self.max_model_len,
        }
        return web.json_response({"object": "list", "data": [card]})

    async def _health(self, _: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 503)

    async def _tokenize(self, request: web.Request) -> web.StreamResponse:
        if self.tokenize_fault is not None:
            answer = b'{"count": 3, "tokens": [1, 2, 3]}'
            return await self._endpoint_fault(request, self.tokenize_fault, answer)
        body = await request.json()
        prompt = body.get("prompt")  # an empty prompt is no tokens (vLLM, add_special_tokens false)
        messages = body.get("messages") or []
        tokens = tokenize(str(prompt)) if prompt is not None else prompt_tokens(messages, {})
        return web.json_response(
            {"count": len(tokens), "max_model_len": self.max_model_len, "tokens": tokens, "token_strs": None}
        )

    async def _models_fault(self, request: web.Request, kind: str) -> web.StreamResponse:
        card = {"id": self.model, "object": "model", "owned_by": "vllm", "max_model_len": self.max_model_len}
        if kind == "plain_strings":
            return web.json_response({"object": "list", "data": [self.model]})
        if kind in ("nan_max_model_len", "inf_max_model_len"):
            card["max_model_len"] = math.nan if kind == "nan_max_model_len" else math.inf
            return web.json_response({"object": "list", "data": [card]})  # json.dumps writes NaN/Infinity
        body = json.dumps({"object": "list", "data": [card]}).encode()
        return await self._endpoint_fault(request, kind, body)

    async def _endpoint_fault(self, request: web.Request, kind: str, body: bytes) -> web.StreamResponse:
        """An HTTP 500, a garbage body, no answer (until shutdown or `hang_s`), or `body` dripped slowly."""
        assert self._stopping is not None
        if kind not in ("http_500", "garbage", "hang", "drip"):
            raise ValueError(f"unknown endpoint fault {kind!r}")
        if kind == "http_500":
            return _error(500, "emulated endpoint failure")
        if kind == "garbage":
            return web.Response(status=200, text="<html><body>502 Bad Gateway</body></html>")
        if kind == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.hang_s)
            return _error(500, "emulator shut down while hanging")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(body)
        await resp.prepare(request)
        for i in range(len(body)):  # one byte at a time: every read succeeds, the answer never completes
            await resp.write(body[i : i + 1])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.drip_s)
            if self._stopping.is_set():
                break
        return resp

    async def _metrics(self, _: web.Request) -> web.Response:
        m, lbl = self._m, f'{{model_name="{self.model}"}}'
        lines = [
            ("vllm:num_requests_running", "gauge", m["running"]),
            ("vllm:num_requests_waiting", "gauge", m["waiting"]),
            ("vllm:prefix_cache_queries_total", "counter", m["queries"]),
            ("vllm:prefix_cache_hits_total", "counter", m["hits"]),
            ("vllm:prompt_tokens_total", "counter", m["prompt"]),
            ("vllm:generation_tokens_total", "counter", m["gen"]),
            ("vllm:request_success_total", "counter", m["ok"]),
        ]
        text = "".join(f"# TYPE {n} {t}\n{n}{lbl} {float(v)}\n" for n, t, v in lines)
        return web.Response(text=text, content_type="text/plain")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        arrived = time.perf_counter()
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "request body is not valid JSON")
        with self._lock:
            self._calls.append(raw)
            scripted = self._script.popleft() if self._script else None
        for key in body:
            if key.startswith("guided_"):
                self.ignored_fields.append(key)  # vLLM >= 0.12: logged, then ignored
        problem = self._validate(body)
        if problem is not None:
            return problem
        reply = _as_reply(scripted(body) if callable(scripted) else scripted)
        if reply is None and self._responder is not None:
            reply = _as_reply(self._responder(body))
        if reply is not None and reply.status != 200:
            return _error(reply.status, reply.error or "emulated failure", param=reply.error_param)
        kwargs = body.get("chat_template_kwargs") or {}
        tokens = prompt_tokens(body["messages"], kwargs)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens and len(tokens) + int(max_tokens) > self.max_model_len:
            return _context_error(len(tokens), int(max_tokens), self.max_model_len)
        seed = int.from_bytes(hashlib.sha256(raw).digest()[:8], "big")
        return await self._generate(request, body, reply, tokens, max_tokens, seed, arrived)

    def _validate(self, body: dict[str, Any]) -> web.Response | None:
        if body.get("model") != self.model:
            return _error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "model")
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return _error(400, "messages must be a non-empty list", param="messages")
        if body.get("stream_options") and not body.get("stream"):
            return _error(
                400, "Stream options can only be defined when `stream=True`.", param="stream_options"
            )
        mt = body.get("max_completion_tokens") or body.get("max_tokens")
        if mt is not None and int(mt) > self.max_model_len:
            return _error(400, f"max_tokens={mt} cannot be greater than max_model_len={self.max_model_len}.")
        return None

    async def _generate(
        self,
        request: web.Request,
        body: dict[str, Any],
        reply: Reply | None,
        tokens: list[int],
        max_tokens: Any,
        seed: int,
        arrived: float,
    ) -> web.StreamResponse:
        assert self._seqs is not None and self._stopping is not None
        self._m["waiting"] += 1
        queued = time.perf_counter()
        async with self._seqs:
            admitted = time.perf_counter()
            self._m["waiting"] -= 1
            self._m["running"] += 1
            self._m["peak"] = max(self._m["peak"], self._m["running"])
            try:
                cached = self._prefix_cache(tokens)
                if reply is not None and reply.hang:  # until the client gives up, or shutdown
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.hang_s)
                    return _error(500, "emulator shut down while hanging")
                if reply is not None and reply.delay_s is not None:
                    delay = reply.delay_s
                else:  # the latency counts from arrival: this request's own work so far is part of it
                    delay = self.latency_s - (queued - arrived) - (time.perf_counter() - admitted)
                if delay > 0:
                    await asyncio.sleep(delay)  # cancelled on client disconnect or shutdown
            finally:
                self._m["running"] -= 1
        if reply is not None and reply.raw is not None:
            return web.Response(status=200, text=reply.raw, content_type="application/json")
        answer = reply or default_answer(body, random.Random(seed))
        content, reasoning, finish, completion = _cut(answer, max_tokens)
        self._m["prompt"] += len(tokens)
        self._m["gen"] += completion
        self._m["ok"] += 1
        usage: dict[str, Any] = {
            "prompt_tokens": len(tokens),
            "completion_tokens": completion,
            "total_tokens": len(tokens) + completion,
            "prompt_tokens_details": None,
        }
        if self.prompt_tokens_details:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            self.reasoning_field: reasoning,
            "tool_calls": [],
        }
        if answer.tool_calls:  # vLLM's tool parser: calls out of the content, finish reason tool_calls
            calls = answer.tool_calls
            message["tool_calls"] = [c.wire(f"chatcmpl-tool-{seed % 10**9}-{i}") for i, c in enumerate(calls)]
            message["content"] = content or None
            finish = "tool_calls"
            arguments = sum(len(tokenize(c.arguments_text())) for c in calls)
            usage["completion_tokens"] += arguments
            usage["total_tokens"] += arguments
        if body.get("stream"):
            return await self._stream(request, body, message, finish, usage)
        payload = {
            "id": f"chatcmpl-{len(self._calls)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "usage": usage,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        }
        if reply is not None and reply.pad_bytes:
            return await _padded(request, payload, reply.pad_bytes, reply.declare_length)
        return web.json_response(payload)

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        message: dict[str, Any],
        finish: str,
        usage: dict[str, Any],
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {
            "id": f"chatcmpl-{len(self._calls)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
        }

        async def send(delta: dict[str, Any] | None, finish_reason: str | None = None, **extra: Any) -> None:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
            chunk = {**base, "choices": choices, **({"usage": None} if include_usage else {}), **extra}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        for field in (self.reasoning_field, "content"):
            text = message.get(field) or ""
            for i in range(0, len(text), 24):
                await send({field: text[i : i + 24]})
        await send({}, finish)
        if include_usage:
            await send(None, usage=usage)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    def _prefix_cache(self, tokens: list[int]) -> int:
        """Cached tokens for this prompt in whole blocks; then remember its blocks."""
        bs, h, cached, hit = self.block_size, 0, 0, True
        with self._lock:
            for i in range(len(tokens) // bs):
                h = hash((h, tuple(tokens[i * bs : (i + 1) * bs])))
                if hit and h in self._blocks:
                    cached += bs
                    self._blocks.move_to_end(h)
                else:
                    hit = False
                    self._blocks[h] = None
            while len(self._blocks) > 1_000_000:
                self._blocks.popitem(last=False)
        if cached >= len(tokens):  # vLLM always recomputes at least the last token
            cached = max(0, cached - bs)
        self._m["queries"] += len(tokens)
        self._m["hits"] += cached
        return cached


_PAD_MARK = "@@pad@@"
_PAD_CHUNK = b" " * 65536


async def _padded(
    request: web.Request, completion: dict[str, Any], pad_bytes: int, declare_length: bool
) -> web.StreamResponse:
    """Write `completion` with `pad_bytes` spaces after its content, generated chunk by chunk."""
    message = completion["choices"][0]["message"]
    message["content"] = (message["content"] or "") + _PAD_MARK
    head, tail = (part.encode() for part in json.dumps(completion).split(_PAD_MARK))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    if declare_length:
        resp.content_length = len(head) + pad_bytes + len(tail)
    await resp.prepare(request)
    await resp.write(head)
    for start in range(0, pad_bytes, len(_PAD_CHUNK)):  # a client that stops reading ends this write
        await resp.write(_PAD_CHUNK[: min(len(_PAD_CHUNK), pad_bytes - start)])
    await resp.write(tail)
    await resp.write_eof()
    return resp


def _as_reply(item: Reply | str | dict[str, Any] | None) -> Reply | None:
    if item is None or isinstance(item, Reply):
        return item
    if isinstance(item, str):
        return fault(item)
    return Reply(content=json.dumps(item))


def _cut(answer: Reply, max_tokens: Any) -> tuple[str | None, str | None, str, int]:
    """Apply the `max_tokens` budget (reasoning first, then content; over budget = "length").

    Returns content, reasoning, finish reason and the number of completion tokens.
    """
    content, reasoning, finish = answer.content, answer.reasoning, answer.finish_reason
    r_pieces = _TOKEN.findall(reasoning or "")
    c_pieces = _TOKEN.findall(content or "")
    total = len(r_pieces) + len(c_pieces)
    budget = int(max_tokens) if max_tokens else total
    if r_pieces and len(r_pieces) >= budget:
        return None, "".join(r_pieces[:budget]), "length", budget
    if total > budget:
        return "".join(c_pieces[: budget - len(r_pieces)]), reasoning, "length", budget
    return content, reasoning, finish, total


def _error(status: int, message: str, type_: str | None = None, param: str | None = None) -> web.Response:
    names = {
        400: "BadRequestError",
        404: "NotFoundError",
        429: "RateLimitError",
        500: "InternalServerError",
        503: "ServiceUnavailableError",
    }
    err = {"message": message, "type": type_ or names.get(status, "Error"), "param": param, "code": status}
    return web.json_response({"error": err}, status=status)


def _context_error(n: int, m: int, limit: int) -> web.Response:
    return _error(
        400,
        f"You passed {n} input tokens and requested {m} output tokens. However, the model's context length "
        f"is only {limit} tokens, resulting in a maximum input length of {limit - m} tokens. "
        "Please reduce the length of the input prompt.",
        param="input_tokens",
    )


# ---------------------------------------------------------------- answers and faults


@dataclass(frozen=True)
class Reply:
    """One scripted answer: content/reasoning with a finish reason, an HTTP error, a hang or a raw body."""

    content: str | None = None
    reasoning: str | None = None
    finish_reason: str = "stop"
    status: int = 200
    error: str | None = None
    error_param: str | None = None
    hang: bool = False
    """Answer nothing until the client gives up (or `hang_s` passes)."""
    raw: str | None = None
    """Send this text as the HTTP body instead of a chat completion."""
    delay_s: float | None = None
    """Override the emulator's `latency_s` for this answer."""
    pad_bytes: int = 0
    """Follow the content with this many spaces, streamed without holding them (huge answers)."""
    declare_length: bool = False
    """With `pad_bytes`: send the Content-Length header (else the body is chunked)."""
    tool_calls: tuple[ToolCall, ...] = ()
    """Function calls the model makes (vLLM's `message.tool_calls`, `finish_reason="tool_calls"`)."""


@dataclass(frozen=True)
class ToolCall:
    """One function call in a scripted answer; `arguments` as JSON text (sent as is) or a dict."""

    name: str
    arguments: str | dict[str, Any] = "{}"
    id: str | None = None

    def arguments_text(self) -> str:
        """The arguments as the wire carries them: JSON text."""
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)

    def wire(self, default_id: str) -> dict[str, Any]:
        """The call as `message.tool_calls[i]`."""
        fn = {"name": self.name, "arguments": self.arguments_text()}
        return {"id": self.id or default_id, "type": "function", "function": fn}


Responder = Callable[[dict[str, Any]], "Reply | str | dict[str, Any] | None"]

_CONTEXT_400 = (
    "This model's maximum context length is 32768 tokens. However, you requested 41000 tokens "
    "(40488 in the messages, 512 in the completion). Please reduce the length of the messages or completion."
)
OVERSIZED_BYTES = 30 * 1024 * 1024
_HOLD = {
    "symbol": "BTC/USDT",
    "action": "hold",
    "target_exposure": 0.0,
    "confidence": 0.4,
    "stop_loss": None,
    "take_profit": None,
    "invalidation": "",
    "rationale": "range bound",
}


def _decision(**changes: Any) -> str:
    """A BTC/USDT HOLD as JSON text, with `changes` (any JSON values) applied."""
    return json.dumps({**_HOLD, **changes})


def _envelope(**changes: Any) -> str:
    """A raw chat-completion body answering a valid HOLD, with top-level `changes` applied."""
    message = {"role": "assistant", "content": _decision(), "reasoning": None}
    body = {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 0,
        "model": "nemotron",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42},
    }
    return json.dumps({**body, **changes})


_ENVELOPE_FAULTS: dict[str, dict[str, Any]] = {
    "usage_string": {"usage": {"prompt_tokens": "12", "completion_tokens": 30, "total_tokens": 42}},
    "usage_list": {"usage": [12, 30, 42]},
    "model_object": {"model": {"id": "nemotron"}},
    "choices_object": {"choices": {"0": {"message": {"role": "assistant", "content": _decision()}}}},
    "content_parts": {
        "choices": [{"index": 0, "message": {"content": [{"type": "text", "text": _decision()}]}}]
    },
}
FAULTS: dict[str, Reply] = {
    "timeout": Reply(hang=True),
    "http_500": Reply(
        status=500, error="EngineCore encountered an issue. See stack trace for the root cause."
    ),
    "http_503": Reply(status=503, error="The server is overloaded, please retry later."),
    "http_429": Reply(status=429, error="Too many requests."),
    "context_length": Reply(status=400, error=_CONTEXT_400, error_param="input_tokens"),
    "malformed_json": Reply(content='{"symbol": "BTC/USDT", "action": "buy", "target_exposure": 0.5,,}'),
    "schema_violation": Reply(
        content='{"symbol": "BTC/USDT", "action": "moon", "target_exposure": 3, "confidence": 2, '
        '"rationale": "to the moon"}'
    ),
    "reasoning_only": Reply(content=None, reasoning="Let me weigh momentum against the drawdown..."),
    "length": Reply(content='{"symbol": "BTC/USDT", "action": "bu', finish_reason="length"),
    "prose": Reply(content="I would buy here: momentum looks strong."),
    "bad_body": Reply(raw="<html><body>502 Bad Gateway</body></html>"),
    **{name: Reply(raw=_envelope(**changes)) for name, changes in _ENVELOPE_FAULTS.items()},
    "exposure_bool": Reply(content=_decision(action="buy", target_exposure=True, stop_loss=1.0)),
    "exposure_string": Reply(content=_decision(action="buy", target_exposure="0.8", stop_loss=1.0)),
    "stop_bool": Reply(content=_decision(action="buy", target_exposure=0.3, stop_loss=True)),
    "duplicate_keys": Reply(
        content=_decision()[:-1] + ', "action": "buy", "target_exposure": 0.9, "stop_loss": 1.0}'
    ),
    "raw_newline": Reply(content=_decision(rationale="@").replace("@", "range bound,\n\tno edge\r\n")),
    "nul_text": Reply(content=_decision(rationale="hold\x00NUL", invalidation="\x00"), reasoning="a\x00b"),
    "lone_surrogate": Reply(
        content=_decision(rationale="broken \ud800 pair", invalidation="\udfff"),
        reasoning="raw \udc80 surrogate",
    ),
    "escape_sequences": Reply(
        content=_decision(rationale="\x1b[2J\x1b[31mBUY NOW\x1b[0m\r\x08\u202eevil", invalidation="\x07"),
        reasoning="\x1b]0;pwned\x07\x1b[1A",
    ),
    "rich_markup": Reply(
        content=_decision(rationale="[bold red]BUY EVERYTHING[/] [link=http://x]click[/link] [/]"),
        reasoning="[/bold] :warning: [red]",
    ),
    "oversized": Reply(content=_decision(), pad_bytes=OVERSIZED_BYTES),
    "oversized_declared": Reply(content=_decision(), pad_bytes=OVERSIZED_BYTES, declare_length=True),
}
"""Fault names accepted by `VLLMEmulator.script` and returned by responders."""


def fault(kind: str) -> Reply:
    """The `Reply` for a fault name (see `FAULTS`)."""
    try:
        return FAULTS[kind]
    except KeyError:
        raise ValueError(f"unknown fault {kind!r}; known: {sorted(FAULTS)}") from None


def default_answer(body: dict[str, Any], rnd: random.Random) -> Reply:
    """The deterministic answer to `body`: schema-valid JSON when constrained, else prose."""
    kwargs = body.get("chat_template_kwargs") or {}
    reasoning = None
    if kwargs.get("enable_thinking", True):
        reasoning = (
            "Trend and volatility checked."
            if kwargs.get("low_effort")
            else (
                "The user wants one decision. I compare the recent closes with the moving averages, "
                "check the open position and the allowed actions, then answer in the required JSON format."
            )
        )
    rf = body.get("response_format") or {}
    so = body.get("structured_outputs") or {}
    schema: dict[str, Any] | None = None
    if rf.get("type") == "json_schema":
        schema = (rf.get("json_schema") or {}).get("schema")
    elif rf.get("type") == "json_object" or so.get("json_object"):
        schema = rf.get("schema") or _decision_schema()
    elif "json" in so:
        schema = so["json"]
    elif "choice" in so:
        return Reply(content=str(rnd.choice(so["choice"])), reasoning=reasoning)
    if schema is None:
        return Reply(
            content=f"Considering everything, I would {rnd.choice(['buy', 'sell', 'hold'])}.",
            reasoning=reasoning,
        )
    return Reply(content=json.dumps(_instance(schema, schema, rnd)), reasoning=reasoning)


def _decision_schema() -> dict[str, Any]:
    from agent.llm.schema import TradeDecision

    return TradeDecision.model_json_schema()


def _instance(node: dict[str, Any], root: dict[str, Any], rnd: random.Random) -> Any:  # noqa: C901
    """A value valid under the JSON schema `node` (nullable fields are null)."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _instance(root.get("$defs", {})[ref.rsplit("/", 1)[-1]], root, rnd)
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return rnd.choice(node["enum"])
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        if any(o.get("type") == "null" for o in options):
            return None
        return _instance(options[0], root, rnd)
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {k: _instance(v, root, rnd) for k, v in (node.get("properties") or {}).items()}
    if kind in ("number", "integer"):
        lo = node.get("minimum", node.get("exclusiveMinimum", 0))
        hi = node.get("maximum", node.get("exclusiveMaximum", lo + 100))
        value = lo + (hi - lo) * rnd.random()
        value = int(value) if kind == "integer" else math.floor(value * 1000) / 1000
        return value if value > node.get("exclusiveMinimum", -math.inf) else (lo + hi) / 2
    if kind == "string":
        return f"emulated {rnd.getrandbits(32):08x}"[: node.get("maxLength", 64)]
    if kind == "boolean":
        return rnd.random() < 0.5
    if kind == "array":
        return []
    return None


def _serve_main(argv: list[str] | None = None) -> None:
    """`python -m agent.testing.vllm_emulator --latency 0.2 --seqs 16`: serve in a process of its own.

    Prints the base URL as the first line of stdout, then serves until stdin closes or SIGTERM/SIGINT (so a
    parent process that dies takes the emulator with it). Benchmarks use this to keep the emulator's CPU off
    the client's GIL. Request bodies and memoised message tokens are dropped every second (`calls` is for
    in-process tests), so memory stays flat over long runs; the prefix cache is kept.
    """
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(description="the vLLM emulator in its own process")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per running request")
    parser.add_argument("--seqs", type=int, default=256, help="max running requests (--max-num-seqs)")
    parser.add_argument("--max-model-len", type=int, default=32768, help="context length it reports")
    parser.add_argument("--model", default="nemotron", help="served model id")
    args = parser.parse_args(argv)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or went away
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    emulator = VLLMEmulator(
        model=args.model, latency_s=args.latency, max_num_seqs=args.seqs, max_model_len=args.max_model_len
    )

    def forget_calls() -> None:
        # nobody reads them from another process, and a long run would hold every body, and every distinct
        # message's tokens in `_tokenize_cached` (about 1 MB each for a 30k-token prompt)
        while not done.wait(1.0):
            with emulator._lock:
                emulator._calls.clear()
                emulator._requests.clear()
            _tokenize_cached.cache_clear()

    with emulator:
        print(emulator.base_url, flush=True)
        threading.Thread(target=forget_calls, daemon=True).start()
        done.wait()


if __name__ == "__main__":
    _serve_main()
