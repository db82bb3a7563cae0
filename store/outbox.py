"""The durable outbox: messages for Slack, kept in the database until Slack has taken them.

A front door writes each message in its own short transaction, right after the state change it
reports (so a crash between the two can lose the message, never invent one); one replica at a
time (store/locks.py) delivers them strictly in ``id`` order. Here ``kind`` and the payload are
opaque: bot/outbox.py gives them meaning. Payloads hold what people see in Slack, never a secret.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, delete, func, insert, or_, select, update

from store.schema import change_requests, outbox
from store.sql import reading, writing

MAX_ERROR_CHARS = 500
_WAITING = and_(outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None))


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    kind: str
    request_id: str | None
    channel: str | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime


@dataclass(frozen=True)
class OutboxCounts:
    waiting: int  # neither sent nor failed: the outbox depth
    failed: int  # refused by Slack for good (kept for a while, see ``prune``)


@dataclass(frozen=True)
class ThreadState:
    """Where a request's Slack message is, and what is still waiting to be said about it."""

    anchor: str | None
    waiting_kinds: tuple[str, ...]  # unsent messages for this request, oldest first


class SqlOutbox:
    """The ``outbox`` table. ``on_enqueue`` callbacks run after each commit, to wake a sender at once."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_enqueue(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(callback)

    # --- writing messages -------------------------------------------------------------------

    def enqueue(
        self, kind: str, payload: dict[str, Any], *, request_id: str | None = None, channel: str | None = None
    ) -> int:
        """Store one message (its own transaction); returns its id, which is its place in the queue."""
        now = _now()
        with self._writing() as conn:
            result = conn.execute(
                insert(outbox).values(
                    request_id=request_id,
                    kind=kind,
                    channel=channel,
                    payload_json=json.dumps(payload, sort_keys=True, separators=(",", ":")),
                    created_at=now,
                    attempts=0,
                    next_attempt_at=now,
                )
            )
            message_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        with self._lock:
            listeners = list(self._listeners)
        for wake in listeners:
            wake()
        return message_id

    # --- delivering -------------------------------------------------------------------------

    def head(self) -> OutboxMessage | None:
        """The oldest message neither sent nor failed: the only one a sender may deliver next."""
        with reading(self.engine, "The Slack outbox") as conn:
            row = conn.execute(select(outbox).where(_WAITING).order_by(outbox.c.id).limit(1)).first()
        return None if row is None else _message(row)

    def mark_sent(self, message_id: int, *, anchor: tuple[str, str] | None = None, note: str | None = None) -> bool:
        """Delivered (or nothing left to deliver: ``note`` says why). False if it already was.

        ``anchor`` (request id, where its Slack message is) is stored in the same transaction, so a
        posted request message and the place later thread messages go are never out of step.
        """
        values: dict[str, Any] = {"sent_at": _now(), "attempts": outbox.c.attempts + 1}
        if note is not None:  # otherwise the last error stays: it says why delivery took several attempts
            values["last_error"] = _short(note)
        with self._writing() as conn:
            done = conn.execute(update(outbox).where(outbox.c.id == message_id, _WAITING).values(**values))
            if done.rowcount != 1:
                return False
            if anchor is not None:
                request_id, where = anchor
                conn.execute(update(change_requests).where(change_requests.c.id == request_id).values(anchor=where))
        return True

    def retry_at(self, message_id: int, when: datetime, error: str) -> None:
        """Slack did not take it this time; it stays at the head of the queue until ``when``."""
        with self._writing() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id, _WAITING)
                .values(attempts=outbox.c.attempts + 1, next_attempt_at=when, last_error=_short(error))
            )

    def mark_failed(self, message_id: int, error: str) -> None:
        """Slack refused it for good (e.g. ``channel_not_found``): give up on it so the queue moves on."""
        with self._writing() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == message_id, _WAITING)
                .values(attempts=outbox.c.attempts + 1, failed_at=_now(), last_error=_short(error))
            )

    def prune(self, sent_before: datetime, failed_before: datetime) -> int:
        """Forget delivered messages older than ``sent_before`` and failed ones older than ``failed_before``."""
        with self._writing() as conn:
            gone = conn.execute(
                delete(outbox).where(
                    or_(
                        and_(outbox.c.sent_at.is_not(None), outbox.c.sent_at < sent_before),
                        and_(outbox.c.failed_at.is_not(None), outbox.c.failed_at < failed_before),
                    )
                )
            )
        return int(gone.rowcount)

    # --- reading ----------------------------------------------------------------------------

    def counts(self) -> OutboxCounts:
        waiting = func.count().filter(_WAITING)
        failed = func.count().filter(outbox.c.failed_at.is_not(None))
        with reading(self.engine, "The Slack outbox") as conn:
            row = conn.execute(select(waiting, failed)).one()
        return OutboxCounts(int(row[0] or 0), int(row[1] or 0))

    def thread_state(self, request_id: str) -> ThreadState:
        with reading(self.engine, "The Slack outbox") as conn:
            anchor = conn.execute(
                select(change_requests.c.anchor).where(change_requests.c.id == request_id)
            ).scalar_one_or_none()
            kinds = conn.execute(
                select(outbox.c.kind).where(outbox.c.request_id == request_id, _WAITING).order_by(outbox.c.id)
            ).scalars()
            return ThreadState(anchor, tuple(str(k) for k in kinds))

    def anchor(self, request_id: str) -> str | None:
        """Where the request's Slack message is, read at delivery time (None: never posted)."""
        with reading(self.engine, "The Slack outbox") as conn:
            found = conn.execute(
                select(change_requests.c.anchor).where(change_requests.c.id == request_id)
            ).scalar_one_or_none()
        return None if found is None else str(found)

    def _writing(self) -> AbstractContextManager[Connection]:
        return writing(self.engine, "The Slack outbox", "Check the database is reachable and writable.")


def _message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        id=int(row.id),
        kind=str(row.kind),
        request_id=row.request_id,
        channel=row.channel,
        payload=json.loads(row.payload_json),
        attempts=int(row.attempts),
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
    )


def _short(text: str | None) -> str | None:
    return None if text is None else text[:MAX_ERROR_CHARS]


def _now() -> datetime:
    return datetime.now(UTC)
