"""`tradegraph run` (the paper-trading daemon, live or replayed) and `tradegraph status`.

Contracts:
- Thin wrappers over `agent.daemon`; heavy imports happen inside the commands.
- `run` logs (text or JSON, `--log-format` or `settings.log_format`) to stderr and to a rotating file
  `<data_dir>/logs/daemon.log`, with every configured secret redacted. SIGTERM and SIGINT stop it within
  seconds (exit 0); a tick still running after the grace period is abandoned (it resumes on restart).
- A second daemon on the same database, bad options or a bad strategy exit 1 with one `error:` line.
- `status` prints Rich tables; it never changes the database. Its `state` is the daemon's health
  (`agent.daemon.health`): alive, degraded (with the reason and the last error), stalled or stopped.
"""

from __future__ import annotations

import os

import typer


def register(app: typer.Typer) -> None:
    """Add `run` and `status`."""
    app.command("run")(run)
    app.command("status")(status)


def run(
    replay: bool = typer.Option(False, "--replay", help="replay the bundled data on a simulated clock"),
    speed: float = typer.Option(3600.0, "--speed", help="replay: market seconds per real second"),
    start: str | None = typer.Option(
        None, "--start", help="replay: first bar (UTC); default 30 days before the end"
    ),
    end: str | None = typer.Option(
        None, "--end", help="replay: end of the window (exclusive); default: data end"
    ),
    strategy: str | None = typer.Option(None, "--strategy", "-s", help="default: the configured strategy"),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="strategy parameter NAME=VALUE"),
    run_id: str | None = typer.Option(None, "--run-id", help="default: derived from the configuration"),
    max_catchup: int = typer.Option(24, "--max-catchup", help="most bars ticked per wake-up"),
    lease_ttl: float = typer.Option(30.0, "--lease-ttl", help="seconds until a silent lease is stale"),
    history_bars: int | None = typer.Option(
        None,
        "--history-bars",
        help="bars of history before the first bar [default: as backtests: 1000 or the strategy's longer "
        "warm-up; 8760 for llm and hybrid]",
    ),
    discard_after: int = typer.Option(
        3, "--discard-after", help="failures in a row after which a bar's checkpoint is discarded and re-run"
    ),
    log_format: str | None = typer.Option(None, "--log-format", help="text or json; default: settings"),
) -> None:
    """Run the paper-trading daemon: one tick per closed candle, until stopped (or the replay ends)."""
    from agent.config import load_settings
    from agent.daemon.logging import configured_secrets, setup_logging
    from agent.daemon.service import Daemon, DaemonOptions
    from agent.daemon.signals import StopSignal, install
    from agent.errors import ConfigError
    from agent.textsafe import for_plain_terminal
    from strategies.registry import parse_params

    settings = load_settings()
    fmt = log_format or settings.log_format
    if fmt not in ("text", "json"):
        raise ConfigError(f"invalid --log-format {fmt!r}: use text or json")
    options = DaemonOptions(
        replay=replay,
        speed=speed,
        start=start,
        end=end,
        run_id=run_id,
        strategy=strategy,
        params=dict(parse_params(param or [])),
        max_bars=max_catchup,
        lease_ttl_s=lease_ttl,
        history_bars=history_bars,
        discard_after=discard_after,
    )
    setup_logging(fmt, settings.data_dir / "logs", configured_secrets(settings))
    stop = StopSignal()
    restore = install(stop)
    try:
        result = Daemon(settings, options, stop=stop, on_abandon=_exit_now).run()
    finally:
        restore()
    reason = for_plain_terminal(result.reason)  # may quote an error: shown, never interpreted
    print(f"stopped ({reason}): run {result.run_id}, last bar {_iso(result.last_bar)}")


def status(
    run_id: str | None = typer.Option(None, "--run-id", help="default: the daemon's run"),
    limit: int = typer.Option(10, "--limit", help="decisions and problems shown"),
) -> None:
    """Show the daemon's health (alive, degraded, stalled, stopped), last and next tick, positions, equity,
    decisions and problems."""
    from rich.console import Console

    from agent.config import load_settings
    from agent.daemon.clock import SystemClock
    from agent.daemon.status import read_status, render
    from agent.db.session import open_db

    settings = load_settings()
    engine, factory = open_db(settings.db_url, migrate=False)  # read-only: never migrates
    try:
        snapshot = read_status(factory, SystemClock().now_ms(), run_id, limit)
    finally:
        engine.dispose()
    Console().print(render(snapshot))


def _exit_now() -> None:
    """End the process without waiting for the abandoned tick's thread (its transaction rolls back)."""
    os._exit(0)


def _iso(ms: int | None) -> str:
    if ms is None:
        return "none"
    import pandas as pd

    return f"{pd.Timestamp(ms, unit='ms', tz='UTC'):%Y-%m-%d %H:%M} UTC"
