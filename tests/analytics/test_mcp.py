"""`tradegraph mcp` over stdio, driven by the official SDK's client: the tool list, three calls with the same
results as `ask`'s tools, a tool error, and the read-only annotations."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from agent.analytics import tools
from agent.analytics.context import ToolContext
from agent.config import load_settings

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("statistics", {"symbol": "ETH/USDT", "start": "2025-03-01", "end": "2025-04-01"}),
    ("correlation", {"symbols": ["BTC/USDT", "SOL/USDT"], "period": "month", "start": "2025-01-01"}),
    ("indicator", {"symbol": "BTC/USDT", "name": "rsi", "period": 14, "points": 3}),
]


def _server(tmp_path: Path) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEGRAPH_")}
    env["TRADEGRAPH_DATABASE_URL"] = f"sqlite:///{tmp_path / 'mcp.db'}"
    code = "import sys; from agent.cli.main import main; sys.argv = ['tradegraph', 'mcp']; main()"
    return StdioServerParameters(command=sys.executable, args=["-c", code], env=env, cwd=str(tmp_path))


async def _session(tmp_path: Path) -> tuple[list[Any], list[Any], Any]:
    async with Client(_server(tmp_path), read_timeout_seconds=120) as client:
        listed = await client.list_tools()
        results = [await client.call_tool(name, args) for name, args in CALLS]
        bad = await client.call_tool("statistics", {"symbol": "DOGE/USDT"})
    return listed.tools, results, bad


def test_an_sdk_client_lists_the_tools_and_gets_asks_results(tmp_path: Path) -> None:
    listed, results, bad = anyio.run(_session, tmp_path)
    assert [t.name for t in listed] == list(tools.TOOLS)
    by_name = {t.name: t for t in listed}
    assert by_name["backtest"].input_schema == tools.TOOLS["backtest"].schema()
    assert all(t.annotations.read_only_hint and not t.annotations.destructive_hint for t in listed)

    ctx = ToolContext(load_settings(database_url=f"sqlite:///{tmp_path / 'mcp.db'}"))
    for (name, args), got in zip(CALLS, results, strict=True):
        expected = tools.call(ctx, name, args)
        assert not got.is_error
        assert got.structured_content == expected.model_dump(mode="json")
        assert json.loads(got.content[0].text) == json.loads(tools.result_text(expected))
    ctx.close()
    assert bad.is_error and "unknown symbol 'DOGE/USDT'" in bad.content[0].text


@pytest.mark.parametrize("transport", ["ftp"])
def test_an_unknown_transport_is_refused(transport: str) -> None:
    from typer.testing import CliRunner

    from agent.cli.main import app

    result = CliRunner().invoke(app, ["mcp", "--transport", transport])
    assert result.exit_code == 2


def test_streamable_http_on_the_loopback_interface(tmp_path: Path) -> None:
    """The HTTP app on a socket bound (and listening) before the client connects: no race, no sleep."""
    import socket
    import threading

    import uvicorn

    from agent.analytics.mcp_server import HOST, http_app

    ctx = ToolContext(load_settings(database_url=f"sqlite:///{tmp_path / 'mcp.db'}"))
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(http_app(ctx), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()

    async def session() -> Any:
        async with Client(f"http://{HOST}:{port}/mcp") as client:
            return await client.call_tool(*CALLS[0])

    try:
        got = anyio.run(session)
    finally:
        server.should_exit = True
        thread.join()
        sock.close()
    assert got.structured_content == tools.call(ctx, *CALLS[0]).model_dump(mode="json")
    ctx.close()
