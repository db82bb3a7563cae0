"""Work claims for several replicas, and a durable outbox for Slack.

``change_requests.owner`` / ``heartbeat_at``: which bot process is carrying a request out
(approved, applying, verifying), and when it last said it still is. A request whose owner
stopped heartbeating is taken over (crash recovery), by exactly one replica.

``outbox``: every message for Slack, written in the same database as the request, delivered
in order by one replica at a time (``worker_locks`` row ``outbox-sender``), retried until Slack
takes it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("change_requests") as batch:
        batch.add_column(sa.Column("owner", sa.String(), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_change_requests_state", "change_requests", ["state"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("payload_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at", "failed_at", "id"])
    worker_locks = op.create_table(
        "worker_locks",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_worker_locks"),
    )
    op.bulk_insert(worker_locks, [{"name": "outbox-sender", "owner": None, "expires_at": None}])


def downgrade() -> None:
    op.drop_table("worker_locks")
    op.drop_index("ix_outbox_sent_at", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_change_requests_state", table_name="change_requests")
    with op.batch_alter_table("change_requests") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")
