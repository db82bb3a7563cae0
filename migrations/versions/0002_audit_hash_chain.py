"""Hash-chain the audit events: prev_hash and hash on every event, and the chain_head row.

Events recorded before this revision are chained here, in their original order. Their
``seq`` values came from a database sequence, which skips numbers when a transaction
rolls back; the chain needs 1..N without gaps, so they are renumbered in order first
(nothing refers to an event's seq). From now on writers assign seq themselves.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from store.audit import GENESIS_HASH, at_text, canonical_event, event_hash
from store.schema import UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_events = sa.table(
    "events",
    sa.column("seq", sa.Integer()),
    sa.column("request_id", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("details_json", sa.Text()),
    sa.column("at", UtcDateTime()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(), nullable=True))
    head = op.create_table(
        "chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chain_head"),
    )
    seq, digest = _chain_existing_events()
    op.bulk_insert(head, [{"id": 1, "seq": seq, "hash": digest}])
    with op.batch_alter_table("events") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(), nullable=False)
        batch.create_unique_constraint("uq_events_prev_hash", ["prev_hash"])


def _chain_existing_events() -> tuple[int, str]:
    """Renumber existing events 1..N in order and chain them; returns the new head."""
    conn = op.get_bind()
    rows = conn.execute(sa.select(_events).order_by(_events.c.seq)).all()
    prev = GENESIS_HASH
    for new_seq, row in enumerate(rows, start=1):
        line = canonical_event(new_seq, row.request_id, row.actor, row.kind, row.details_json, at_text(row.at))
        digest = event_hash(prev, line)
        # Ascending order never collides: every new seq is <= its old one and > all renumbered ones.
        conn.execute(
            sa.update(_events).where(_events.c.seq == row.seq).values(seq=new_seq, prev_hash=prev, hash=digest)
        )
        prev = digest
    return len(rows), prev


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_constraint("uq_events_prev_hash", type_="unique")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
    op.drop_table("chain_head")
