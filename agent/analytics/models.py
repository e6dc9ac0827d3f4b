"""Records shared by every analytics tool: the input base, the error result and the window fields.

Contracts:
- Tool inputs derive from `ToolInput` (pydantic, frozen, `extra="forbid"`): an unknown argument is a
  validation error, which the registry turns into a `ToolError` the model reads.
- Tool outputs derive from `ToolOutput` (frozen). Floats that are undefined (no data, zero variance) are
  None in an output, never NaN, so every result is valid JSON.
- `ToolError` is the one error result: `error` is one line saying what was wrong and how to fix it.
- Dates are UTC (`YYYY-MM-DD` or an ISO timestamp; naive = UTC); `start` is inclusive, `end` exclusive
  (bar open times), the store's convention.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Timeframe = Literal["1m", "5m", "15m", "30m", "1h", "4h", "1d"]
"""Timeframes a tool accepts; a timeframe without its own file is resampled from a shorter stored one."""
Period = Literal["bar", "day", "week", "month", "quarter"]
"""Calendar periods (UTC) figures can be grouped by; `bar` = no grouping."""


class ToolInput(BaseModel):
    """Base of every tool's arguments: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolOutput(BaseModel):
    """Base of every tool's result."""

    model_config = ConfigDict(frozen=True)


class ToolError(ToolOutput):
    """A tool call that could not run: one line naming the problem, which the model can correct."""

    error: str


class Window(ToolInput):
    """A symbol, a timeframe and a date window [start, end)."""

    symbol: str = Field(description="BASE/QUOTE, e.g. BTC/USDT")
    timeframe: Timeframe = "1h"
    start: str | None = Field(
        None, description="first bar, UTC date YYYY-MM-DD (inclusive); None = first stored"
    )
    end: str | None = Field(None, description="UTC date YYYY-MM-DD (exclusive); None = after the last stored")

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str) -> str:
        return check_symbol(v)

    @field_validator("start", "end")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        return check_date(v)

    @model_validator(mode="after")
    def _order(self) -> Window:
        check_order(self.start, self.end)
        return self


def check_symbol(v: str) -> str:
    """`v` upper-cased; it must look like BASE/QUOTE."""
    s = v.strip().upper()
    if "/" not in s or s.startswith("/") or s.endswith("/"):
        raise ValueError(f"symbol {v!r} must look like BASE/QUOTE, e.g. BTC/USDT")
    return s


def check_date(v: str | None) -> str | None:
    """`v` unchanged when it parses as a date or timestamp."""
    if v is None:
        return v
    try:
        pd.Timestamp(v)
    except (ValueError, TypeError):
        raise ValueError(f"{v!r} is not a date; use YYYY-MM-DD or an ISO timestamp (UTC)") from None
    return v


def check_order(start: str | None, end: str | None) -> None:
    """Refuse a window whose end is not after its start."""
    if start is not None and end is not None and pd.Timestamp(end) <= pd.Timestamp(start):
        raise ValueError(f"end {end} must be after start {start}")


def num(value: Any) -> float | None:
    """A float fit for JSON: NaN and infinities become None."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def stamp(ts: Any) -> str:
    """A bar time as ISO text (UTC)."""
    return pd.Timestamp(ts).isoformat()
