"""SqlRequestStore against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from core.errors import IllegalTransition, PersistenceError, UnknownRequest
from core.events import EventKind, NewEvent
from core.models import (
    Approval,
    ChangeRequest,
    Plan,
    Principal,
    PrincipalSource,
    RecordEdit,
    RequestKind,
    RRsetChange,
)
from core.records import RecordType, RRset
from core.states import TRANSITIONS, RequestState
from sandbox.net import free_port
from store.sql import SqlRequestStore, make_engine
from tests.fixtures.store import PG_ADMIN_DSN

ALICE = Principal(PrincipalSource.SLACK, "U0ALICE")
S = RequestState


def make_request(request_id: str | None = None, created_at: datetime | None = None) -> tuple[ChangeRequest, Plan]:
    request_id = request_id or f"r-{uuid.uuid4().hex[:8]}"
    after = RRset.build("api.example.test", RecordType.A, 60, ["203.0.113.20", "203.0.113.21"])
    before = RRset.build("api.example.test", RecordType.A, 300, ["203.0.113.10"])
    txt = RRset.build("note.example.test", RecordType.TXT, 60, ['moved "api" during incident 42'])
    request = ChangeRequest(
        id=request_id,
        kind=RequestKind.CHANGE,
        zone="example.test.",
        edits=(
            RecordEdit("api.example.test.", RecordType.A, after),
            RecordEdit("note.example.test.", RecordType.TXT, txt),
            RecordEdit("old.example.test.", RecordType.CNAME, None),
        ),
        reason="primary load balancer down — fail over (INC-42)",
        requester=ALICE,
        created_at=created_at or datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
    )
    plan = Plan(
        request_id=request_id,
        zone="example.test.",
        path="rfc2136",
        changes=(
            RRsetChange("api.example.test.", RecordType.A, before, after),
            RRsetChange("note.example.test.", RecordType.TXT, None, txt),
            RRsetChange(
                "old.example.test.",
                RecordType.CNAME,
                RRset.build("old.example.test", RecordType.CNAME, 300, ["api.example.test"]),
                None,
            ),
        ),
    )
    return request, plan


def planned(store: SqlRequestStore, request_id: str | None = None, **kwargs: Any) -> tuple[ChangeRequest, Plan]:
    request, plan = make_request(request_id, **kwargs)
    store.create(request, plan, NewEvent(request.id, str(ALICE), EventKind.PLANNED, {"digest": plan.digest()}))
    return request, plan


def approver(n: int) -> Principal:
    return Principal(PrincipalSource.SLACK, f"U0APPROVER{n}")


def approval_of(request_id: str, plan: Plan, who: Principal) -> Approval:
    return Approval(request_id, who, plan.digest(), datetime.now(UTC))


def approved_event(request_id: str, who: Principal) -> NewEvent:
    return NewEvent(request_id, str(who), EventKind.APPROVED, {"approver": str(who)})


# --- round trips ------------------------------------------------------------------------


def test_request_and_plan_survive_storage_with_the_same_digest(store: SqlRequestStore) -> None:
    request, plan = make_request()
    created = store.create(request, plan, NewEvent(request.id, str(ALICE), EventKind.PLANNED))

    loaded = store.get(request.id)

    assert loaded.request == request
    assert loaded.plan == plan
    assert loaded.plan.digest() == plan.digest()
    assert loaded.state is S.PENDING_APPROVAL
    assert loaded.anchor is None
    assert loaded.updated_at == created.updated_at
    assert loaded.updated_at.tzinfo is not None and loaded.updated_at.utcoffset() == timedelta(0)


def test_unknown_request_is_reported(store: SqlRequestStore) -> None:
    with pytest.raises(UnknownRequest, match="no-such-id"):
        store.get("no-such-id")
    with pytest.raises(UnknownRequest):
        store.transition("no-such-id", S.PENDING_APPROVAL, S.APPROVED, NewEvent("no-such-id", "x", EventKind.APPROVED))
    with pytest.raises(UnknownRequest):
        store.set_anchor("no-such-id", "C1:1.2")
    with pytest.raises(UnknownRequest):
        store.add_approval(
            Approval("no-such-id", ALICE, "0" * 64, datetime.now(UTC)), approved_event("no-such-id", ALICE)
        )
    assert store.events("no-such-id") == []


def test_anchor_is_stored_without_counting_as_a_state_change(store: SqlRequestStore) -> None:
    request, _ = planned(store)
    before = store.get(request.id)

    store.set_anchor(request.id, "C0INCIDENT:1714000000.000100")

    after = store.get(request.id)
    assert after.anchor == "C0INCIDENT:1714000000.000100"
    assert after.updated_at == before.updated_at


def test_recent_lists_newest_requests_first(store: SqlRequestStore) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in [3, 0, 4, 1, 2]:
        planned(store, f"req-{i}", created_at=start + timedelta(minutes=i))

    assert [s.request.id for s in store.recent(3)] == ["req-4", "req-3", "req-2"]
    assert len(store.recent(100)) == 5


# --- state transitions -----------------------------------------------------------------


def test_transition_moves_state_and_records_its_event(store: SqlRequestStore) -> None:
    request, _ = planned(store)
    before = store.get(request.id)

    moved = store.transition(
        request.id, S.PENDING_APPROVAL, S.APPROVED, NewEvent(request.id, "system:breakglass", EventKind.QUORUM_REACHED)
    )

    after = store.get(request.id)
    assert moved is True
    assert after.state is S.APPROVED
    assert after.updated_at > before.updated_at
    assert [e.kind for e in store.events(request.id)] == [EventKind.PLANNED, EventKind.QUORUM_REACHED]


@pytest.mark.parametrize(
    ("current", "new"),
    [(S.PENDING_APPROVAL, S.APPLYING), (S.APPROVED, S.VERIFIED), (S.DENIED, S.APPROVED), (S.VERIFIED, S.APPLYING)],
)
def test_illegal_transition_raises_and_changes_nothing(
    store: SqlRequestStore, current: RequestState, new: RequestState
) -> None:
    assert new not in TRANSITIONS[current]
    request, _ = planned(store)

    with pytest.raises(IllegalTransition):
        store.transition(request.id, current, new, NewEvent(request.id, "system:breakglass", EventKind.APPLIED))

    assert store.get(request.id).state is S.PENDING_APPROVAL
    assert [e.kind for e in store.events(request.id)] == [EventKind.PLANNED]


def test_transition_returns_false_once_the_state_has_moved_on(store: SqlRequestStore) -> None:
    request, _ = planned(store)
    assert store.transition(request.id, S.PENDING_APPROVAL, S.DENIED, NewEvent(request.id, "b", EventKind.DENIED))

    late = store.transition(
        request.id, S.PENDING_APPROVAL, S.APPROVED, NewEvent(request.id, "c", EventKind.QUORUM_REACHED)
    )

    assert late is False
    assert store.get(request.id).state is S.DENIED
    assert [e.kind for e in store.events(request.id)] == [EventKind.PLANNED, EventKind.DENIED]


def test_full_happy_path_walks_every_step(store: SqlRequestStore) -> None:
    request, _ = planned(store)
    steps = [
        (S.PENDING_APPROVAL, S.APPROVED, EventKind.QUORUM_REACHED),
        (S.APPROVED, S.APPLYING, EventKind.APPLY_STARTED),
        (S.APPLYING, S.VERIFYING, EventKind.APPLIED),
        (S.VERIFYING, S.VERIFIED, EventKind.VERIFIED),
    ]
    for current, new, kind in steps:
        assert store.transition(request.id, current, new, NewEvent(request.id, "system:breakglass", kind))

    assert store.get(request.id).state is S.VERIFIED
    assert [e.kind for e in store.events(request.id)][1:] == [kind for _, _, kind in steps]


# --- approvals --------------------------------------------------------------------------


def test_duplicate_approval_returns_false_and_records_no_event(store: SqlRequestStore) -> None:
    request, plan = planned(store)
    bob = approver(1)

    first = store.add_approval(approval_of(request.id, plan, bob), approved_event(request.id, bob))
    again = store.add_approval(approval_of(request.id, plan, bob), approved_event(request.id, bob))

    assert (first, again) == (True, False)
    stored = store.approvals(request.id)
    assert [(a.approver, a.plan_digest) for a in stored] == [(bob, plan.digest())]
    assert stored[0].at.utcoffset() == timedelta(0)
    assert [e.kind for e in store.events(request.id)] == [EventKind.PLANNED, EventKind.APPROVED]


def test_approvals_are_per_request_and_in_order(store: SqlRequestStore) -> None:
    first, plan1 = planned(store)
    second, plan2 = planned(store)
    at = datetime(2025, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=-5)))
    for n in (2, 1, 3):
        store.add_approval(Approval(first.id, approver(n), plan1.digest(), at), approved_event(first.id, approver(n)))
    store.add_approval(approval_of(second.id, plan2, approver(1)), approved_event(second.id, approver(1)))

    assert store.approvals(first.id) == [Approval(first.id, approver(n), plan1.digest(), at) for n in (2, 1, 3)]
    assert [a.approver for a in store.approvals(second.id)] == [approver(1)]


# --- events -----------------------------------------------------------------------------


def test_events_come_back_in_order_with_their_details(store: SqlRequestStore) -> None:
    request, _ = planned(store)
    other, _ = planned(store)
    details: dict[str, str | int | float | bool | None] = {
        "server": "127.0.0.1:5301",
        "served": True,
        "attempts": 3,
        "elapsed_s": 0.125,
        "serial": None,
        "note": "naïve ünïcode ✓",
    }
    store.append(NewEvent(request.id, "system:breakglass", EventKind.SERVER_CHECKED, details))
    store.append(NewEvent(other.id, "system:breakglass", EventKind.APPLY_STARTED))
    store.append(NewEvent(request.id, "system:breakglass", EventKind.VERIFIED, {"servers": 2}))

    got = store.events(request.id)

    assert [e.kind for e in got] == [EventKind.PLANNED, EventKind.SERVER_CHECKED, EventKind.VERIFIED]
    assert got[1].details == details
    assert got[1].actor == "system:breakglass" and got[1].request_id == request.id
    assert got[0].seq < got[1].seq < got[2].seq
    assert all(e.at.utcoffset() == timedelta(0) for e in got)
    assert got[0].at <= got[1].at <= got[2].at
    assert [e.kind for e in store.events(other.id)] == [EventKind.PLANNED, EventKind.APPLY_STARTED]


# --- fail closed ------------------------------------------------------------------------


def _read_only_engine(url: str, backend: str) -> Engine:
    """An engine on the same database that the database itself refuses to let write."""
    if backend == "postgres":
        name = str(make_url(url).database)
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(sql.Identifier(name))
            )
        return make_engine(url)
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def query_only(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA query_only = ON")

    return engine


def _every_write(store: SqlRequestStore, request_id: str, plan: Plan) -> list[Callable[[], object]]:
    new, new_plan = make_request()
    return [
        lambda: store.create(new, new_plan, NewEvent(new.id, str(ALICE), EventKind.PLANNED)),
        lambda: store.transition(
            request_id, S.PENDING_APPROVAL, S.APPROVED, NewEvent(request_id, "s", EventKind.QUORUM_REACHED)
        ),
        lambda: store.add_approval(approval_of(request_id, plan, approver(1)), approved_event(request_id, approver(1))),
        lambda: store.append(NewEvent(request_id, "s", EventKind.APPLY_STARTED)),
        lambda: store.set_anchor(request_id, "C1:2.3"),
    ]


def test_refused_writes_raise_persistence_error_and_change_nothing(
    store: SqlRequestStore, database_url: str, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.params["database_url"]
    existing, plan = planned(store)
    engine = _read_only_engine(database_url, backend)
    try:
        read_only = SqlRequestStore(engine)
        assert read_only.get(existing.id).state is S.PENDING_APPROVAL  # reads still work
        for write in _every_write(read_only, existing.id, plan):
            with pytest.raises(PersistenceError) as refused:
                write()
            assert "refused the write" in refused.value.user_text()
            assert "nothing was changed" in refused.value.user_text()
            assert "INSERT" not in refused.value.user_text() and "UPDATE" not in refused.value.user_text()
    finally:
        engine.dispose()

    after = store.get(existing.id)
    assert (after.state, after.anchor) == (S.PENDING_APPROVAL, None)
    assert store.approvals(existing.id) == []
    assert [e.kind for e in store.events(existing.id)] == [EventKind.PLANNED]
    assert [s.request.id for s in store.recent(10)] == [existing.id]


def test_unreachable_postgres_raises_persistence_error() -> None:
    port = free_port()  # nothing listens here
    down = SqlRequestStore(make_engine(f"postgresql://root@127.0.0.1:{port}/test"))
    request, plan = make_request()

    with pytest.raises(PersistenceError, match="refused the write"):
        down.create(request, plan, NewEvent(request.id, str(ALICE), EventKind.PLANNED))
    with pytest.raises(PersistenceError, match="could not be read"):
        down.get(request.id)


# --- engine -----------------------------------------------------------------------------


def test_sqlite_engine_enables_foreign_keys_wal_and_busy_timeout(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000
    finally:
        engine.dispose()


def test_plain_postgresql_url_uses_psycopg(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    engine = make_engine(plain)
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM change_requests").scalar() == 0
    finally:
        engine.dispose()


# --- concurrency ------------------------------------------------------------------------


def _in_threads(count: int, work: Callable[[int], bool]) -> list[bool]:
    """Run ``work(i)`` in ``count`` threads released together; re-raise any failure."""
    barrier = threading.Barrier(count)
    results: list[bool | BaseException] = [False] * count

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return [bool(r) for r in results]


def test_twenty_threads_racing_one_transition_yield_exactly_one_winner(store: SqlRequestStore) -> None:
    request, _ = planned(store)

    results = _in_threads(
        20,
        lambda i: store.transition(
            request.id, S.PENDING_APPROVAL, S.APPROVED, NewEvent(request.id, f"t{i}", EventKind.QUORUM_REACHED)
        ),
    )

    assert results.count(True) == 1
    assert store.get(request.id).state is S.APPROVED
    assert [e.kind for e in store.events(request.id)].count(EventKind.QUORUM_REACHED) == 1


def test_twenty_threads_approving_with_repeats_store_each_approver_once(store: SqlRequestStore) -> None:
    request, plan = planned(store)

    results = _in_threads(
        20,
        lambda i: store.add_approval(
            approval_of(request.id, plan, approver(i % 5)), approved_event(request.id, approver(i % 5))
        ),
    )

    assert results.count(True) == 5
    assert sorted(str(a.approver) for a in store.approvals(request.id)) == sorted(str(approver(n)) for n in range(5))
    assert [e.kind for e in store.events(request.id)].count(EventKind.APPROVED) == 5


def _race_in_process(url: str, request_id: str, barrier: Any, results: Any) -> None:
    """Child process: own engine and connection, then race the others for one transition."""
    engine = make_engine(url)
    try:
        store = SqlRequestStore(engine)
        store.get(request_id)  # connect before the start line, so the race is on the UPDATE
        barrier.wait(timeout=60)
        won = store.transition(
            request_id, S.PENDING_APPROVAL, S.APPROVED, NewEvent(request_id, "proc", EventKind.QUORUM_REACHED)
        )
        results.put(won)
    except BaseException as exc:
        results.put(repr(exc))
    finally:
        engine.dispose()


def test_four_processes_racing_one_transition_yield_exactly_one_winner(
    store: SqlRequestStore, database_url: str
) -> None:
    request, _ = planned(store)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    procs = [ctx.Process(target=_race_in_process, args=(database_url, request.id, barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(timeout=30)

    assert sorted(outcomes, key=repr) == [False, False, False, True]
    assert store.get(request.id).state is S.APPROVED
    assert [e.kind for e in store.events(request.id)].count(EventKind.QUORUM_REACHED) == 1
