"""ledger invariants as CHECK constraints; prompts stored once (llm_prompts)

Revision ID: 0003
Revises: 0002

- CHECK constraints: cash >= -1e-6 (float dust), order/fill/position amounts > 0, fill prices > 0, closed sets
  for order and fill side, order status and run status. Existing rows must satisfy them (the upgrade fails,
  changing nothing, otherwise).
- `llm_prompts(prompt_hash PK, messages, created_at)`; `llm_calls.messages_hash` references it. Existing
  calls have their messages moved out of `request.payload` into `llm_prompts` (once per distinct prompt);
  the downgrade puts them back.
- SQLite runs this in batch mode (tables rebuilt), with foreign keys off during the migration (`env.py`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BATCH = 500
_SIDES = "('buy', 'sell')"
CHECKS: dict[str, list[tuple[str, str]]] = {
    "runs": [("ck_runs_status", "status IN ('running', 'done', 'failed')")],
    "balance_snapshots": [("ck_balance_snapshots_cash", "cash >= -1e-06")],
    "position_snapshots": [("ck_position_snapshots_amount", "amount > 0")],
    "orders": [
        ("ck_orders_amount", "amount > 0"),
        ("ck_orders_side", f"side IN {_SIDES}"),
        ("ck_orders_status", "status IN ('filled', 'rejected', 'canceled')"),
    ],
    "fills": [
        ("ck_fills_amount", "amount > 0"),
        ("ck_fills_price", "price > 0"),
        ("ck_fills_side", f"side IN {_SIDES}"),
    ],
}

_calls = sa.table(
    "llm_calls",
    sa.column("id", sa.Integer),
    sa.column("request", sa.JSON),
    sa.column("messages_hash", sa.String),
)
_prompts = sa.table(
    "llm_prompts",
    sa.column("prompt_hash", sa.String),
    sa.column("messages", sa.JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, condition in checks:
                batch_op.create_check_constraint(name, condition)
    op.create_table(
        "llm_prompts",
        sa.Column("prompt_hash", sa.String(length=64), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("prompt_hash"),
    )
    with op.batch_alter_table("llm_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("messages_hash", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            "fk_llm_calls_messages_hash", "llm_prompts", ["messages_hash"], ["prompt_hash"]
        )
        batch_op.create_index("ix_llm_calls_messages_hash", ["messages_hash"], unique=False)
    _move_messages_out()


def downgrade() -> None:
    _move_messages_back()
    with op.batch_alter_table("llm_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_llm_calls_messages_hash")
        batch_op.drop_constraint("fk_llm_calls_messages_hash", type_="foreignkey")
        batch_op.drop_column("messages_hash")
    op.drop_table("llm_prompts")
    for table, checks in CHECKS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, _condition in checks:
                batch_op.drop_constraint(name, type_="check")


# ---- data: messages out of llm_calls.request, once per prompt (a frozen copy of agent.db.prompts) ----


def _digest(messages: list[Any]) -> str:
    text = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _move_messages_out() -> None:
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(_calls.c.id, _calls.c.request)
            .where(_calls.c.id > last)
            .order_by(_calls.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        last = rows[-1][0]
        prompts: dict[str, list[Any]] = {}
        updates = []
        for call_id, request in rows:
            payload = request.get("payload") if isinstance(request, dict) else None
            if not isinstance(payload, dict) or "messages" not in payload:
                continue
            digest = _digest(list(payload["messages"]))
            prompts.setdefault(digest, list(payload["messages"]))
            stripped = {k: v for k, v in payload.items() if k != "messages"}
            updates.append({"b_id": call_id, "b_request": {**request, "payload": stripped}, "b_hash": digest})
        known = (
            set(
                bind.execute(
                    sa.select(_prompts.c.prompt_hash).where(_prompts.c.prompt_hash.in_(list(prompts)))
                ).scalars()
            )
            if prompts
            else set()
        )
        new = [
            {"prompt_hash": d, "messages": m, "created_at": datetime.now(UTC)}
            for d, m in prompts.items()
            if d not in known
        ]
        if new:
            bind.execute(_prompts.insert(), new)
        if updates:
            bind.execute(
                _calls.update()
                .where(_calls.c.id == sa.bindparam("b_id"))
                .values(
                    request=sa.bindparam("b_request", type_=sa.JSON), messages_hash=sa.bindparam("b_hash")
                ),
                updates,
            )


def _move_messages_back() -> None:
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(_calls.c.id, _calls.c.request, _prompts.c.messages)
            .join(_prompts, _prompts.c.prompt_hash == _calls.c.messages_hash)
            .where(_calls.c.id > last)
            .order_by(_calls.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        last = rows[-1][0]
        updates = []
        for call_id, request, messages in rows:
            payload = dict(request.get("payload") or {}) | {"messages": messages}
            updates.append({"b_id": call_id, "b_request": {**request, "payload": payload}})
        bind.execute(
            _calls.update()
            .where(_calls.c.id == sa.bindparam("b_id"))
            .values(request=sa.bindparam("b_request", type_=sa.JSON)),
            updates,
        )
