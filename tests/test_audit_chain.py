"""The hash-chained audit log on real SQLite files and a real PostgreSQL server.

Tamper tests change the database the way someone with write access would (plain SQL)
and check that verification names the first bad sequence number. Truncation and a
chain rebuilt with fresh hashes are invisible to the chain alone: each of those tests
shows "without a checkpoint: not detected" next to "with one: detected".
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, text

from core.errors import InvalidInput, PersistenceError
from core.events import EventKind, EventValue, NewEvent
from core.states import RequestState
from store.audit import (
    GENESIS_HASH,
    AuditLog,
    ChainHead,
    Checkpointer,
    at_text,
    canonical_event,
    event_hash,
    mentions_incident,
)
from store.checkpoints import (
    Checkpoint,
    CheckpointLog,
    CheckpointSigner,
    load_private_key,
    load_public_key,
    read_checkpoints,
    verify_checkpoint,
)
from store.migrate import MIGRATIONS_DIR, upgrade
from store.sql import SqlRequestStore, make_engine
from tests.test_store import ALICE, approval_of, approved_event, approver, planned

S = RequestState
SYSTEM = "system:breakglass"


@pytest.fixture(scope="module")
def signer() -> CheckpointSigner:
    return CheckpointSigner(Ed25519PrivateKey.generate())


def _sql(engine: Engine, statement: str, **params: Any) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def _incident(store: SqlRequestStore) -> str:
    """One request from plan to verified, a refusal and a duplicate click included: 12 events."""
    request, plan = planned(store)
    rid = request.id
    store.append(NewEvent(rid, "slack:U0MALLORY", EventKind.APPROVAL_REFUSED, {"reason": "not_an_approver"}))
    for n in (1, 2):
        store.add_approval(approval_of(rid, plan, approver(n)), approved_event(rid, approver(n)))
    assert not store.add_approval(approval_of(rid, plan, approver(1)), approved_event(rid, approver(1)))
    store.transition(rid, S.PENDING_APPROVAL, S.APPROVED, NewEvent(rid, SYSTEM, EventKind.QUORUM_REACHED))
    store.transition(rid, S.APPROVED, S.APPLYING, NewEvent(rid, SYSTEM, EventKind.APPLY_STARTED))
    lease: dict[str, EventValue] = {
        "source": "vault-kv:secret/tsig",
        "lease_id": "auth/approle/login/abc",
        "ttl_seconds": 60,
    }
    store.append(NewEvent(rid, SYSTEM, EventKind.CREDENTIALS_LEASED, lease))
    store.append(NewEvent(rid, SYSTEM, EventKind.CREDENTIALS_REVOKED, {"lease_id": "auth/approle/login/abc"}))
    store.transition(rid, S.APPLYING, S.VERIFYING, NewEvent(rid, SYSTEM, EventKind.APPLIED, {"apply_ms": 2.5}))
    for server in ("127.0.0.1:5301", "127.0.0.1:5302"):
        checked: dict[str, EventValue] = {
            "server": server,
            "name": "api.example.test.",
            "served": True,
            "seconds": 0.004,
        }
        store.append(NewEvent(rid, SYSTEM, EventKind.SERVER_CHECKED, checked))
    store.transition(rid, S.VERIFYING, S.VERIFIED, NewEvent(rid, SYSTEM, EventKind.VERIFIED))
    return rid


@pytest.fixture
def chain(store: SqlRequestStore) -> Iterator[tuple[SqlRequestStore, AuditLog, Engine]]:
    _incident(store)
    engine: Engine = store._engine  # the same database the store writes
    yield store, AuditLog(engine), engine


def _hashes(engine: Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        return [
            (r.seq, r.prev_hash, r.hash)
            for r in conn.execute(text("SELECT seq, prev_hash, hash FROM events ORDER BY seq"))
        ]


# --- format ------------------------------------------------------------------------------------


def test_canonical_line_is_plain_sorted_json_and_hash_is_sha256_of_prev_then_line() -> None:
    details = {"note": 'naïve "quoted" \\ back\nslash \u2028 ✓', "n": 3, "ok": True, "x": None, "f": 0.125}
    details_json = json.dumps(details, sort_keys=True, separators=(",", ":"))
    at = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
    actor = 'slack:U0"odd\\actor\t'

    line = canonical_event(7, "BG-Ü1", actor, "approved", details_json, at_text(at))

    fields = {
        "seq": 7,
        "request_id": "BG-Ü1",
        "actor": actor,
        "kind": "approved",
        "details": details,
        "at": "2025-03-01T09:30:15.123456Z",
    }
    assert line == json.dumps(fields, sort_keys=True, separators=(",", ":"))
    assert json.loads(line) == fields
    prev = "ab" * 32
    assert event_hash(prev, line) == hashlib.sha256((prev + line).encode()).hexdigest()


def test_every_store_write_is_chained_without_gaps(store: SqlRequestStore) -> None:
    """create, add_approval, transition and append all extend the chain; refused steps add nothing."""
    _incident(store)
    log = AuditLog(store._engine)

    rows = _hashes(store._engine)
    result = log.verify()

    assert [seq for seq, _, _ in rows] == list(range(1, 13))
    assert rows[0][1] == GENESIS_HASH
    assert all(rows[i][1] == rows[i - 1][2] for i in range(1, len(rows)))
    assert (result.ok, result.events, result.problems) == (True, 12, ())
    assert log.head() == result.head == ChainHead(12, rows[-1][2])
    # What export hands out can be re-hashed on its own, with nothing but json and hashlib.
    for record in log.records():
        fields = {k: v for k, v in record.as_dict().items() if k not in ("prev_hash", "hash")}
        recomputed = hashlib.sha256(
            (record.prev_hash + json.dumps(fields, sort_keys=True, separators=(",", ":"))).encode()
        ).hexdigest()
        assert recomputed == record.hash


def test_empty_chain_verifies_and_its_head_is_genesis(store: SqlRequestStore) -> None:
    log = AuditLog(store._engine)
    assert log.head() == ChainHead(0, GENESIS_HASH)
    assert log.verify().ok


# --- tampering ---------------------------------------------------------------------------------


def test_edited_field_is_detected_at_its_seq(chain: tuple[SqlRequestStore, AuditLog, Engine]) -> None:
    store, log, engine = chain
    _sql(engine, "UPDATE events SET details_json = :d WHERE seq = 4", d='{"digest":"someone else"}')

    result = log.verify()

    assert not result.ok
    assert result.first_bad_seq == 4
    assert "edited" in result.problems[0].text
    assert len(result.problems) == 1  # the events after it still link to its stored hash


@pytest.mark.parametrize("column", ["actor", "kind", "request_id", "at"])
def test_every_hashed_column_is_covered(chain: tuple[SqlRequestStore, AuditLog, Engine], column: str) -> None:
    _, log, engine = chain
    with engine.connect() as conn:
        value = conn.execute(text(f"SELECT {column} FROM events WHERE seq = 6")).scalar_one()  # noqa: S608
    if isinstance(value, datetime):  # PostgreSQL hands back a datetime, SQLite the stored text
        changed: object = value + timedelta(microseconds=1)
    else:
        changed = value[:-1] + ("2" if value.endswith("1") else "1") if column == "at" else value + "x"
    _sql(engine, f"UPDATE events SET {column} = :v WHERE seq = 6", v=changed)  # noqa: S608

    assert log.verify().first_bad_seq == 6


def test_deleted_middle_event_is_detected(chain: tuple[SqlRequestStore, AuditLog, Engine]) -> None:
    _, log, engine = chain
    _sql(engine, "DELETE FROM events WHERE seq = 7")

    result = log.verify()

    assert result.first_bad_seq == 7
    assert result.problems[0].text == "event 7 is missing (deleted)."


def test_deleted_and_renumbered_events_are_detected(chain: tuple[SqlRequestStore, AuditLog, Engine]) -> None:
    """Hiding a deletion by shifting the later seqs down still breaks the chain at the gap."""
    _, log, engine = chain
    _sql(engine, "DELETE FROM events WHERE seq = 7")
    for seq in range(8, 13):
        _sql(engine, "UPDATE events SET seq = :new WHERE seq = :old", new=seq - 1, old=seq)
    _sql(engine, "UPDATE chain_head SET seq = 11")

    result = log.verify()

    assert result.first_bad_seq == 7
    assert "does not follow event 6" in result.problems[0].text


def test_reordered_events_are_detected(chain: tuple[SqlRequestStore, AuditLog, Engine]) -> None:
    _, log, engine = chain
    _sql(engine, "UPDATE events SET seq = -1 WHERE seq = 5")
    _sql(engine, "UPDATE events SET seq = 5 WHERE seq = 6")
    _sql(engine, "UPDATE events SET seq = 6 WHERE seq = -1")

    result = log.verify()

    assert result.first_bad_seq == 5
    assert "does not match its hash and does not follow event 4" in result.problems[0].text


def test_truncation_needs_a_checkpoint(
    chain: tuple[SqlRequestStore, AuditLog, Engine], signer: CheckpointSigner
) -> None:
    _, log, engine = chain
    checkpoint = signer.sign(log.head())
    rows = _hashes(engine)
    # Cut off the last three events and make the head row agree, as a careful attacker would.
    _sql(engine, "DELETE FROM events WHERE seq > 9")
    _sql(engine, "UPDATE chain_head SET seq = 9, hash = :h", h=rows[8][2])

    without = log.verify()
    with_checkpoint = log.verify([checkpoint], signer.public_key)

    assert (without.ok, without.events, without.problems) == (True, 9, ())  # not detectable from the chain alone
    assert not with_checkpoint.ok
    assert with_checkpoint.first_bad_seq == 10
    assert "events 10-12 were removed (truncated)" in with_checkpoint.problems[0].text


def test_careless_truncation_is_caught_by_the_head_row(chain: tuple[SqlRequestStore, AuditLog, Engine]) -> None:
    _, log, engine = chain
    _sql(engine, "DELETE FROM events WHERE seq > 9")

    result = log.verify()

    assert result.first_bad_seq == 10
    assert "chain_head row says the last event is 12" in result.problems[0].text


def _rebuild_from(conn: Connection, start: int) -> None:
    """What an attacker with the code can do: recompute every hash from ``start`` on, and the head row."""
    rows = conn.execute(text("SELECT seq, request_id, actor, kind, details_json, at FROM events ORDER BY seq")).all()
    prev = GENESIS_HASH
    for row in rows:
        at = row.at if isinstance(row.at, datetime) else datetime.fromisoformat(row.at).replace(tzinfo=UTC)
        line = canonical_event(row.seq, row.request_id, row.actor, row.kind, row.details_json, at_text(at))
        digest = event_hash(prev, line)
        if row.seq >= start:
            conn.execute(
                text("UPDATE events SET prev_hash = :p, hash = :h WHERE seq = :s"),
                {"p": prev, "h": digest, "s": row.seq},
            )
        prev = digest
    conn.execute(text("UPDATE chain_head SET seq = :s, hash = :h"), {"s": rows[-1].seq, "h": prev})


def test_recomputed_chain_needs_a_checkpoint(
    chain: tuple[SqlRequestStore, AuditLog, Engine], signer: CheckpointSigner
) -> None:
    store, log, engine = chain
    early = signer.sign(ChainHead(3, _hashes(engine)[2][2]))
    late = signer.sign(log.head())
    # Hide mallory's refused approval attempt (event 2), then rebuild every hash after it.
    with engine.begin() as conn:
        conn.execute(text("UPDATE events SET actor = 'slack:U0BOB', details_json = '{}' WHERE seq = 2"))
        _rebuild_from(conn, 2)

    without = log.verify()
    with_checkpoints = log.verify([early, late], signer.public_key)

    assert (without.ok, without.problems) == (True, ())  # a consistent forgery: the chain alone cannot tell
    assert not with_checkpoints.ok
    assert [c.matches for c in with_checkpoints.checkpoints] == [False, False]
    assert with_checkpoints.first_bad_seq == 3
    assert "rewritten" in with_checkpoints.problems[0].text


def test_rewrite_after_a_matching_checkpoint_is_bounded_by_it(
    chain: tuple[SqlRequestStore, AuditLog, Engine], signer: CheckpointSigner
) -> None:
    _, log, engine = chain
    early = signer.sign(ChainHead(5, _hashes(engine)[4][2]))
    late = signer.sign(log.head())
    with engine.begin() as conn:
        conn.execute(text("UPDATE events SET details_json = :d WHERE seq = 10"), {"d": '{"apply_ms":1}'})
        _rebuild_from(conn, 10)

    result = log.verify([early, late], signer.public_key)

    assert [c.matches for c in result.checkpoints] == [True, False]
    assert result.covered_seq == 5
    assert result.first_bad_seq == 12
    assert "events after event 5 up to 12 were rewritten" in result.problems[0].text


def test_forged_or_foreign_checkpoints_fail_verification(
    chain: tuple[SqlRequestStore, AuditLog, Engine], signer: CheckpointSigner
) -> None:
    _, log, _ = chain
    genuine = signer.sign(log.head())
    moved = Checkpoint(genuine.seq - 3, genuine.hash, genuine.at, genuine.key_id, genuine.signature)
    foreign = CheckpointSigner(Ed25519PrivateKey.generate()).sign(log.head())

    result = log.verify([genuine, moved, foreign], signer.public_key)

    assert result.problems == ()  # the chain itself is fine
    assert not result.ok
    assert [(c.checkpoint.seq, c.signature_valid) for c in result.checkpoints] == [
        (9, False),
        (12, True),
        (12, False),
    ]
    with pytest.raises(InvalidInput, match="public key"):
        log.verify([genuine])


# --- parallel verification ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        "DELETE FROM events WHERE seq = 5",
        "DELETE FROM events WHERE seq IN (4, 5, 6)",
        "UPDATE events SET actor = 'slack:U0EVE' WHERE seq = 9",
        "UPDATE events SET prev_hash = 'f' || prev_hash WHERE seq = 9",
        "DELETE FROM events WHERE seq = 1",
    ],
)
def test_several_processes_find_exactly_what_one_finds(
    chain: tuple[SqlRequestStore, AuditLog, Engine], tamper: str
) -> None:
    """Ranges are verified in separate processes and stitched; problems at range edges are not lost."""
    _, log, engine = chain
    assert log.verify(workers=3).ok
    _sql(engine, tamper)

    alone = log.verify(workers=1)
    split = log.verify(workers=3)

    assert not alone.ok
    assert split.problems == alone.problems
    assert (split.events, split.head) == (alone.events, alone.head)


# --- concurrency -------------------------------------------------------------------------------

PER_WRITER = 25


def _append_many(url: str, writer: str, barrier: Any, results: Any) -> None:
    """Child process: its own engine, then append PER_WRITER events as fast as it can."""
    engine = make_engine(url)
    try:
        store = SqlRequestStore(engine)
        store.events("warm-up")  # connect before the start line
        barrier.wait(timeout=60)
        for i in range(PER_WRITER):
            store.append(NewEvent(f"proc-{writer}", writer, EventKind.SERVER_CHECKED, {"i": i}))
        results.put("ok")
    except BaseException as exc:
        results.put(repr(exc))
    finally:
        engine.dispose()


def test_threads_and_processes_appending_at_once_make_one_chain(store: SqlRequestStore, database_url: str) -> None:
    threads, processes = 6, 3
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(threads + processes)
    results = ctx.Queue()
    procs = [ctx.Process(target=_append_many, args=(database_url, f"p{i}", barrier, results)) for i in range(processes)]
    for p in procs:
        p.start()
    failures: list[BaseException] = []

    def in_thread(name: str) -> None:
        try:
            barrier.wait(timeout=60)
            for i in range(PER_WRITER):
                store.append(NewEvent(f"thread-{name}", name, EventKind.SERVER_CHECKED, {"i": i}))
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=in_thread, args=(f"t{i}",)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)

    assert failures == [] and outcomes == ["ok"] * processes
    total = (threads + processes) * PER_WRITER
    rows = _hashes(store._engine)
    assert [seq for seq, _, _ in rows] == list(range(1, total + 1))  # no gaps
    assert len({prev for _, prev, _ in rows}) == total  # no forks: every event has its own predecessor
    result = AuditLog(store._engine).verify()
    assert (result.ok, result.events) == (True, total)
    per_writer: dict[str, list[object]] = {}
    for record in AuditLog(store._engine).records():
        per_writer.setdefault(record.actor, []).append(record.details["i"])
    assert all(values == list(range(PER_WRITER)) for values in per_writer.values())  # each writer's order kept


def test_database_refuses_a_fork(chain: tuple[SqlRequestStore, AuditLog, Engine]) -> None:
    """Even code that skipped the head lock could not give two events the same predecessor."""
    _, log, engine = chain
    prev = _hashes(engine)[5][1]
    with pytest.raises(Exception, match="(?i)unique"):
        _sql(
            engine,
            "INSERT INTO events (seq, request_id, actor, kind, details_json, at, prev_hash, hash) "
            "VALUES (99, 'x', 'x', 'planned', '{}', :at, :p, 'h')",
            at=datetime.now(UTC),
            p=prev,
        )
    assert log.verify().ok


# --- fail closed -------------------------------------------------------------------------------


def _refuse_audit_writes_by(engine: Engine, actor: str) -> None:
    """A database-side rule that rejects one actor's events, after the state change was written."""
    if engine.dialect.name == "postgresql":
        _sql(
            engine,
            "CREATE FUNCTION refuse_event() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.actor = '{actor}' THEN RAISE EXCEPTION 'audit write refused'; END IF; RETURN NEW; END $$",
        )
        _sql(engine, "CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_event()")
    else:
        _sql(
            engine,
            f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.actor = '{actor}' "
            "BEGIN SELECT RAISE(ABORT, 'audit write refused'); END",
        )


