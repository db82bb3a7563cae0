"""Drill history: one row per change path per drill, with the seconds each phase took.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drill_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("drill_id", sa.String(), nullable=False),
        sa.Column("zone", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("simulated_outage", sa.Boolean(), nullable=False),
        sa.Column("lease_seconds", sa.Float(), nullable=True),
        sa.Column("apply_seconds", sa.Float(), nullable=True),
        sa.Column("propagation_seconds", sa.Float(), nullable=True),
        sa.Column("cleanup_seconds", sa.Float(), nullable=True),
        sa.Column("routing_seconds", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drill_history"),
    )
    op.create_index("ix_drill_history_drill_id", "drill_history", ["drill_id"])
    op.create_index("ix_drill_history_zone_path", "drill_history", ["zone", "path", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_drill_history_zone_path", table_name="drill_history")
    op.drop_index("ix_drill_history_drill_id", table_name="drill_history")
    op.drop_table("drill_history")
