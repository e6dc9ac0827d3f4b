"""Persistence: typed models, engines and packaged Alembic migrations."""

from agent.db.session import downgrade, make_engine, open_db, transaction, upgrade

__all__ = ["downgrade", "make_engine", "open_db", "transaction", "upgrade"]
