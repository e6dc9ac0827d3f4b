"""decisions.trailing_stop: a rule strategy's trailing distance, so a restarted run rebuilds its exits

Revision ID: 0004
Revises: 0003

A decision that enters a position may carry a trailing distance (price units; NULL for none and for every
earlier row): the pending entry and the position it opens trail their stop that far below the highest
price since the entry (`agent.execution.bar`). `agent.ledger.reader` reads it back on a restart.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trailing_stop", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("trailing_stop")
