"""Remember which resting state of a request its thread was told about.

``change_requests.announced_state``: the state (denied, verified, apply_failed...) people were
told of; every state change clears it. A bot killed between recording where a request came to
rest and queueing that news leaves it empty; the crash-recovery sweep finds such requests and
tells their thread. Existing requests were all told under the earlier code, so they start told.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("change_requests") as batch:
        batch.add_column(sa.Column("announced_state", sa.String(), nullable=True))
    op.execute("UPDATE change_requests SET announced_state = state")


def downgrade() -> None:
    with op.batch_alter_table("change_requests") as batch:
        batch.drop_column("announced_state")
