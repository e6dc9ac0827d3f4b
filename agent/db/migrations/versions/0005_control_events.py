"""control_events: the operator's kill switch and pause of new entries, recorded with who and when

Revision ID: 0005
Revises: 0004

Append-only: each row sets one control (`kill_switch` or `pause`) on or off; the newest row of a name is
its state. `tradegraph serve` writes it (its only write); the daemon's risk screen reads it every tick.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "control_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("who", sa.String(length=128), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("name IN ('kill_switch', 'pause')", name="ck_control_events_name"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_control_events_name_id", "control_events", ["name", "id"])


def downgrade() -> None:
    op.drop_index("ix_control_events_name_id", table_name="control_events")
    op.drop_table("control_events")
