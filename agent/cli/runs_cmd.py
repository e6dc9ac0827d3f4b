"""`tradegraph runs list | show | compare`: recorded runs of every kind, read back.

Contracts:
- Read-only: the database is opened without migrating (`open_db(..., migrate=False)`), so these commands
  never create or change a schema; a fresh database lists no runs.
- `runs list` shows the newest runs first, one row each, except sweeps: a sweep is one row (its id, its
  trial count and its best trial's figures); `runs list --sweep ID` lists that sweep's trials, best first.
- `runs compare ID ID ...` prints the same metric set (`agent.runs.metrics`) for every run side by side,
  whatever its kind (rule backtest, sweep trial, agent backtest, demo, daemon), beside buy & hold and cash
  and with the warnings (e.g. a window too short to annualise). `runs show ID ...` adds each kind's own
  figures (LLM usage, engine counters) and the report path.
- An unknown run or sweep id is a usage error: one line on stderr, exit status 2, nothing else printed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import typer

from agent.runs.kinds import RunKind

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")

_IDS = typer.Argument(..., help="run ids (see: tradegraph runs list)")


def register(app: typer.Typer) -> None:
    """Add the `runs` command group."""
    runs = typer.Typer(help="Recorded runs of every kind: list, show, compare.", no_args_is_help=True)
    runs.command("list")(runs_list)
    runs.command("show")(runs_show)
    runs.command("compare")(runs_compare)
    app.add_typer(runs, name="runs")


def runs_list(
    kind: RunKind | None = typer.Option(None, "--kind", help="only runs of this kind"),
    limit: int = typer.Option(20, "--limit", min=1, help="how many rows (a sweep is one row)"),
    sweep: str | None = typer.Option(None, "--sweep", help="list the trials of this sweep, best first"),
) -> None:
    """List recorded runs, newest first; each sweep is one row with its best trial."""
    from rich.console import Console

    from agent.runs.catalog import list_entries, sweep_trials
    from agent.runs.tables import runs_table

    if sweep is not None:
        trials = _read(lambda factory: sweep_trials(factory, sweep))
        Console().print(runs_table(trials[:limit]))
        return
    entries = _read(lambda factory: list_entries(factory, kind.value if kind else None, limit))
    Console().print(runs_table(entries))


def runs_show(ids: list[str] = _IDS) -> None:
    """Show runs side by side: settings, the metric set, each kind's own figures, the report."""
    from rich.console import Console

    from agent.runs.catalog import get_runs
    from agent.runs.tables import show_table

    Console().print(show_table(_read(lambda factory: get_runs(factory, ids))))


def runs_compare(ids: list[str] = _IDS) -> None:
    """Compare runs of any kind: the same metric set side by side, beside buy & hold and cash."""
    from rich.console import Console

    from agent.runs.catalog import get_runs
    from agent.runs.tables import compare_table

    Console().print(compare_table(_read(lambda factory: get_runs(factory, ids))))


def _read(query: Callable[[sessionmaker[Session]], T]) -> T:
    """`query` on the configured database, read-only; an unknown id exits 2 with one line."""
    from agent.errors import ConfigError
    from agent.textsafe import for_plain_terminal

    with _database() as factory:
        try:
            return query(factory)
        except ConfigError as e:
            print(f"error: {for_plain_terminal(str(e))}", file=sys.stderr)
            raise typer.Exit(2) from None


@contextmanager
def _database() -> Iterator[sessionmaker[Session]]:
    from agent.config import load_settings
    from agent.db.session import open_db

    engine, factory = open_db(load_settings().db_url, migrate=False)  # read-only: never migrates
    try:
        yield factory
    finally:
        engine.dispose()
