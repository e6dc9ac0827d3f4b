"""Endpoint profiles as rows, and request shaping: the exact chat-completion arguments of one decision.

Contracts:
- A profile is one `Profile` row in `PROFILES`: every way the servers differ is a field of the row
  (structured-output form, token-limit key, thinking switches, tokenize dialect, schema keywords to drop,
  grammar-safe bounds, whether the embedded server speaks it). Code reads the row (`profile_of(name)`); no
  module compares a profile's name. Adding a server is one row here plus its paragraph in the docs;
  `llm.profile` is checked against `PROFILES` where it is used (`profile_of`: an unknown name is one
  `ConfigError` line naming the key and the registered rows; the settings sit below `agent.llm`).
- `decision_schema(request, profile)` derives the JSON schema from `TradeDecision`, narrowed to the request:
  `symbol` is an enum of the one symbol, `action` an enum of `request.allowed_actions`, `target_exposure`
  capped at `request.max_exposure`. It is strict: every property required, `additionalProperties: false`,
  nullable fields as `anyOf [..., {"type": "null"}]`, no defaults, `$defs` inlined.
- The rows (`settings.llm.profile`):
  - `vllm`: `response_format={"type": "json_schema", "json_schema": {..., "strict": true}}`; reasoning via
    `extra_body.chat_template_kwargs` (`enable_thinking`; `low_effort` for thinking="low") and an optional
    top-level `thinking_token_budget`. Never `guided_*` (removed in vLLM 0.12 and silently ignored).
  - `llamacpp`: llama-cpp-python's server answers json_schema with HTTP 500; it gets
    `{"type": "json_object", "schema": ...}` instead. Its grammar ignores numeric bounds, so bounded
    fractions are sent as an enum grid (0.05 steps) and positive prices as decimal strings (see
    `_grammar_bounds`); string `maxLength` is kept: the grammar then stops a rambling rationale at the
    schema's limit (with llama-cpp-python 0.3.36 this is no slower per token, and SmolLM2 otherwise often
    overruns it). No reasoning switches (SmolLM2 has none).
  - `openai`: hosted, strict json_schema, `max_completion_tokens` (hosted reasoning models refuse
    `max_tokens`); string `maxLength` is dropped because strict mode refuses it.
- Every request bounds its output (the row's `token_limit_key`: `max_tokens`, or `max_completion_tokens`
  for `openai`) and carries
  `temperature`, `top_p` and `seed` from the settings (Nemotron's recommended sampling is temperature=1.0,
  top_p=0.95, the defaults).
- `request_payload(...)` is pure: the same inputs give the same wire body, which `cache.request_hash` hashes.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from agent.errors import ConfigError
from agent.llm.schema import DecisionRequest, TradeDecision

if TYPE_CHECKING:
    from agent.config import LLMSettings

StructuredOutput = Literal["json_schema", "json_object"]
TokenLimitKey = Literal["max_tokens", "max_completion_tokens"]
TokenizeDialect = Literal["vllm", "llamacpp"]


@dataclass(frozen=True)
class Profile:
    """One server dialect, as data: everything tradegraph sends or expects differently per server."""

    name: str
    structured_output: StructuredOutput
    """`json_schema`: `response_format` json_schema with strict=true; `json_object`: json_object + schema."""
    token_limit_key: TokenLimitKey
    """The request field that bounds the output."""
    thinking_kwargs: bool
    """Reasoning switches through `chat_template_kwargs` (`enable_thinking`, `low_effort`) and an optional
    top-level `thinking_token_budget`."""
    tokenize: TokenizeDialect | None
    """The server's tokenize endpoint (`tokens.ServerTokenCounter`); None = count with the estimate."""
    drop_keywords: tuple[str, ...] = ()
    """Schema keywords removed from every property (refused, or too slow in the server's grammar)."""
    grammar_bounds: bool = False
    """Numeric bounds the server's grammar ignores are sent as an enum grid (fractions) and a decimal-string
    pattern (positive prices); answers are then parsed with prices as text."""
    embedded: bool = False
    """The embedded llama.cpp server speaks it: `base_url` may be unset, and its context length falls
    back to `llm.local_n_ctx`."""


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("vllm", "json_schema", "max_tokens", thinking_kwargs=True, tokenize="vllm"),
        Profile(
            "llamacpp",
            "json_object",
            "max_tokens",
            thinking_kwargs=False,
            tokenize="llamacpp",
            grammar_bounds=True,
            embedded=True,
        ),
        Profile(
            "openai",
            "json_schema",
            "max_completion_tokens",
            thinking_kwargs=False,
            tokenize=None,
            drop_keywords=("maxLength",),
        ),
    )
}
"""The registry: one row per supported server."""


