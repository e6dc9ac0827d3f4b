"""`tradegraph serve`: the web dashboard and `/api/v1` (agent.web) on the daemon's database.

Contracts:
- Binds 127.0.0.1 by default (and then answers only requests addressed to a loopback name). Any other
  `--host` needs a token (`--token`, or `TRADEGRAPH_WEB_TOKEN`): refused with one line otherwise. With a
  token every request needs it (open the dashboard once with `?token=...`); without one, a random token
  is made for the controls and given to the dashboard's own pages only.
- The database is opened read-only except for the control table (`agent.web.db`); its schema must be
  current (`tradegraph db upgrade`, or start the daemon, first).
"""

from __future__ import annotations

import os

import typer

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "TRADEGRAPH_WEB_TOKEN"


def register(app: typer.Typer) -> None:
    """Add the `serve` command."""
    app.command("serve")(serve_command)


def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="interface to bind; not loopback needs --token"),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port"),
    token: str | None = typer.Option(
        None,
        "--token",
        help=f"required token (at least 8 characters; default ${TOKEN_ENV})",
        show_default=False,
    ),
) -> None:
    """Serve the web dashboard and REST API (/api/v1) on the configured database."""
    from agent.errors import ConfigError

    token = token or os.environ.get(TOKEN_ENV) or None
    loopback = host in LOOPBACK
    if not loopback and token is None:
        raise ConfigError(f"--host {host} is not the loopback interface: give --token (or ${TOKEN_ENV})")
    if token is not None and len(token) < 8:
        raise ConfigError("the dashboard token must have at least 8 characters")

    import uvicorn

    from agent.config import load_settings
    from agent.web import close, create_app

    app = create_app(load_settings(), token=token, loopback_only=loopback)
    shown = "[::1]" if host == "::1" else host
    suffix = "?token=<your token>" if token else ""
    print(f"tradegraph dashboard: http://{shown}:{port}/{suffix} (Ctrl-C stops it)", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
    finally:
        close(app)
