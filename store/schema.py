"""The database tables, as SQLAlchemy Core metadata.

These definitions describe the schema; they never create it. Only the Alembic
migrations in ``migrations/`` create or change tables, and a test checks that the
migrated database and this metadata cannot drift apart.

The events table is append-only and hash-chained (see store/audit.py): each event holds
the hash of the one before it (``prev_hash``) and its own ``hash``; ``chain_head`` is the
one row writers lock to append, so the chain has no gaps and no forks. The unique
``prev_hash`` makes the database itself refuse a fork.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type and hands back naive values; storing UTC and
    re-attaching UTC on load keeps every datetime leaving the store aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("breakglass stores only timezone-aware datetimes")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


change_requests = Table(
    "change_requests",
    metadata,
    Column("id", String, primary_key=True),
    Column("kind", String, nullable=False),
    Column("zone", String, nullable=False),
    Column("state", String, nullable=False),
    Column("request_json", Text, nullable=False),  # core.models.request_to_dict, canonical JSON
    Column("plan_json", Text, nullable=False),  # core.models.plan_to_dict, canonical JSON
    Column("plan_digest", String, nullable=False),
    Column("requester", String, nullable=False),
    Column("anchor", String, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),  # last state change
    Column("owner", String, nullable=True),  # the bot process carrying it out (approved/applying/verifying)
    Column("heartbeat_at", UtcDateTime, nullable=True),  # when that owner last said it still is
    Column("announced_state", String, nullable=True),  # the state people were told of; NULL: not told since it changed
    Index("ix_change_requests_created_at", "created_at"),
    Index("ix_change_requests_state", "state"),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String, ForeignKey("change_requests.id"), nullable=False),
    Column("approver", String, nullable=False),  # str(Principal)
    Column("plan_digest", String, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    UniqueConstraint("request_id", "approver", name="uq_approvals_request_id_approver"),
)

# No foreign key on request_id: the audit log must accept every event, including
# refusals that name a request id which does not exist.
events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String, nullable=False),
    Column("actor", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("details_json", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("prev_hash", String, nullable=False),  # hex sha256 of the previous event; 64 zeros for the first
    Column("hash", String, nullable=False),  # hex sha256(prev_hash || canonical JSON of this event)
    Index("ix_events_request_id", "request_id"),
    UniqueConstraint("prev_hash", name="uq_events_prev_hash"),
)

# Exactly one row (id 1): the newest event's seq and hash. Appending locks it.
chain_head = Table(
    "chain_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String, nullable=False),
)

# Messages for Slack, in the order they were written; one replica at a time delivers them.
# ``kind`` says what to do (see bot/outbox.py); ``payload_json`` holds the rest.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", String, nullable=True),
    Column("kind", String, nullable=False),
    Column("channel", String, nullable=True),
    Column("payload_json", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("failed_at", UtcDateTime, nullable=True),  # Slack refused it for good (e.g. channel_not_found)
    Column("last_error", String, nullable=True),
    Index("ix_outbox_sent_at", "sent_at", "failed_at", "id"),
)

# Named leases on a job only one replica may do at a time (e.g. ``outbox-sender``).
worker_locks = Table(
    "worker_locks",
    metadata,
    Column("name", String, primary_key=True),
    Column("owner", String, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
)
