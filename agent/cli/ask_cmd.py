"""`tradegraph ask "QUESTION"`: the analytics agent answers from tradegraph's own data, engine and ledger.

Contracts:
- Runs `agent.analytics.ask.ask` with the configured endpoint (`[llm]`; no base URL = the embedded model)
  and the bounds given (`--max-tool-calls`, `--max-tokens`, `--max-seconds`; defaults in
  `agent.analytics.limits.AskLimits`). `--session NAME` continues a stored conversation.
- Prints the answer, then the compact trace (one row per tool call: number, tool, arguments, result or
  error, milliseconds), then how the question ended and where the trace is stored. Model text and tool
  text are escaped for the terminal (`agent.textsafe`).
- An answer without one successful tool call is flagged: its figures come from no tool.
- Exit status 0 when the model answered, 3 when a bound stopped the question, 1 when the model could not
  be reached (the answer says why) or on bad input (one line).
- Read-only: the ledger is never written (the tools' database refuses writes).
"""

from __future__ import annotations

import json

import typer

_EXIT_BOUND = 3


def register(app: typer.Typer) -> None:
    """Add the `ask` command."""
    app.command("ask")(ask_command)


def ask_command(
    question: str = typer.Argument(..., help="the question, in plain language"),
    session: str | None = typer.Option(None, "--session", help="continue (or start) this named conversation"),
    max_tool_calls: int = typer.Option(12, "--max-tool-calls", min=0, help="tool calls per question"),
    max_tokens: int = typer.Option(60_000, "--max-tokens", min=256, help="model tokens per question"),
    max_seconds: float = typer.Option(300.0, "--max-seconds", min=0.001, help="wall time per question"),
    show_trace: bool = typer.Option(True, "--trace/--no-trace", help="print the tool calls"),
) -> None:
    """Ask a question about markets, backtests, runs or decisions; the agent answers with tools."""
    from rich.console import Console
    from rich.table import Table

    from agent.analytics.ask import ask
    from agent.analytics.limits import AskLimits
    from agent.config import load_settings
    from agent.textsafe import for_terminal

    limits = AskLimits(max_tool_calls=max_tool_calls, max_tokens=max_tokens, max_seconds=max_seconds)
    result = ask(question, load_settings(), limits=limits, session=session)
    console = Console()
    console.print(for_terminal(result.answer))
    if show_trace and result.steps:
        table = Table(title="tool calls", show_lines=False)
        for col in ("#", "tool", "arguments", "result", "ms"):
            table.add_column(col, overflow="fold")
        for s in result.steps:
            result_text = for_terminal(s.summary, "" if s.ok else "red")
            table.add_row(str(s.n), s.tool, for_terminal(json.dumps(s.arguments)), result_text, f"{s.ms:.0f}")
        console.print(table)
    console.print(
        for_terminal(
            f"{result.stopped}: {result.model_calls} model calls, {len(result.steps)} tool calls, "
            f"{result.tokens} tokens, {result.seconds:.1f} s, model {result.model}; "
            f"trace: {result.trace_path}",
            "dim",
        )
    )
    if result.ungrounded:
        console.print(
            "warning: the model called no tool, so no figure above comes from tradegraph's data or engine "
            "(small models such as the embedded SmolLM2 do not call tools; see docs/analytics.md)",
            style="yellow",
        )
    if result.stopped == "model_error":
        raise typer.Exit(1)
    if result.stopped != "answered":
        raise typer.Exit(_EXIT_BOUND)
