"""daemon: lease and tick log

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daemon_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("ttl_s", sa.Float(), nullable=False),
        sa.Column("acquired_ms", sa.BigInteger(), nullable=True),
        sa.Column("heartbeat_ms", sa.BigInteger(), nullable=True),
        sa.Column("released_ms", sa.BigInteger(), nullable=True),
        sa.Column("clock_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_bar_ts", sa.BigInteger(), nullable=True),
        sa.Column("next_tick_ms", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "daemon_ticks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("bar_ts", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("fills", sa.Integer(), nullable=False),
        sa.Column("equity", sa.Float(), nullable=True),
        sa.Column("holder", sa.String(length=128), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("daemon_ticks", schema=None) as batch_op:
        batch_op.create_index("ix_daemon_ticks_run_bar", ["run_id", "bar_ts"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("daemon_ticks", schema=None) as batch_op:
        batch_op.drop_index("ix_daemon_ticks_run_bar")
    op.drop_table("daemon_ticks")
    op.drop_table("daemon_leases")
