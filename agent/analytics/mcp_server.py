"""The analytics tools over the Model Context Protocol (official `mcp` SDK, 2.x low-level `Server`).

Contracts:
- `build_server(ctx)` serves exactly `agent.analytics.tools.TOOLS`: `tools/list` gives each tool's name,
  description and input JSON schema, annotated read-only (`readOnlyHint`, not destructive, idempotent,
  closed world); `tools/call` runs `tools.call` (the same validation as `ask`) in a worker thread and
  returns the result as JSON text plus `structuredContent`; a `ToolError` is a result with `isError`.
  So an MCP client gets the same results as `ask`'s tools, and nothing it can call writes the ledger.
- `serve_stdio(settings)` serves one client over stdin/stdout until it disconnects (nothing else is
  written to stdout). `serve_http(settings, port)` serves streamable HTTP at `http://127.0.0.1:<port>/mcp`,
  bound to the loopback interface only (the SDK's DNS-rebinding protection on).
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server
from starlette.applications import Starlette

from agent.analytics import tools
from agent.analytics.context import ToolContext
from agent.analytics.models import ToolError
from agent.config import Settings

HOST = "127.0.0.1"
INSTRUCTIONS = (
    "tradegraph's read-only analytics tools: stored crypto candles, statistics with stated definitions, "
    "TA-Lib indicators, backtests that are not recorded, and the ledger's runs and decisions. Dates are UTC "
    "(YYYY-MM-DD), windows [start, end). Call list_market_data to see what is stored."
)
_READ_ONLY = types.ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)


def mcp_tools() -> list[types.Tool]:
    """Every analytics tool as an MCP tool description."""
    return [
        types.Tool(name=t.name, description=t.description, input_schema=t.schema(), annotations=_READ_ONLY)
        for t in tools.TOOLS.values()
    ]


def build_server(ctx: ToolContext) -> Server[Any]:
    """An MCP server over the analytics tools (see the module contract)."""

    async def list_tools(_ctx: Any, _params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=mcp_tools())

    async def call_tool(_ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        result = await anyio.to_thread.run_sync(tools.call, ctx, params.name, params.arguments or {})
        return types.CallToolResult(
            content=[types.TextContent(text=tools.result_text(result))],
            structured_content=result.model_dump(mode="json"),
            is_error=isinstance(result, ToolError),
        )

    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("tradegraph")
    except PackageNotFoundError:  # a checkout used without installing
        release = "0"
    return Server(
        "tradegraph",
        version=release,
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def serve_stdio(settings: Settings) -> None:
    """Serve the tools to one client over stdin/stdout."""
    from mcp.server.stdio import stdio_server

    ctx = ToolContext(settings)
    server = build_server(ctx)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    try:
        anyio.run(main)
    finally:
        ctx.close()


def http_app(ctx: ToolContext) -> Starlette:
    """The streamable-HTTP ASGI app (path `/mcp`), with the SDK's DNS-rebinding protection for 127.0.0.1."""
    return build_server(ctx).streamable_http_app(host=HOST)


def serve_http(settings: Settings, port: int) -> None:
    """Serve the tools over streamable HTTP on 127.0.0.1:`port` (path `/mcp`) until interrupted."""
    import uvicorn

    ctx = ToolContext(settings)
    try:
        uvicorn.run(http_app(ctx), host=HOST, port=port, log_level="warning")
    finally:
        ctx.close()
