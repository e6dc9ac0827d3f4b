"""Alembic environment: migrations run against the URL set by `agent.db.session.alembic_config`, or on the
connection a caller put in `config.attributes["connection"]`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic import context
from sqlalchemy import Connection

if TYPE_CHECKING:
    from alembic.runtime.environment import NameFilterParentNames, NameFilterType

from agent.db.models import Base
from agent.db.session import make_engine

config = context.config
target_metadata = Base.metadata

_FOREIGN_TABLES = {
    # owned by LangGraph's checkpointers and APScheduler's job store, not by these migrations
    "checkpoints",
    "writes",
    "checkpoint_blobs",
    "checkpoint_writes",
    "checkpoint_migrations",
    "apscheduler_jobs",
}


def _include_name(name: str | None, type_: NameFilterType, _parent: NameFilterParentNames) -> bool:
    return not (type_ == "table" and name in _FOREIGN_TABLES)


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")  # a caller's connection (the empty in-memory schema)
    if given is not None:
        _run(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = make_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            _run_without_foreign_keys(connection)
        else:
            _run(connection)
    engine.dispose()


def _run_without_foreign_keys(connection: Connection) -> None:
    """SQLite rebuilds a table to alter it (batch mode): dropping the old copy must not cascade or set NULL
    through the foreign keys of the tables that reference it, so they are off while migrating (the pragma
    only takes effect outside a transaction), and checked afterwards."""
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        _run(connection)
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"the migration left rows that break foreign keys: {broken[:5]}")
    finally:
        connection.rollback()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=_include_name,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
