"""Named leases in the ``worker_locks`` table: a job only one replica may do at a time.

Several bot processes share one database; a lease says which of them does the job now
(``outbox-sender``: delivering Slack messages in order). It is taken with one conditional
UPDATE (free, expired, or already ours), so two replicas can never both hold it, and it
lapses by itself when its holder dies without letting go. Times come from each replica's
clock: keep them in sync (NTP) to well within the lease length.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, or_, select, update

from store.schema import worker_locks
from store.sql import reading, writing


class WorkerLock:
    """The lease named ``name`` (its row is created by a migration)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self.name = name

    def acquire(self, owner: str, seconds: float) -> datetime | None:
        """Take or renew the lease for ``seconds``; when it now expires, or None if someone else holds it.

        Reads first, so a replica that is not the holder does not write on every poll.
        """
        now = datetime.now(UTC)
        held = self.holder()
        if held is not None and held[0] != owner and held[1] is not None and held[1] > now:
            return None
        expires = now + timedelta(seconds=seconds)
        free = or_(
            worker_locks.c.owner.is_(None),
            worker_locks.c.owner == owner,
            worker_locks.c.expires_at.is_(None),
            worker_locks.c.expires_at < now,
        )
        with self._writing() as conn:
            taken = conn.execute(
                update(worker_locks)
                .where(worker_locks.c.name == self.name, free)
                .values(owner=owner, expires_at=expires)
            )
        return expires if taken.rowcount == 1 else None

    def release(self, owner: str) -> None:
        """Let go at once (on a clean stop), so another replica need not wait for the lease to lapse."""
        with self._writing() as conn:
            conn.execute(
                update(worker_locks)
                .where(worker_locks.c.name == self.name, worker_locks.c.owner == owner)
                .values(owner=None, expires_at=None)
            )

    def _writing(self) -> AbstractContextManager[Connection]:
        hint = "Check the database is reachable and writable."
        return writing(self._engine, f"The database (lease {self.name})", hint)

    def holder(self) -> tuple[str | None, datetime | None] | None:
        """(owner, expires_at) as stored; None if the lease's row is missing (schema not migrated)."""
        with reading(self._engine, "The worker locks") as conn:
            row = conn.execute(
                select(worker_locks.c.owner, worker_locks.c.expires_at).where(worker_locks.c.name == self.name)
            ).first()
        return None if row is None else (row.owner, row.expires_at)