def profile_of(name: str) -> Profile:
    """The row for `name` (`ConfigError` naming the registered profiles when there is none)."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ConfigError(f"llm.profile: unknown LLM profile {name!r}; registered: {known}") from None


SCHEMA_NAME = "trade_decision"
FRACTION_STEP = 0.05
POSITIVE_DECIMAL = r"^([1-9][0-9]{0,11}([.][0-9]{1,10})?|0[.][0-9]{0,9}[1-9])$"
"""A positive decimal; the dot is written `[.]` because llama.cpp's converter mangles an escaped dot."""
REPAIR_INSTRUCTION = (
    "Your previous answer could not be used ({error}). Reply again with only one JSON object that "
    "matches the required schema exactly: no prose, no code fences."
)


def decision_schema(request: DecisionRequest, profile: str = "vllm") -> dict[str, Any]:
    """The strict JSON schema the model must answer `request` in.

    Args:
        request: The decision request (symbol, allowed actions and exposure cap narrow the schema).
        profile: The endpoint profile; its row says which keywords to drop and how to bound numbers.

    Returns:
        A self-contained JSON schema (no `$ref`). It is memoised and shared: treat it as read-only.
    """
    actions = tuple(str(a) for a in request.allowed_actions)
    return _schema(request.symbol, actions, float(request.max_exposure), profile)