def test_refused_event_write_leaves_no_partial_chain_and_no_state_change(store: SqlRequestStore) -> None:
    request, plan = planned(store)
    log = AuditLog(store._engine)
    _refuse_audit_writes_by(store._engine, "slack:U0REFUSED")
    before = log.head()
    refused = NewEvent(request.id, "slack:U0REFUSED", EventKind.QUORUM_REACHED)

    with pytest.raises(PersistenceError, match="nothing was changed"):
        store.transition(request.id, S.PENDING_APPROVAL, S.APPROVED, refused)
    with pytest.raises(PersistenceError):
        store.add_approval(
            approval_of(request.id, plan, approver(7)), NewEvent(request.id, "slack:U0REFUSED", EventKind.APPROVED)
        )
    with pytest.raises(PersistenceError):
        store.append(refused)

    assert store.get(request.id).state is S.PENDING_APPROVAL  # the state change went with the event
    assert store.approvals(request.id) == []
    assert log.head() == before
    assert log.verify().ok
    store.append(NewEvent(request.id, str(ALICE), EventKind.APPLY_STARTED))  # the next write continues the chain
    assert log.head().seq == before.seq + 1
    assert log.verify().ok


def _checks(request_id: str, count: int) -> list[NewEvent]:
    """What one verification records: an answer per server and rrset (a probe and a view in between)."""
    batch = [
        NewEvent(request_id, SYSTEM, EventKind.SERVER_CHECKED, {"server": f"127.0.0.1:53{n:02d}", "served": True})
        for n in range(count)
    ]
    batch.insert(1, NewEvent(request_id, SYSTEM, EventKind.PROBE_CHECKED, {"ok": True, "detail": "naïve ✓"}))
    batch.append(NewEvent(request_id, SYSTEM, EventKind.RESOLVER_VIEW, {"resolver": "127.0.0.1:5399"}))
    return batch


