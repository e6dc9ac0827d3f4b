"""`tradegraph db upgrade|downgrade|current`: schema migrations on the configured database.

- `upgrade` and `downgrade` run under the migration lock (`agent.db.session`); a database migrated by a
  newer tradegraph is refused with one line naming both revisions.
- `current` only reads: the database's revision and the newest one this tradegraph knows.
"""

from __future__ import annotations

import typer

from agent.config import load_settings


def register(app: typer.Typer) -> None:
    """Add the `db` command group."""
    group = typer.Typer(help="Database migrations.", no_args_is_help=True)
    app.add_typer(group, name="db")

    @group.command("upgrade")
    def upgrade_cmd(revision: str = typer.Argument("head")) -> None:
        """Apply migrations up to REVISION (default: the latest)."""
        from agent.db.session import _mask_free_url, upgrade

        url = load_settings().db_url
        upgrade(url, revision)
        print(f"database upgraded to {revision}: {_mask_free_url(url)}")

    @group.command("downgrade")
    def downgrade_cmd(revision: str = typer.Argument(..., help="target revision, or 'base'")) -> None:
        """Revert migrations down to REVISION."""
        from agent.db.session import _mask_free_url, downgrade

        url = load_settings().db_url
        downgrade(url, revision)
        print(f"database downgraded to {revision}: {_mask_free_url(url)}")

    @group.command("current")
    def current_cmd() -> None:
        """Show the database's schema revision and the latest one this tradegraph knows (read-only)."""
        from agent.db.session import _mask_free_url, revisions

        url = load_settings().db_url
        state = revisions(url)
        if state.newer:
            advice = ": newer than this tradegraph, upgrade tradegraph"
        elif state.current != state.head:
            advice = ": run `tradegraph db upgrade`"
        else:
            advice = ""
        print(
            f"{_mask_free_url(url)}: schema revision {state.current or 'none'} "
            f"(this tradegraph: {state.head}){advice}"
        )