@functools.lru_cache(maxsize=1024)
def _schema(symbol: str, actions: tuple[str, ...], max_exposure: float, profile: str) -> dict[str, Any]:
    base = TradeDecision.model_json_schema()
    defs = base.pop("$defs", {})
    props: dict[str, Any] = {}
    for name, prop in base["properties"].items():
        prop = _inline(copy.deepcopy(prop), defs)
        prop.pop("default", None)
        prop.pop("title", None)
        props[name] = prop
    props["symbol"] = {
        "type": "string",
        "enum": [symbol],
        "description": props["symbol"]["description"],
    }
    props["action"] = {
        "type": "string",
        "enum": list(actions),
        "description": "what to do; only these actions are allowed now",
    }
    props["target_exposure"]["maximum"] = min(1.0, max(0.0, max_exposure))
    row = profile_of(profile)
    if row.grammar_bounds:
        props = {name: _grammar_bounds(prop) for name, prop in props.items()}
    for prop in props.values():
        for keyword in row.drop_keywords:
            prop.pop(keyword, None)
    return {
        "type": "object",
        "description": base.get("description", ""),
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


def _grammar_bounds(node: dict[str, Any]) -> dict[str, Any]:
    """Express numeric bounds in forms llama.cpp's grammar enforces (it ignores minimum/maximum).

    A number bounded on both sides becomes an enum on a grid of `FRACTION_STEP`; a number that must be
    positive becomes a decimal string matching `POSITIVE_DECIMAL` (pydantic parses it into a float).
    """
    if "anyOf" in node:
        return {**node, "anyOf": [_grammar_bounds(o) for o in node["anyOf"]]}
    if node.get("type") != "number":
        return node
    lo, hi = node.get("minimum"), node.get("maximum")
    if lo is not None and hi is not None:
        steps = int((hi - lo) / FRACTION_STEP + 1e-9)
        grid = [round(lo + i * FRACTION_STEP, 6) for i in range(steps + 1)]
        return {"type": "number", "enum": grid, **_desc(node)}
    if node.get("exclusiveMinimum") == 0 or (lo is not None and lo > 0):
        return {"type": "string", "pattern": POSITIVE_DECIMAL, **_desc(node)}
    return node


def _desc(node: dict[str, Any]) -> dict[str, Any]:
    return {"description": node["description"]} if "description" in node else {}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace `$ref` to `#/$defs/X` by a copy of the definition, recursively."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            resolved = copy.deepcopy(defs[ref.removeprefix("#/$defs/")])
            resolved.pop("title", None)
            return _inline(resolved, defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def response_format(schema: dict[str, Any], profile: str) -> dict[str, Any]:
    """The `response_format` argument that makes `profile`'s server constrain output to `schema`.

    Memoised per schema object (like the schemas themselves): treat it as read-only.
    """
    key = (id(schema), profile)
    hit = _FORMATS.get(key)
    if hit is not None and hit[0] is schema:
        return hit[1]
    if profile_of(profile).structured_output == "json_object":
        fmt: dict[str, Any] = {"type": "json_object", "schema": schema}
    else:
        fmt = {"type": "json_schema", "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": True}}
    if len(_FORMATS) >= 4096:
        _FORMATS.clear()
    _FORMATS[key] = (schema, fmt)  # holding `schema` keeps its id from being reused
    return fmt


_FORMATS: dict[tuple[int, str], tuple[dict[str, Any], dict[str, Any]]] = {}


def extra_body(llm: LLMSettings) -> dict[str, Any]:
    """Profile-specific top-level fields (sent through the client's `extra_body`)."""
    if not profile_of(llm.profile).thinking_kwargs:
        return {}
    kwargs: dict[str, Any] = {"enable_thinking": llm.thinking != "off"}
    if llm.thinking == "low":
        kwargs["low_effort"] = True
    body: dict[str, Any] = {"chat_template_kwargs": kwargs}
    if llm.thinking != "off" and llm.thinking_token_budget is not None:
        body["thinking_token_budget"] = llm.thinking_token_budget
    return body


def request_payload(
    llm: LLMSettings,
    model: str,
    messages: list[dict[str, str]],
    schema: dict[str, Any],
) -> dict[str, Any]:
    """The JSON body of one chat-completion request, exactly as it goes on the wire.

    Args:
        llm: The LLM settings (profile, sampling, thinking).
        model: The model id to address.
        messages: The chat messages.
        schema: The JSON schema the answer must match.

    Returns:
        A plain dict; it is what the request hash is computed over and what `llm_calls.request` records.
        `client_kwargs` splits it for `chat.completions.create`.
    """
    token_key = profile_of(llm.profile).token_limit_key
    payload: dict[str, Any] = {
        "model": model,
        "messages": messages,
        token_key: llm.max_tokens,
        "temperature": llm.temperature,
        "top_p": llm.top_p,
        "response_format": response_format(schema, llm.profile),
    }
    if llm.seed is not None:
        payload["seed"] = llm.seed
    payload.update(extra_body(llm))
    return payload


_TYPED = ("model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed")


def client_kwargs(payload: dict[str, Any]) -> dict[str, Any]:
    """Arguments for `chat.completions.create` that put exactly `payload` on the wire.

    The standard fields go as typed arguments; the rest (vLLM extras, and `response_format`, whose nested
    schema the client's TypedDict transformer would walk at some CPU cost) goes through `extra_body`, which
    the client merges verbatim. (The gateway itself posts `payload` as is with `client.post`.)
    """
    kwargs = {k: v for k, v in payload.items() if k in _TYPED}
    extra = {k: v for k, v in payload.items() if k not in _TYPED}
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


def repair_messages(
    messages: list[dict[str, str]], bad_answer: str | None, error: str
) -> list[dict[str, str]]:
    """The conversation for the one repair retry: the bad answer and what was wrong with it."""
    return [
        *messages,
        {"role": "assistant", "content": bad_answer or ""},
        {"role": "user", "content": REPAIR_INSTRUCTION.format(error=error)},
    ]