def test_a_batch_is_chained_in_order_like_appends_one_by_one(store: SqlRequestStore) -> None:
    request, _ = planned(store)
    log = AuditLog(store._engine)
    batch = _checks(request.id, 50)

    store.append(NewEvent(request.id, SYSTEM, EventKind.APPLY_STARTED))
    store.append_many(batch)
    store.append_many([])  # nothing to write: no transaction, no event
    store.append(NewEvent(request.id, SYSTEM, EventKind.VERIFIED))

    recorded = store.events(request.id)
    assert [(e.kind, e.details) for e in recorded[2:-1]] == [(e.kind, e.details) for e in batch]
    assert [e.seq for e in recorded] == list(range(1, len(batch) + 4))
    rows = _hashes(store._engine)
    assert all(rows[i][1] == rows[i - 1][2] for i in range(1, len(rows)))
    result = log.verify()
    assert (result.ok, result.events) == (True, len(batch) + 3)
    assert log.head() == ChainHead(len(batch) + 3, rows[-1][2])


def test_a_refused_batch_leaves_nothing_behind(store: SqlRequestStore) -> None:
    """One event the database refuses takes the whole batch with it: no partial chain (fail closed)."""
    request, _ = planned(store)
    log = AuditLog(store._engine)
    _refuse_audit_writes_by(store._engine, "slack:U0REFUSED")
    before = log.head()
    batch = _checks(request.id, 10)
    batch.insert(5, NewEvent(request.id, "slack:U0REFUSED", EventKind.SERVER_CHECKED, {"served": False}))

    with pytest.raises(PersistenceError, match="nothing was changed"):
        store.append_many(batch)

    assert [e.kind for e in store.events(request.id)] == [EventKind.PLANNED]
    assert log.head() == before
    assert log.verify().ok
    store.append_many(_checks(request.id, 2))  # the next batch continues the chain
    assert log.head().seq == before.seq + 4
    assert log.verify().ok


