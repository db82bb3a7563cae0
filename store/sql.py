"""SqlRequestStore: core.ports.RequestStore on SQLite or PostgreSQL.

Every write is one short transaction; any refusal by the database becomes a
PersistenceError, which makes the service fail closed (nothing is applied
without its audit record). Every event, including those written by ``create``,
``transition`` and ``add_approval``, is appended to the hash chain in the same
transaction as the change it records (store/audit.py).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, create_engine, event, insert, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.errors import PersistenceError, UnknownRequest
from core.events import Event, EventKind, EventValue, NewEvent
from core.models import (
    Approval,
    ChangeRequest,
    Plan,
    Principal,
    plan_from_dict,
    plan_to_dict,
    request_from_dict,
    request_to_dict,
)
from core.ports import StoredRequest, WorkClaim
from core.states import RequestState, check_transition
from store.audit import append_all_chained, append_chained
from store.schema import approvals, change_requests, events

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "breakglass_write"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; ``postgresql://`` URLs are routed to psycopg 3.

    SQLite gets foreign keys, WAL and a busy timeout, and write transactions start
    with BEGIN IMMEDIATE, so concurrent writers (threads or processes) queue for the
    lock instead of failing half-way through a transaction.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    engine = create_engine(parsed)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_on_begin)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    writing = connection.get_execution_options().get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def _canonical_json(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _now() -> datetime:
    return datetime.now(UTC)


class SqlRequestStore:
    """Durable requests, approvals and audit events in one SQL database; also the ClaimStore."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- writes ---------------------------------------------------------------------

    def create(self, request: ChangeRequest, plan: Plan, event: NewEvent) -> StoredRequest:
        now = _now()
        with self._writing() as conn:
            conn.execute(
                insert(change_requests).values(
                    id=request.id,
                    kind=request.kind.value,
                    zone=request.zone,
                    state=RequestState.PENDING_APPROVAL.value,
                    request_json=_canonical_json(request_to_dict(request)),
                    plan_json=_canonical_json(plan_to_dict(plan)),
                    plan_digest=plan.digest(),
                    requester=str(request.requester),
                    anchor=None,
                    created_at=request.created_at,
                    updated_at=now,
                )
            )
            self._insert_event(conn, event)
        return StoredRequest(request, plan, RequestState.PENDING_APPROVAL, None, now)

    def transition(self, request_id: str, current: RequestState, new: RequestState, event: NewEvent) -> bool:
        """Atomically move ``current`` -> ``new`` and append ``event``; False if no longer ``current``."""
        check_transition(current, new)
        with self._writing() as conn:
            moved = conn.execute(
                update(change_requests)
                .where(change_requests.c.id == request_id, change_requests.c.state == current.value)
                .values(state=new.value, updated_at=_now(), announced_state=None)  # nobody told of `new` yet
            )
            if moved.rowcount == 1:
                self._insert_event(conn, event)
                return True
            self._require_request(conn, request_id)
            return False

    def add_approval(self, approval: Approval, event: NewEvent) -> bool:
        """Record an approval with its event; False if this approver had already approved."""
        with self._writing() as conn:
            self._require_request(conn, approval.request_id)
            try:
                with conn.begin_nested():  # a duplicate rolls back only this savepoint
                    conn.execute(
                        insert(approvals).values(
                            request_id=approval.request_id,
                            approver=str(approval.approver),
                            plan_digest=approval.plan_digest,
                            at=approval.at,
                        )
                    )
            except IntegrityError:
                return False
            self._insert_event(conn, event)
            return True

    def append(self, event: NewEvent) -> None:
        with self._writing() as conn:
            self._insert_event(conn, event)

    def append_many(self, events: Sequence[NewEvent]) -> None:
        """Append ``events`` in order in one transaction: all of them, or (refused) none."""
        if not events:
            return
        with self._writing() as conn:
            append_all_chained(conn, [(new, _now(), _canonical_json(new.details)) for new in events])

    def set_anchor(self, request_id: str, anchor: str) -> None:
        """Remember where a front door shows this request; does not count as a state change."""
        with self._writing() as conn:
            changed = conn.execute(
                update(change_requests).where(change_requests.c.id == request_id).values(anchor=anchor)
            )
            if changed.rowcount != 1:
                raise _unknown(request_id)

    # --- work claims (core.ports.ClaimStore): which bot carries out which request --------

    def claim(self, request_id: str, state: RequestState, owner: str) -> bool:
        with self._writing() as conn:
            claimed = conn.execute(
                update(change_requests)
                .where(change_requests.c.id == request_id, change_requests.c.state == state.value)
                .values(owner=owner, heartbeat_at=_now())
            )
            if claimed.rowcount == 1:
                return True
            self._require_request(conn, request_id)
            return False

    def heartbeat(self, owner: str, request_ids: Collection[str]) -> set[str]:
        if not request_ids:
            return set()
        mine = (change_requests.c.id.in_(list(request_ids)), change_requests.c.owner == owner)
        with self._writing() as conn:
            conn.execute(update(change_requests).where(*mine).values(heartbeat_at=_now()))
            return set(conn.execute(select(change_requests.c.id).where(*mine)).scalars())

    def holds(self, request_id: str, owner: str) -> bool:
        with self._reading() as conn:
            found = conn.execute(select(change_requests.c.owner).where(change_requests.c.id == request_id)).first()
        if found is None:
            raise _unknown(request_id)
        return bool(found.owner == owner)

    def stale(self, states: Collection[RequestState], silent_since: datetime) -> list[WorkClaim]:
        columns = change_requests.c
        query = (
            select(columns.id, columns.state, columns.owner, columns.updated_at, columns.heartbeat_at)
            .where(columns.state.in_([s.value for s in states]), *_silent_since(silent_since))
            .order_by(columns.updated_at, columns.id)
        )
        with self._reading() as conn:
            rows = conn.execute(query).all()
        return [
            WorkClaim(r.id, RequestState(r.state), r.owner, max(r.updated_at, r.heartbeat_at or r.updated_at))
            for r in rows
        ]

    def take_over(self, claim: WorkClaim, owner: str, silent_since: datetime, event: NewEvent) -> bool:
        with self._writing() as conn:
            taken = conn.execute(
                update(change_requests)
                .where(
                    change_requests.c.id == claim.request_id,
                    change_requests.c.state == claim.state.value,
                    *_silent_since(silent_since),
                )
                .values(owner=owner, heartbeat_at=_now())
            )
            if taken.rowcount != 1:
                return False
            self._insert_event(conn, event)
            return True

    def announce(self, request_id: str, state: RequestState) -> bool:
        columns = change_requests.c
        with self._writing() as conn:
            told = conn.execute(
                update(change_requests)
                .where(
                    columns.id == request_id,
                    columns.state == state.value,
                    columns.announced_state.is_(None),
                )
                .values(announced_state=state.value)
            )
            if told.rowcount == 1:
                return True
            self._require_request(conn, request_id)
            return False

    def unannounced(
        self, states: Collection[RequestState], changed_before: datetime, changed_after: datetime
    ) -> list[str]:
        columns = change_requests.c
        query = (
            select(columns.id)
            .where(
                columns.state.in_([s.value for s in states]),
                columns.announced_state.is_(None),
                columns.updated_at < changed_before,
                columns.updated_at > changed_after,
            )
            .order_by(columns.updated_at, columns.id)
        )
        with self._reading() as conn:
            return list(conn.execute(query).scalars())

    # --- reads ----------------------------------------------------------------------

    def get(self, request_id: str) -> StoredRequest:
        """Raises UnknownRequest."""
        with self._reading() as conn:
            row = conn.execute(select(change_requests).where(change_requests.c.id == request_id)).first()
        if row is None:
            raise _unknown(request_id)
        return _stored_request(row)

    def approvals(self, request_id: str) -> list[Approval]:
        with self._reading() as conn:
            rows = conn.execute(
                select(approvals).where(approvals.c.request_id == request_id).order_by(approvals.c.id)
            ).all()
        return [Approval(r.request_id, Principal.parse(r.approver), r.plan_digest, r.at) for r in rows]

    def events(self, request_id: str) -> list[Event]:
        """This request's events in the order they were recorded."""
        with self._reading() as conn:
            rows = conn.execute(select(events).where(events.c.request_id == request_id).order_by(events.c.seq)).all()
        return [_event(r) for r in rows]

    def recent(self, limit: int) -> list[StoredRequest]:
        """The ``limit`` most recently created requests, newest first."""
        with self._reading() as conn:
            rows = conn.execute(
                select(change_requests)
                .order_by(change_requests.c.created_at.desc(), change_requests.c.id.desc())
                .limit(limit)
            ).all()
        return [_stored_request(r) for r in rows]

    # --- helpers --------------------------------------------------------------------

    def _writing(self) -> AbstractContextManager[Connection]:
        return writing(self._engine)

    def _reading(self) -> AbstractContextManager[Connection]:
        return reading(self._engine)

    @staticmethod
    def _insert_event(conn: Connection, new: NewEvent) -> None:
        append_chained(conn, new, _now(), _canonical_json(new.details))

    @staticmethod
    def _require_request(conn: Connection, request_id: str) -> None:
        found = conn.execute(select(change_requests.c.id).where(change_requests.c.id == request_id)).first()
        if found is None:
            raise _unknown(request_id)


