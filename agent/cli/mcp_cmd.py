"""`tradegraph mcp`: the analytics tools served over the Model Context Protocol, read-only.

Contracts:
- `--transport stdio` (default): one client on stdin/stdout (what IDEs and agent hosts launch);
  `--transport http`: streamable HTTP at `http://127.0.0.1:PORT/mcp`, bound to the loopback interface.
- The tools are `ask`'s (`agent.analytics.tools`), with the same validation; the database is opened
  read-only, so no MCP client can write the ledger.
"""

from __future__ import annotations

from enum import StrEnum

import typer


class Transport(StrEnum):
    """How the MCP server talks to its client."""

    STDIO = "stdio"
    HTTP = "http"


def register(app: typer.Typer) -> None:
    """Add the `mcp` command."""
    app.command("mcp")(mcp_command)


def mcp_command(
    transport: Transport = typer.Option(
        Transport.STDIO, "--transport", help="stdio, or http (127.0.0.1 only)"
    ),
    port: int = typer.Option(8766, "--port", min=1, max=65535, help="HTTP port (with --transport http)"),
) -> None:
    """Serve tradegraph's read-only analytics tools over MCP (stdio, or streamable HTTP on 127.0.0.1)."""
    from agent.analytics.mcp_server import serve_http, serve_stdio
    from agent.config import load_settings

    settings = load_settings()
    if transport is Transport.STDIO:
        serve_stdio(settings)
    else:
        print(f"tradegraph MCP server: http://127.0.0.1:{port}/mcp (Ctrl-C stops it)", flush=True)
        serve_http(settings, port)
