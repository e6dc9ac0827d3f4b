"""The bounds of one question and the record of how it went: limits, trace steps, the result.

Contracts:
- `AskLimits` bounds a question in tool calls, tokens (prompt + completion, summed over the model calls,
  as the server's `usage` reports them) and wall time. Defaults are below; `tradegraph ask` and `tg.ask`
  take each as an option. Whichever bound is hit first ends the question with `stopped` naming it and a
  clear `answer` saying so (`bound_message`).
- `TraceStep` is one tool call as the trace shows it: its number (what the answer cites, `[#n]`), tool,
  arguments, a short summary of the result or its error, and its duration. Model text in a trace is data;
  whoever prints it escapes it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Stop = Literal["answered", "tool_calls", "tokens", "time", "model_error"]
"""How a question ended: the model answered, a bound was hit, or the endpoint failed."""


class AskLimits(BaseModel):
    """Bounds of one question (see the module contract)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tool_calls: int = Field(12, ge=0, le=200)
    max_tokens: int = Field(60_000, ge=256)
    """Prompt + completion tokens over all model calls of the question."""
    max_seconds: float = Field(300.0, gt=0)
    answer_tokens: int = Field(1024, ge=16)
    """Completion tokens of one model call."""


class TraceStep(BaseModel):
    """One tool call of a question."""

    model_config = ConfigDict(frozen=True)

    n: int
    tool: str
    arguments: dict[str, Any]
    ok: bool
    summary: str
    ms: float


class AskResult(BaseModel):
    """A question's answer, how it ended, and its trace."""

    model_config = ConfigDict(frozen=True)

    question: str
    answer: str
    stopped: Stop
    steps: list[TraceStep]
    model_calls: int
    tokens: int
    seconds: float
    model: str
    session: str | None = None
    trace_path: str | None = None

    @property
    def ungrounded(self) -> bool:
        """The model answered without one successful tool call: its figures come from no tool (a small model
        such as the embedded SmolLM2 answers in prose without calling tools)."""
        return self.stopped == "answered" and not any(s.ok for s in self.steps)


def bound_message(stop: Stop, limits: AskLimits, partial: str) -> str:
    """The answer of a question a bound stopped: which bound, its value, the option that raises it."""
    what = {
        "tool_calls": f"it used its {limits.max_tool_calls} tool calls (--max-tool-calls)",
        "tokens": f"it used its {limits.max_tokens} tokens (--max-tokens)",
        "time": f"it ran for its {limits.max_seconds:g} s (--max-seconds)",
    }.get(stop, stop)
    head = f"Stopped before a final answer: {what}."
    return f"{head} Last model text: {partial}" if partial.strip() else head
