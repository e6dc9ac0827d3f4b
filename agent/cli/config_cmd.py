"""`tradegraph config show`: the effective configuration, secrets masked."""

from __future__ import annotations

import json

import typer

from agent.config import config_path, load_settings


def register(app: typer.Typer) -> None:
    """Add the `config` command group."""
    group = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
    app.add_typer(group, name="config")

    @group.command("show")
    def show(as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table")) -> None:
        """Print the effective configuration (file + environment + defaults) with secrets masked."""
        settings = load_settings()
        data = settings.masked_dump()
        if as_json:
            print(json.dumps(data, indent=2, default=str))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"tradegraph configuration (file: {config_path()})")
        table.add_column("key")
        table.add_column("value")
        for key, value in _flatten(data):
            table.add_row(key, json.dumps(value, default=str))
        Console().print(table)


def _flatten(data: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows
