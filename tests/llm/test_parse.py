"""Reading the model's answer: accept what is unambiguous, refuse what is not, never coerce."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.llm.parse import parse_answer, read_completion
from agent.llm.schema import Action

GOOD: dict[str, Any] = {
    "symbol": "BTC/USDT",
    "action": "buy",
    "target_exposure": 0.4,
    "confidence": 0.6,
    "stop_loss": 60000.5,
    "take_profit": None,
    "invalidation": "",
    "rationale": "breakout",
}


def answer(**changes: Any) -> str:
    return json.dumps({**GOOD, **changes})


# ------------------------------------------------------------------ accepted


def test_raw_newlines_and_tabs_inside_strings_are_accepted() -> None:
    """SmolLM2 writes line breaks inside the rationale as they are, not as \\n escapes."""
    text = answer(rationale="RAWNL", invalidation="RAWTAB").replace("RAWNL", "up\nand\r\naway")
    text = text.replace("RAWTAB", "below\tthe low")
    assert "\n" in text and "\t" in text
    parsed = parse_answer(text, "stop")
    assert parsed.error is None, parsed.error
    assert parsed.decision is not None
    assert parsed.decision.rationale == "up\nand\r\naway"
    assert parsed.decision.invalidation == "below\tthe low"


def test_integers_are_numbers() -> None:
    parsed = parse_answer(answer(target_exposure=1, confidence=0, stop_loss=60000), "stop")
    assert parsed.decision is not None, parsed.error
    assert parsed.decision.target_exposure == 1.0 and parsed.decision.stop_loss == 60000.0


def test_one_code_fence_and_surrounding_whitespace_are_stripped() -> None:
    parsed = parse_answer("\n ```json\n" + answer() + "\n```  \n", "stop")
    assert parsed.decision is not None and parsed.decision.action is Action.BUY


# ------------------------------------------------------------------ refused


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("target_exposure", True),
        ("target_exposure", "0.8"),
        ("target_exposure", False),
        ("confidence", "0.9"),
        ("confidence", True),
        ("stop_loss", True),
        ("stop_loss", "60000"),
        ("take_profit", "70000.5"),
        ("take_profit", False),
    ],
)
def test_booleans_and_strings_are_not_numbers(field: str, value: Any) -> None:
    """`"target_exposure": true` and `"0.8"` used to become 1.0 and 0.8, and filled buys."""
    parsed = parse_answer(answer(**{field: value}), "stop")
    assert parsed.decision is None
    assert parsed.error is not None and parsed.error.startswith("schema: "), parsed.error
    assert field in parsed.error


@pytest.mark.parametrize("key", ["action", "target_exposure", "symbol"])
def test_duplicated_keys_are_refused(key: str) -> None:
    """The last of two values used to win silently: `"action": "hold", ..., "action": "buy"`."""
    first = json.dumps(GOOD)[:-1]
    second = {"action": '"hold"', "target_exposure": "0.0", "symbol": '"BTC/USDT"'}[key]
    parsed = parse_answer(f'{first}, "{key}": {second}}}', "stop")
    assert parsed.decision is None
    assert parsed.error == f"invalid json: duplicate key {key!r}", parsed.error


def test_duplicated_keys_in_nested_objects_are_refused() -> None:
    parsed = parse_answer(answer(rationale="x")[:-1] + ', "extra": {"a": 1, "a": 2}}', "stop")
    assert parsed.error == "invalid json: duplicate key 'a'"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_refused(constant: str) -> None:
    parsed = parse_answer(answer(stop_loss="X").replace('"X"', constant), "stop")
    assert parsed.decision is None and parsed.error == f"invalid json: {constant} is not JSON"


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    parsed = parse_answer("[" * 200_000 + "]" * 200_000, "stop")
    assert parsed.decision is None and parsed.error is not None and parsed.error.startswith("invalid json")


def test_price_text_is_accepted_only_where_the_schema_asked_for_it() -> None:
    """The llama.cpp profile asks for prices as decimal strings (its grammar cannot bound numbers)."""
    text = answer(stop_loss="64250.5", take_profit="70000")
    loose = parse_answer(text, "stop", prices_as_text=True)
    assert loose.decision is not None, loose.error
    assert (loose.decision.stop_loss, loose.decision.take_profit) == (64250.5, 70000.0)
    assert parse_answer(text, "stop").decision is None  # the vllm/openai schemas ask for numbers
    for bad in ("-3", "0", "1e5", "abc", " 5", "5.", "0x10", "١٢"):
        parsed = parse_answer(answer(stop_loss=bad), "stop", prices_as_text=True)
        assert parsed.decision is None, bad
    assert parse_answer(answer(stop_loss=True), "stop", prices_as_text=True).decision is None
    assert parse_answer(answer(target_exposure="0.5"), "stop", prices_as_text=True).decision is None


# ------------------------------------------------------------------ invariants


DECISIONS = st.fixed_dictionaries(
    {
        "symbol": st.just("BTC/USDT"),
        "action": st.sampled_from(["buy", "sell", "hold", "close"]),
        "target_exposure": st.floats(0, 1),
        "confidence": st.floats(0, 1),
        "stop_loss": st.none() | st.floats(1e-6, 1e9),
        "take_profit": st.none() | st.floats(1e-6, 1e9),
        "invalidation": st.text(max_size=50),
        "rationale": st.text(max_size=200),
    }
)


@settings(max_examples=200, deadline=None)
@given(DECISIONS, st.booleans())
def test_every_valid_decision_round_trips_with_or_without_raw_control_characters(
    data: dict[str, Any], raw: bool
) -> None:
    text = json.dumps(data, ensure_ascii=False)
    if raw:  # the escapes a small model leaves out: raw newlines and tabs inside strings
        text = text.replace("\\n", "\n").replace("\\t", "\t")
    parsed = parse_answer(text, "stop")
    assert parsed.decision is not None, parsed.error
    assert parsed.decision.model_dump(mode="json") == data


@settings(max_examples=200, deadline=None)
@given(DECISIONS, st.sampled_from(["target_exposure", "confidence", "stop_loss", "take_profit"]))
def test_no_numeric_field_is_ever_coerced_from_text_or_bool(data: dict[str, Any], field: str) -> None:
    for wrong in (json.dumps(data[field] if data[field] is not None else 0.5), True, False):
        parsed = parse_answer(json.dumps({**data, field: wrong}), "stop")
        assert parsed.decision is None and parsed.error is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from(["stop", "length", None]), st.none() | st.text(max_size=20))
def test_parse_answer_never_raises(content: str, finish: str | None, reasoning: str | None) -> None:
    parsed = parse_answer(content, finish, reasoning)
    assert (parsed.decision is None) != (parsed.error is None)


# ------------------------------------------------------------------ the completion's envelope


def completion(**changes: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": answer(), "reasoning": None}
    body: dict[str, Any] = {
        "model": "nemotron",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 30,
            "prompt_tokens_details": {"cached_tokens": 8},
        },
    }
    return {**body, **changes}


def test_a_well_formed_completion_is_read() -> None:
    out = read_completion(completion(), 5.0)
    assert out.error is None and out.content == answer() and out.model == "nemotron"
    assert out.usage == (12, 30, 8) and out.finish_reason == "stop"


def test_reasoning_is_read_from_either_field_and_usage_may_be_absent() -> None:
    msg = {"role": "assistant", "content": None, "reasoning_content": "thinking"}
    out = read_completion(completion(usage=None, choices=[{"message": msg, "finish_reason": "length"}]), 1.0)
    assert out.error is None and out.reasoning == "thinking" and out.usage == (None, None, None)


def _message(**changes: Any) -> list[dict[str, Any]]:
    return [{"index": 0, "message": {"role": "assistant", "content": answer(), **changes}}]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (completion(usage={"prompt_tokens": "12", "completion_tokens": 3}), "usage.prompt_tokens"),
        (completion(usage={"prompt_tokens": True, "completion_tokens": 3}), "usage.prompt_tokens"),
        (completion(usage={"prompt_tokens": 1.5}), "usage.prompt_tokens"),
        (completion(usage={"prompt_tokens": -1}), "usage.prompt_tokens"),
        (completion(usage=[12, 30]), "usage"),
        (completion(usage={"prompt_tokens_details": {"cached_tokens": "4"}}), "cached_tokens"),
        (completion(usage={"prompt_tokens_details": []}), "prompt_tokens_details"),
        (completion(model={"id": "nemotron"}), "model"),
        (completion(model=["nemotron"]), "model"),
        (completion(choices={"0": {}}), "choices"),
        (completion(choices=[]), "choices"),
        (completion(choices=["text"]), "choices.0"),
        (completion(choices=[{"message": "hi", "finish_reason": "stop"}]), "choices.0.message"),
        (completion(choices=[{"finish_reason": "stop"}]), "choices.0.message"),
        (completion(choices=_message(content=[{"type": "text", "text": "x"}])), "content"),
        (completion(choices=_message(content=42)), "content"),
        (completion(choices=_message(reasoning={"text": "x"})), "reasoning"),
        (completion(choices=[{**_message()[0], "finish_reason": 1}]), "finish_reason"),
        ([completion()], "(root)"),
        ("chat.completion", "(root)"),
        (None, "(root)"),
    ],
)
def test_valid_json_of_the_wrong_shape_is_a_bad_response(body: Any, where: str) -> None:
    out = read_completion(body, 3.0)
    assert out.error is not None and out.error.startswith("bad response: "), out.error
    assert where in out.error
    assert out.content is None and out.usage == (None, None, None) and out.model is None
    assert not out.retryable and out.latency_ms == 3.0


@pytest.mark.parametrize("field", ["content", "reasoning"])
def test_content_or_reasoning_over_the_character_cap_is_too_large(field: str) -> None:
    short = {"content": "{}", "reasoning": None}
    out = read_completion(completion(choices=_message(**{**short, field: "x" * 101})), 1.0, max_chars=100)
    assert out.error == f"response too large: {field} over 100 characters"
    assert out.content is None and out.reasoning is None
    at_cap = completion(choices=_message(**{**short, field: "x" * 100}))
    assert read_completion(at_cap, 1.0, max_chars=100).error is None
