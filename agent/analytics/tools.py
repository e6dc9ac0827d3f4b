"""The analytics tools as rows: name, description, typed input and output, and the plain function.

Role: the one registry `ask`, the MCP server and notebooks read. Each tool is a plain typed function
`(ToolContext, Input) -> Output` in a sibling module; this module names them and runs them safely.

Contracts:
- Every tool is read-only (see `agent.analytics.context`): market data, statistics, indicators, backtests
  (not recorded), runs and the ledger. None places orders, records runs or changes settings.
- `call(ctx, name, arguments)` validates `arguments` (a dict or JSON text) against the tool's input model
  and runs it. Anything wrong with the call becomes a `ToolError` result with one line the model can act
  on: an unknown tool (listing the known ones), invalid JSON, a validation error (the field and what is
  expected), or a `TradegraphError` from below (unknown symbol, empty window, unknown strategy or run).
  Any other exception is a defect: its traceback is logged (`tradegraph.analytics`) and the model gets a
  `ToolError` naming the tool and the exception, so one broken tool does not end the question.
- `openai_tools()` is the `tools` list of a chat-completion request (function name, description, the
  input's JSON schema).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from agent.analytics import (
    backtests,
    charts,
    explain,
    indicators,
    ledger,
    market_data,
    regimes,
    runs,
    statistics,
)
from agent.analytics.context import ToolContext
from agent.analytics.models import ToolError, ToolInput, ToolOutput
from agent.errors import TradegraphError

log = logging.getLogger("tradegraph.analytics")

I = TypeVar("I", bound=ToolInput)  # noqa: E741
O = TypeVar("O", bound=ToolOutput)  # noqa: E741


@dataclass(frozen=True)
class Tool(Generic[I, O]):
    """One tool: its name, what it does (shown to the model), its input and output types, its function."""

    name: str
    description: str
    input: type[I]
    output: type[O]
    run: Callable[[ToolContext, I], O]

    def schema(self) -> dict[str, Any]:
        """The input's JSON schema, as a function's `parameters`."""
        return self.input.model_json_schema()


def _tool(name: str, run: Callable[[ToolContext, I], O], input: type[I], output: type[O]) -> Tool[I, O]:
    doc = (run.__doc__ or "").strip().splitlines()[0]
    return Tool(name, doc, input, output, run)


TOOLS: dict[str, Tool[Any, Any]] = {
    t.name: t
    for t in (
        _tool(
            "list_market_data", market_data.symbols_tool, market_data.SymbolsInput, market_data.SymbolsResult
        ),
        _tool("candles", market_data.candles, market_data.CandlesInput, market_data.CandlesResult),
        _tool("returns", market_data.returns_tool, market_data.ReturnsInput, market_data.ReturnsResult),
        _tool("statistics", statistics.stats_tool, statistics.StatsInput, statistics.StatsResult),
        _tool(
            "correlation",
            statistics.correlation_tool,
            statistics.CorrelationInput,
            statistics.CorrelationResult,
        ),
        _tool("rolling", statistics.rolling_tool, statistics.RollingInput, statistics.RollingResult),
        _tool("regimes", regimes.regimes_tool, regimes.RegimesInput, regimes.RegimesResult),
        _tool("indicator", indicators.indicator_tool, indicators.IndicatorInput, indicators.IndicatorResult),
        _tool("backtest", backtests.backtest_tool, backtests.BacktestInput, backtests.BacktestResult),
        _tool("sweep", backtests.sweep_tool, backtests.SweepInput, backtests.SweepResult),
        _tool("list_runs", runs.runs_tool, runs.RunsInput, runs.RunsResult),
        _tool("compare_runs", runs.compare_tool, runs.CompareInput, runs.CompareResult),
        _tool("run_trades", ledger.trades_tool, ledger.RunSlice, ledger.TradesResult),
        _tool("run_decisions", ledger.decisions_tool, ledger.RunSlice, ledger.DecisionsResult),
        _tool("explain_decision", explain.explain_tool, explain.ExplainInput, explain.ExplainResult),
        _tool("llm_usage", ledger.usage_tool, ledger.UsageInput, ledger.UsageResult),
        _tool("chart", charts.chart_tool, charts.ChartInput, charts.ChartResult),
    )
}
"""Every analytics tool by name."""


def call(ctx: ToolContext, name: str, arguments: str | Mapping[str, Any] | None) -> ToolOutput:
    """Run tool `name` with `arguments`; a bad call is a `ToolError` (see the module contract)."""
    tool = TOOLS.get(name)
    if tool is None:
        return ToolError(error=f"unknown tool {name!r}; tools: {', '.join(TOOLS)}")
    try:
        args = json.loads(arguments or "{}") if isinstance(arguments, str) else dict(arguments or {})
    except json.JSONDecodeError as e:
        return ToolError(error=f"{name}: arguments are not valid JSON ({e.msg} at position {e.pos})")
    if not isinstance(args, dict):
        return ToolError(error=f"{name}: arguments must be a JSON object")
    try:
        parsed = tool.input.model_validate(args)
    except ValidationError as e:
        return ToolError(error=f"{name}: {validation_line(e)}")
    try:
        result: ToolOutput = tool.run(ctx, parsed)
    except TradegraphError as e:
        return ToolError(error=f"{name}: {e}")
    except Exception as e:  # noqa: BLE001 - a defect in one tool must not end the question (module contract)
        log.exception("tool %s failed", name)
        line = " ".join(str(e).split())
        return ToolError(
            error=f"{name}: internal error ({type(e).__name__}: {line}); the log has the details"
        )
    return result


def validation_line(e: ValidationError) -> str:
    """The first validation problem as one line: the field and what is wrong."""
    err = e.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "arguments"
    msg = str(err["msg"]).removeprefix("Value error, ")
    extra = f" (got {err['input']!r})" if err["type"] in ("literal_error", "extra_forbidden") else ""
    return f"{where}: {msg}{extra}"


def openai_tools() -> list[dict[str, Any]]:
    """The `tools` of a chat-completion request: every tool as a function with its input schema."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.schema()},
        }
        for t in TOOLS.values()
    ]


def result_text(result: ToolOutput) -> str:
    """A tool result as the compact JSON the model reads."""
    return result.model_dump_json()
