"""Test fakes for the LLM stage: `FakeGateway` implements `DecisionGateway` with scripted answers.

Contracts:
- `decide_many` returns one `DecisionResult` per request, in order, like the real gateway; it records every
  request it saw in `requests`.
- Answers are looked up per symbol (a queue: each request consumes one answer; an empty queue falls back to
  `default`), or computed by a callable. An answer is:
  - a `TradeDecision`: returned as-is, not abstained (even if its action is not allowed: like the real
    gateway, the risk layer is what rejects it);
  - a `str`: the raw model text, parsed and validated by `agent.llm.parse` (so "{oops" abstains with an
    "invalid json: ..." reason, as the real gateway does after its repair retry fails);
  - `Abstain(reason)`: an abstained HOLD with that reason (e.g. "timeout", "circuit open");
  - a callable `request -> answer`.
- The default answer is a plain (not abstained) HOLD whose rationale says it came from the fake.
- `unavailable=True` makes `decide_many` raise `LLMUnavailable`, the one exception the protocol allows.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Union

from agent.errors import LLMUnavailable
from agent.llm.parse import parse_answer
from agent.llm.schema import DecisionRequest, DecisionResult, TradeDecision, hold


@dataclass(frozen=True)
class Abstain:
    """A scripted abstention with its reason."""

    reason: str


Answer = Union[TradeDecision, str, Abstain, Callable[[DecisionRequest], "Answer"]]  # noqa: UP007


def _answers(value: Answer | Sequence[Answer]) -> Sequence[Answer]:
    """One scripted answer or a sequence of them, as a sequence (a string is one answer)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]
    return value


class FakeGateway:
    """A `DecisionGateway` that answers from a script instead of a model."""

    def __init__(
        self,
        answers: Mapping[str, Answer | Sequence[Answer]] | Callable[[DecisionRequest], Answer] | None = None,
        *,
        default: Answer | None = None,
        unavailable: bool = False,
    ) -> None:
        """Create a fake.

        Args:
            answers: Per-symbol answers (one, or a sequence consumed in order), or a callable for all.
            default: What to answer when nothing is scripted (None = a plain HOLD).
            unavailable: Raise `LLMUnavailable` from `decide_many` (endpoint down).
        """
        self.requests: list[DecisionRequest] = []
        self.unavailable = unavailable
        self._default = default
        self._fn = answers if callable(answers) else None
        self._queues: defaultdict[str, deque[Answer]] = defaultdict(deque)
        if isinstance(answers, Mapping):
            for symbol, value in answers.items():
                self.script(symbol, *_answers(value))

    def script(self, symbol: str, *answers: Answer) -> None:
        """Queue answers for the next requests about `symbol`."""
        self._queues[symbol].extend(answers)

    async def decide_many(self, requests: Sequence[DecisionRequest]) -> list[DecisionResult]:
        """One scripted result per request, in order."""
        if self.unavailable:
            raise LLMUnavailable("fake gateway: endpoint unavailable")
        self.requests.extend(requests)
        return [self._answer(r) for r in requests]

    def _pick(self, request: DecisionRequest) -> Answer | None:
        queue = self._queues.get(request.symbol)
        if queue:
            return queue.popleft()
        if self._fn is not None:
            return self._fn(request)
        return self._default

    def _answer(self, request: DecisionRequest) -> DecisionResult:
        answer = self._pick(request)
        while callable(answer):
            answer = answer(request)
        if answer is None:
            answer = hold(request.symbol, "fake gateway: no scripted answer, holding")
        if isinstance(answer, Abstain):
            return _abstained(request, answer.reason, None)
        if isinstance(answer, str):
            parsed = parse_answer(answer, "stop")
            if parsed.decision is None:
                return _abstained(request, str(parsed.error), answer)
            answer = parsed.decision
        return DecisionResult(
            request=request,
            decision=answer,
            abstained=False,
            model="fake",
            response_text=answer.model_dump_json(),
        )


def _abstained(request: DecisionRequest, reason: str, text: str | None) -> DecisionResult:
    return DecisionResult(
        request=request,
        decision=hold(request.symbol, f"abstained: {reason}"),
        abstained=True,
        reason=reason,
        model="fake",
        response_text=text,
    )
