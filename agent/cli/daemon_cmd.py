"""`tradegraph run` (the paper-trading daemon, live or replayed) and `tradegraph status`.

Contracts:
- Thin wrappers over `agent.daemon`; heavy imports happen inside the commands.
- `run` logs (text or JSON, `--log-format` or `settings.log_format`) to stderr and to a rotating file
  `<data_dir>/logs/daemon.log`, with every configured secret redacted. SIGTERM and SIGINT stop it within
  seconds (exit 0); a tick still running after the grace period is abandoned (it resumes on restart).
  A replay ends with one summary line on stdout (`agent.cli.run_summary`): bars, decisions, fills, return,
  final equity.
- A second daemon on the same database, bad options or a bad strategy exit 1 with one `error:` line.
- `status` prints Rich tables; it never changes the database. Its `state` is the daemon's health
  (`agent.daemon.health`): alive, degraded (with the reason and the last error), stalled or stopped.
  `status --watch` re-reads and redraws the view every `--interval` seconds (`rich.live`) until Ctrl-C
  (exit 0) or `--count` refreshes.
"""

from __future__ import annotations

import os

import typer

from agent.cli import verbosity
from agent.cli.dates import iso_date


def register(app: typer.Typer) -> None:
    """Add `run` and `status`."""
    app.command("run")(run)
    app.command("status")(status)


def run(
    replay: bool = typer.Option(False, "--replay", help="replay the bundled data on a simulated clock"),
    speed: float = typer.Option(3600.0, "--speed", help="replay: market seconds per real second"),
    start: str | None = typer.Option(
        None,
        "--start",
        callback=iso_date,
        help="replay: first bar (ISO date or timestamp, UTC); default 30 days before the end",
    ),
    end: str | None = typer.Option(
        None, "--end", callback=iso_date, help="replay: end of the window (exclusive, ISO); default: data end"
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
    from agent.cli.strategies_cmd import check_strategy
    from agent.config import load_settings
    from agent.daemon.logging import configured_secrets, setup_logging
    from agent.daemon.service import Daemon, DaemonOptions
    from agent.daemon.signals import StopSignal, install
    from agent.errors import ConfigError
    from agent.textsafe import for_plain_terminal
    from strategies.registry import parse_params

    settings = load_settings()
    check_strategy(strategy or settings.strategy)
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
    # replaces the root callback's --verbose handler; the HTTP clients' loggers stay quiet unless --verbose
    quiet = not verbosity.is_verbose()
    setup_logging(fmt, settings.data_dir / "logs", configured_secrets(settings), quiet=quiet)
    verbosity.quiet_native_logs()
    stop = StopSignal()
    restore = install(stop)
    try:
        result = Daemon(settings, options, stop=stop, on_abandon=_exit_now).run()
    finally:
        restore()
    reason = for_plain_terminal(result.reason)  # may quote an error: shown, never interpreted
    print(f"stopped ({reason}): run {result.run_id}, last bar {_iso(result.last_bar)}")
    if replay:
        print(_replay_summary(settings.db_url, result.run_id, settings.broker.initial_cash))


def status(
    run_id: str | None = typer.Option(None, "--run-id", help="default: the daemon's run"),
    limit: int = typer.Option(10, "--limit", help="decisions and problems shown"),
    watch: bool = typer.Option(False, "--watch", "-w", help="refresh the view until Ctrl-C"),
    interval: float = typer.Option(2.0, "--interval", min=0.0, help="--watch: seconds between refreshes"),
    count: int | None = typer.Option(
        None, "--count", min=1, help="--watch: stop after this many refreshes (default: until Ctrl-C)"
    ),
) -> None:
    """Show the daemon's health, last and next tick, positions, equity, decisions and problems.

    Health is alive, degraded, stalled or stopped; with --watch, the view stays up to date until Ctrl-C."""
    import threading

    from rich.console import Console
    from rich.live import Live

    from agent.config import load_settings
    from agent.daemon.clock import SystemClock
    from agent.daemon.status import read_status, render
    from agent.db.session import open_db

    settings = load_settings()
    engine, factory = open_db(settings.db_url, migrate=False)  # read-only: never migrates
    try:
        if not watch:
            Console().print(render(read_status(factory, SystemClock().now_ms(), run_id, limit)))
            return
        pause = threading.Event()  # never set: its wait() is an interruptible sleep between refreshes
        refreshes = 0
        try:
            with Live(console=Console(), auto_refresh=False, redirect_stderr=False) as live:
                while True:
                    snapshot = read_status(factory, SystemClock().now_ms(), run_id, limit)
                    live.update(render(snapshot), refresh=True)
                    refreshes += 1
                    if count is not None and refreshes >= count:
                        break
                    pause.wait(interval)
        except KeyboardInterrupt:  # Ctrl-C is how a watch ends: not an error
            pass
    finally:
        engine.dispose()


def _replay_summary(db_url: str, run_id: str, initial_cash: float) -> str:
    """The line `run --replay` ends with: bars, decisions, fills, return, final equity."""
    from agent.cli.run_summary import read_summary, summary_line
    from agent.db.session import open_db

    engine, factory = open_db(db_url, migrate=False)
    try:
        return summary_line(read_summary(factory, run_id, initial_cash))
    finally:
        engine.dispose()


def _exit_now() -> None:
    """End the process without waiting for the abandoned tick's thread (its transaction rolls back)."""
    os._exit(0)


def _iso(ms: int | None) -> str:
    if ms is None:
        return "none"
    import pandas as pd

    return f"{pd.Timestamp(ms, unit='ms', tz='UTC'):%Y-%m-%d %H:%M} UTC"
