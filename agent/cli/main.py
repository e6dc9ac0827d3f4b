"""Entry point of the `tradegraph` console script.

Contracts:
- Every command group lives in its own module exposing `register(app)`; this module only wires them.
- `--version` prints `tradegraph <version>` and exits 0. `--verbose` shows INFO logs on stderr, among them
  the HTTP clients' request lines and llama.cpp's native messages, which are kept out otherwise
  (`agent.cli.verbosity`).
- Heavy imports (pandas, numba, ccxt, langgraph) happen inside commands, so `--help` stays fast.
- A `TradegraphError` (bad input, missing data, unreachable service) is printed as one line on stderr
  (credentials inside URLs masked, control characters escaped) with exit code 1; Typer's usage errors
  exit 2. Anything else is a bug and shows a traceback.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

import typer

from agent.cli import (
    agent_cmd,
    ask_cmd,
    backtest_cmd,
    config_cmd,
    daemon_cmd,
    data_cmd,
    db_cmd,
    eval_cmd,
    llm_cmd,
    mcp_cmd,
    runs_cmd,
    serve_cmd,
    strategies_cmd,
    verbosity,
)
from agent.errors import TradegraphError
from agent.redact import mask_url_credentials
from agent.textsafe import for_plain_terminal

app = typer.Typer(
    name="tradegraph",
    help="LLM trading agent for crypto markets: data, backtests, paper trading with a self-hosted model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _module in (
    config_cmd,
    db_cmd,
    data_cmd,
    backtest_cmd,
    runs_cmd,
    eval_cmd,
    llm_cmd,
    agent_cmd,
    daemon_cmd,
):
    _module.register(app)
ask_cmd.register(app)
mcp_cmd.register(app)
strategies_cmd.register(app)
serve_cmd.register(app)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"tradegraph {version('tradegraph')}")
        raise typer.Exit()


@app.callback()
def _root(
    _show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="show INFO logs, HTTP requests and llama.cpp's messages on stderr"
    ),
) -> None:
    """LLM trading agent for crypto markets: data, backtests, paper trading with a self-hosted model."""
    verbosity.configure(verbose)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    """Run the CLI, turning tradegraph errors into one-line messages and a non-zero exit."""
    # SIGTERM unwinds like Ctrl-C, so context managers (the local model server, the database) clean up
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except TradegraphError as e:
        print(f"error: {for_plain_terminal(mask_url_credentials(str(e)))}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