def _silent_since(cutoff: datetime) -> tuple[Any, ...]:
    """No state change and no heartbeat since ``cutoff``: the bot carrying it out is gone (or cut off)."""
    columns = change_requests.c
    return columns.updated_at < cutoff, or_(columns.heartbeat_at.is_(None), columns.heartbeat_at < cutoff)


def _unknown(request_id: str) -> UnknownRequest:
    return UnknownRequest(f"There is no change request `{request_id}`.", hint="Check the id with `/dns status`.")


def _stored_request(row: Row[Any]) -> StoredRequest:
    return StoredRequest(
        request=request_from_dict(json.loads(row.request_json)),
        plan=plan_from_dict(json.loads(row.plan_json)),
        state=RequestState(row.state),
        anchor=row.anchor,
        updated_at=row.updated_at,
    )


def _event(row: Row[Any]) -> Event:
    details: dict[str, EventValue] = json.loads(row.details_json)
    return Event(row.seq, row.request_id, row.actor, EventKind(row.kind), details, row.at)


@contextmanager
def writing(
    engine: Engine,
    what: str = "The audit database",
    hint: str = "Check the database is reachable, writable and not out of space, then try again.",
) -> Iterator[Connection]:
    """One write transaction (BEGIN IMMEDIATE on SQLite); a database error becomes a PersistenceError.

    Nothing of a refused transaction is kept, so the message can say that nothing was changed.
    """
    try:
        with engine.execution_options(**{_WRITE_OPTION: True}).begin() as conn:
            yield conn
    except DBAPIError as exc:
        raise PersistenceError(
            f"{what} refused the write ({type(exc.orig).__name__}); nothing was changed.", hint=hint
        ) from exc


@contextmanager
def reading(engine: Engine, what: str = "The audit database") -> Iterator[Connection]:
    """A read-only connection; a database error becomes a PersistenceError people can act on."""
    try:
        with engine.connect() as conn:
            yield conn
    except DBAPIError as exc:
        raise PersistenceError(
            f"{what} could not be read ({type(exc.orig).__name__}).",
            hint="Check the database is reachable and upgraded (`breakglass db upgrade`), then try again.",
        ) from exc