# --- migration of events recorded before the chain ----------------------------------------------


def test_upgrade_chains_events_recorded_before_the_chain(empty_sqlite_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = make_engine(empty_sqlite_url)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
        for seq in (3, 7, 8):  # a database sequence skips numbers when transactions roll back
            _sql(
                engine,
                "INSERT INTO events (seq, request_id, actor, kind, details_json, at) "
                "VALUES (:s, 'BG-OLD', 'slack:U0ALICE', 'planned', :d, :at)",
                s=seq,
                d=json.dumps({"n": seq}),
                at=datetime(2025, 1, 1, 12, 0, seq, tzinfo=UTC)
                .replace(tzinfo=None)
                .isoformat(sep=" ", timespec="microseconds"),
            )
        upgrade(empty_sqlite_url)
        store, log = SqlRequestStore(engine), AuditLog(engine)

        assert [(r.seq, r.details["n"]) for r in log.records()] == [(1, 3), (2, 7), (3, 8)]
        assert log.verify().ok and log.head().seq == 3
        store.append(NewEvent("BG-NEW", str(ALICE), EventKind.PLANNED))
        assert log.head().seq == 4 and log.verify().ok
    finally:
        engine.dispose()


# --- checkpoints --------------------------------------------------------------------------------


def test_checkpoint_round_trips_through_text_json_and_files(tmp_path: Path, signer: CheckpointSigner) -> None:
    head = ChainHead(42, "c0ffee" + "0" * 58)
    first, second = signer.sign(head), signer.sign(ChainHead(43, "1" * 64))
    text_line = first.to_text()

    assert text_line.startswith("breakglass-checkpoint v1 seq=42 hash=c0ffee")
    assert Checkpoint.from_text(f"Audit checkpoint: `{text_line}` (posted by breakglass)") == first
    assert Checkpoint.from_json(first.to_json()) == first
    assert verify_checkpoint(first, signer.public_key)
    assert not verify_checkpoint(Checkpoint.from_text(text_line.replace("seq=42", "seq=41")), signer.public_key)

    log_file = CheckpointLog(tmp_path / "checkpoints.jsonl")
    log_file.append(first)
    with (tmp_path / "checkpoints.jsonl").open("a") as pasted:
        pasted.write(f"\n{second.to_text()}\n")  # a line copied from the Slack audit channel
    assert read_checkpoints(tmp_path / "checkpoints.jsonl") == [first, second]

    damaged = first.to_text().replace(" sig=", " signature=")
    (tmp_path / "bad.jsonl").write_text(f"{first.to_json()}\nbreakglass APP 09:41\n{damaged}\n")
    with pytest.raises(InvalidInput, match="Line 3"):
        read_checkpoints(tmp_path / "bad.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"seq": 1}\n')
    with pytest.raises(InvalidInput, match="Line 1"):
        read_checkpoints(tmp_path / "bad.jsonl")


def test_keys_load_from_openssl_style_pem_files(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    private = tmp_path / "audit.pem"
    public = tmp_path / "audit.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    signed = CheckpointSigner(load_private_key(private)).sign(ChainHead(1, "a" * 64))

    assert verify_checkpoint(signed, load_public_key(public))
    (tmp_path / "not-a-key.txt").write_text("nope")
    with pytest.raises(InvalidInput, match="not a PEM file"):
        load_public_key(tmp_path / "not-a-key.txt")
    with pytest.raises(InvalidInput, match="Cannot read"):
        load_private_key(tmp_path / "missing.pem")


def test_checkpointer_signs_the_current_head_and_appends_it(
    chain: tuple[SqlRequestStore, AuditLog, Engine], signer: CheckpointSigner, tmp_path: Path
) -> None:
    _, log, _ = chain
    file = CheckpointLog(tmp_path / "cp.jsonl")

    made = Checkpointer(log, signer, file).checkpoint()

    assert made.head == log.head() == ChainHead(12, _hashes(chain[2])[-1][2])
    assert read_checkpoints(tmp_path / "cp.jsonl") == [made]
    assert log.verify([made], signer.public_key).covered_seq == 12


# --- incident tags ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("INC-42 primary LB down", True),
        ("fail over (inc-42)", True),
        ("see INC-42, INC-43", True),
        ("INC-420 is another incident", False),
        ("XINC-42 is not it", False),
        ("INC-42-b is a different tag", False),
        ("nothing here", False),
    ],
)
def test_incident_tag_matches_whole_words_only(reason: str, expected: bool) -> None:
    assert mentions_incident(reason, "INC-42") is expected


@pytest.mark.parametrize(
    "value",
    ["42", "X'FF'", "CAST(X'C328' AS TEXT)"],
    ids=["a number", "raw bytes", "text that is not UTF-8"],
)
def test_values_of_the_wrong_type_or_encoding_are_reported_not_fatal(sqlite_url: str, value: str) -> None:
    """SQLite stores whatever it is given; verification reports such a row instead of crashing."""
    engine = make_engine(sqlite_url)
    try:
        _incident(SqlRequestStore(engine))
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE events SET actor = {value} WHERE seq = 3")  # noqa: S608
            conn.exec_driver_sql(f"UPDATE events SET at = {value} WHERE seq = 8")  # noqa: S608

        result = AuditLog(engine).verify()

        assert [p.seq for p in result.problems] == [3, 8]
    finally:
        engine.dispose()
