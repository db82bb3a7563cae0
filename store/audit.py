"""The hash-chained audit log: appending, verifying and exporting events.

Every event is hashed as canonical JSON together with the hash of the event before it::

    hash(n) = sha256( hash(n-1) || canonical_json(seq, request_id, actor, kind, details, at) )

so editing, removing or reordering any event breaks every check after it. Appends take
the one-row ``chain_head`` table's row lock (PostgreSQL ``SELECT ... FOR UPDATE``; SQLite
writers are already serialised by ``BEGIN IMMEDIATE``) inside the transaction that writes
the event (a batch of events takes it once), so concurrent writers in any number of processes
produce one chain with no gaps and no forks, and a refused write leaves no partial chain behind.

Verification reads the events with the raw database driver and rebuilds each canonical
line with string formatting: the per-event cost stays within a few times that of sha256
itself. Each event is checked against its own stored ``prev_hash``, so a long chain can be
verified in several processes and the ranges stitched together afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from sqlalchemy import Connection, Engine, create_engine, insert, or_, select, update
from sqlalchemy.exc import DBAPIError

from core.errors import InvalidInput, PersistenceError
from core.events import NewEvent
from core.models import request_from_dict
from store.checkpoints import (
    GENESIS_HASH,
    ChainHead,
    Checkpoint,
    CheckpointLog,
    CheckpointSigner,
    sorted_by_seq,
    verify_checkpoint,
)
from store.schema import chain_head, change_requests, events

__all__ = [
    "GENESIS_HASH",
    "AuditLog",
    "AuditRecord",
    "ChainHead",
    "ChainVerification",
    "CheckpointCheck",
    "Checkpointer",
    "EventFilter",
    "Problem",
    "append_all_chained",
    "append_chained",
    "at_text",
    "canonical_event",
    "event_hash",
    "mentions_incident",
]

CHAIN_HEAD_ID = 1
PARALLEL_THRESHOLD = 200_000  # below this, one process takes well under a second
MAX_PROBLEMS = 100  # a rebuilt chain can break at every event; the first ones say enough

# Sorted keys, no spaces, ASCII only: byte-for-byte what
# json.dumps({...}, sort_keys=True, separators=(",", ":")) produces for the same fields.
_LINE = '{"actor":%s,"at":"%sT%sZ","details":%s,"kind":%s,"request_id":%s,"seq":%d}'
_STORED_AT_LENGTH = len("2025-03-01 09:30:15.123456")


# --- the chain format (a permanent contract: changing it breaks every existing chain) -----


def at_text(at: datetime) -> str:
    """An event time as stored and hashed: UTC, microseconds, e.g. ``2025-03-01 09:30:15.123456``."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def canonical_event(seq: int, request_id: str, actor: str, kind: str, details_json: str, at: str) -> str:
    """The canonical JSON line of one event; ``at`` as ``at_text`` gives it, ``details_json`` canonical JSON."""
    return _LINE % (
        encode_basestring_ascii(actor),
        at[:10],
        at[11:],
        details_json,
        encode_basestring_ascii(kind),
        encode_basestring_ascii(request_id),
        seq,
    )


def event_hash(prev_hash: str, line: str) -> str:
    """sha256 over the previous hash (64 hex digits) followed by the canonical line, as hex."""
    return hashlib.sha256((prev_hash + line).encode("utf-8")).hexdigest()


def append_chained(conn: Connection, new: NewEvent, at: datetime, details_json: str) -> ChainHead:
    """Append ``new`` to the chain inside the caller's write transaction; returns the new head."""
    return append_all_chained(conn, [(new, at, details_json)])


def append_all_chained(conn: Connection, batch: Sequence[tuple[NewEvent, datetime, str]]) -> ChainHead:
    """Append each (event, time, canonical details JSON) of ``batch`` in order, inside the caller's
    write transaction; returns the new head.

    The head row is locked first, so the sequence numbers and previous hashes cannot change
    before this transaction commits or rolls back (and a rollback takes every event with it).
    A batch takes the lock once and writes its rows in one statement: the chain is the same
    as appending them one by one.
    """
    row = conn.execute(
        select(chain_head.c.seq, chain_head.c.hash).where(chain_head.c.id == CHAIN_HEAD_ID).with_for_update()
    ).first()
    if row is None:
        raise PersistenceError(
            "The audit chain has no head row, so no event can be recorded; nothing was changed.",
            hint="Run `breakglass db upgrade --config FILE` to finish the schema, then try again.",
        )
    seq, prev = int(row.seq), str(row.hash)
    rows = []
    for new, at, details_json in batch:
        seq += 1
        digest = event_hash(
            prev, canonical_event(seq, new.request_id, new.actor, new.kind.value, details_json, at_text(at))
        )
        rows.append({
            "seq": seq, "request_id": new.request_id, "actor": new.actor, "kind": new.kind.value,
            "details_json": details_json, "at": at, "prev_hash": prev, "hash": digest,
        })  # fmt: skip
        prev = digest
    if rows:
        conn.execute(insert(events), rows)
        conn.execute(update(chain_head).where(chain_head.c.id == CHAIN_HEAD_ID).values(seq=seq, hash=prev))
    return ChainHead(seq, prev)


# --- incident tags ------------------------------------------------------------------------

INCIDENT_TAG = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)+")


def mentions_incident(reason: str, tag: str) -> bool:
    """True if ``tag`` (e.g. ``INC-42``) appears in ``reason`` as a whole word, ignoring case.

    ``INC-42`` matches "INC-42 LB down" and "(inc-42)", but not "INC-420" or "XINC-42".
    """
    pattern = rf"(?<![A-Za-z0-9-]){re.escape(tag)}(?![A-Za-z0-9-])"
    return re.search(pattern, reason, flags=re.IGNORECASE) is not None


def check_incident_tag(tag: str) -> str:
    if not INCIDENT_TAG.fullmatch(tag):
        raise InvalidInput(
            f"`{tag}` is not an incident tag.",
            hint="An incident tag is letters, a hyphen and letters or digits, as written in the reason: INC-42.",
        )
    return tag


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Something wrong at sequence number ``seq``, said in a sentence."""

    seq: int
    text: str


@dataclass(frozen=True)
class CheckpointCheck:
    checkpoint: Checkpoint
    signature_valid: bool
    matches: bool  # the chain still has exactly the signed hash at the signed seq
    text: str


@dataclass(frozen=True)
class ChainVerification:
    events: int
    head: ChainHead  # the last event found
    recorded_head: ChainHead  # what the chain_head row says
    problems: tuple[Problem, ...]  # sorted by seq, at most MAX_PROBLEMS
    checkpoints: tuple[CheckpointCheck, ...]
    covered_seq: int  # the highest seq a valid, matching checkpoint vouches for (0: none)

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.signature_valid and c.matches for c in self.checkpoints)

    @property
    def first_bad_seq(self) -> int | None:
        return self.problems[0].seq if self.problems else None


@dataclass(frozen=True)
class _Range:
    """What verifying one run of consecutive rows found; ranges are stitched in order."""

    count: int = 0
    first_seq: int = 0
    first_prev: str = ""
    first_altered: bool = False
    last_seq: int = 0
    last_hash: str = ""
    problems: tuple[Problem, ...] = ()
    hashes: dict[int, str] = field(default_factory=dict)  # seq -> stored hash, for the checkpoints


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """Which events to export. ``since`` is inclusive, ``until`` exclusive; all filters combine."""

    since: datetime | None = None
    until: datetime | None = None
    request_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: datetime
    request_id: str
    actor: str
    kind: str
    details_json: str
    prev_hash: str
    hash: str

    @property
    def at_iso(self) -> str:
        return self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    @property
    def details(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.details_json)
        return parsed

    def canonical(self) -> str:
        return canonical_event(self.seq, self.request_id, self.actor, self.kind, self.details_json, at_text(self.at))

    def hash_ok(self) -> bool:
        """The stored hash matches this event's fields (the link to its neighbours is not checked here)."""
        return event_hash(self.prev_hash, self.canonical()) == self.hash

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at_iso,
            "request_id": self.request_id,
            "actor": self.actor,
            "kind": self.kind,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


class AuditLog:
    """Read-side of the audit chain: its head, verification, selection for export and reports."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def head(self) -> ChainHead:
        """The newest event's seq and hash, as the chain_head row records it (what a checkpoint signs)."""
        try:
            with self._engine.connect() as conn:
                row = conn.execute(
                    select(chain_head.c.seq, chain_head.c.hash).where(chain_head.c.id == CHAIN_HEAD_ID)
                ).first()
        except DBAPIError as exc:
            raise _unreadable(exc) from exc
        if row is None:
            raise PersistenceError(
                "The audit chain has no head row.", hint="Run `breakglass db upgrade --config FILE` first."
            )
        return ChainHead(int(row.seq), str(row.hash))

    def records(self, selection: EventFilter = EventFilter()) -> list[AuditRecord]:
        query = select(events).order_by(events.c.seq)
        if selection.since is not None:
            query = query.where(events.c.at >= selection.since)
        if selection.until is not None:
            query = query.where(events.c.at < selection.until)
        if selection.request_ids is not None:
            query = query.where(events.c.request_id.in_(selection.request_ids))
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
        except DBAPIError as exc:
            raise _unreadable(exc) from exc
        return [
            AuditRecord(r.seq, r.at, r.request_id, r.actor, r.kind, r.details_json, r.prev_hash, r.hash) for r in rows
        ]

    def requests_for_incident(self, tag: str) -> list[str]:
        """Ids of requests whose reason names ``tag`` (see ``mentions_incident``), oldest first,
        plus rollbacks of those requests."""
        check_incident_tag(tag)
        query = (
            select(change_requests.c.id, change_requests.c.request_json)
            .where(or_(change_requests.c.request_json.ilike(f"%{tag}%"), change_requests.c.kind == "rollback"))
            .order_by(change_requests.c.created_at, change_requests.c.id)
        )
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
        except DBAPIError as exc:
            raise _unreadable(exc) from exc
        found: list[str] = []
        for row in rows:
            request = request_from_dict(json.loads(row.request_json))
            if mentions_incident(request.reason, tag) or request.rollback_of in found:
                found.append(row.id)
        return found

    # --- verification -------------------------------------------------------------------

    def verify(
        self,
        checkpoints: Sequence[Checkpoint] = (),
        public_key: Ed25519PublicKey | None = None,
        *,
        workers: int | None = None,
    ) -> ChainVerification:
        """Recompute every hash and link, then hold the chain against each signed checkpoint.

        ``workers`` None picks one process for short chains and up to four for long ones.
        Checkpoints need ``public_key``; without checkpoints, a truncated or completely
        rebuilt chain cannot be told apart from an honest one.
        """
        if checkpoints and public_key is None:
            raise InvalidInput("Checkpoints can only be checked with the public key that signed them.")
        signed = [(c, public_key is not None and verify_checkpoint(c, public_key)) for c in sorted_by_seq(checkpoints)]
        wanted = frozenset(c.seq for c, valid in signed if valid)
        try:
            ranges = self._verify_ranges(wanted, workers)
            recorded = self.head()
        except DBAPIError as exc:
            raise _unreadable(exc) from exc
        return _conclude(ranges, recorded, signed)

    def _verify_ranges(self, wanted: frozenset[int], workers: int | None) -> list[_Range]:
        with self._engine.connect() as conn:
            count = int(conn.exec_driver_sql("SELECT count(*) FROM events").scalar_one())
            if workers is None:
                workers = 1 if count < PARALLEL_THRESHOLD else min(os.cpu_count() or 1, 4)
            chosen = max(1, min(workers, count))
            starts = [
                int(
                    conn.execute(
                        select(events.c.seq).order_by(events.c.seq).offset(count * i // chosen).limit(1)
                    ).scalar_one()
                )
                for i in range(1, chosen)
            ]
            bounds = list(zip([None, *starts], [*starts, None], strict=True))
            if len(bounds) == 1:
                return [_verify_rows(_fetch_rows(conn, None, None), wanted)]
            url = self._engine.url.render_as_string(hide_password=False)
            with ProcessPoolExecutor(max_workers=len(bounds) - 1, mp_context=_worker_context()) as pool:
                others: list[Future[_Range]] = [
                    pool.submit(_verify_range_in_process, url, lo, hi, wanted) for lo, hi in bounds[1:]
                ]
                first = _verify_rows(_fetch_rows(conn, *bounds[0]), wanted)
                return [first, *(f.result() for f in others)]


class Checkpointer:
    """Signs the current chain head and publishes it: call ``checkpoint()`` at the end of every
    request and from a timer; post ``to_text()`` of the result to the audit channel."""

    def __init__(self, log: AuditLog, signer: CheckpointSigner, file: CheckpointLog | None = None) -> None:
        self._log = log
        self._signer = signer
        self._file = file

    def checkpoint(self) -> Checkpoint:
        made = self._signer.sign(self._log.head())
        if self._file is not None:
            self._file.append(made)
        return made


def _worker_context() -> BaseContext:
    """fork when this process has a single thread (the CLI): workers start in milliseconds with the
    code already imported. Otherwise spawn, which re-imports (about 0.3 s per worker) but is safe
    next to other threads. Each worker opens its own database connection either way."""
    if "fork" in get_all_start_methods() and threading.active_count() == 1:
        return get_context("fork")
    return get_context("spawn")


def _unreadable(exc: DBAPIError) -> PersistenceError:
    return PersistenceError(
        f"The audit database could not be read ({type(exc.orig).__name__}).",
        hint="Check the database is reachable, then try again.",
    )


def _fetch_rows(conn: Connection, lo: int | None, hi: int | None) -> Iterator[tuple[Any, ...]]:
    """Raw rows (seq, request_id, actor, kind, details_json, at, prev_hash, hash) for lo <= seq < hi.

    The raw driver skips SQLAlchemy's per-row processing, and text comes back as the stored
    UTF-8 bytes (no decoding: faster, and bytes that are not UTF-8 are reported, not fatal).
    ``at`` is the stored text on SQLite, and PostgreSQL formats it the same way itself.
    """
    postgres = conn.dialect.name == "postgresql"
    at = "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')" if postgres else "at"
    conditions = []
    if lo is not None:
        conditions.append(f"seq >= {int(lo)}")
    if hi is not None:
        conditions.append(f"seq < {int(hi)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = f"SELECT seq, request_id, actor, kind, details_json, {at}, prev_hash, hash FROM events{where} ORDER BY seq"  # noqa: S608 (fixed text and integers)  # nosec B608
    raw: Any = conn.connection.driver_connection
    if postgres:
        cursor = raw.cursor(name="breakglass_audit_verify")
        cursor.itersize = 20_000
        for text_type in ("text", "varchar"):
            cursor.adapters.register_loader(text_type, _BytesLoader)
        try:
            cursor.execute(sql)
            yield from cursor
        finally:
            cursor.close()
        return
    text_factory = raw.text_factory
    raw.text_factory = bytes
    cursor = raw.cursor()
    try:
        cursor.execute(sql)
        yield from cursor
    finally:
        cursor.close()
        raw.text_factory = text_factory


class _BytesLoader(Loader):
    """psycopg: hand text columns over as their bytes, like SQLite's ``text_factory = bytes``."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def _verify_range_in_process(url: str, lo: int | None, hi: int | None, wanted: frozenset[int]) -> _Range:
    """Worker-process entry point: its own engine and connection, one range of rows."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return _verify_rows(_fetch_rows(conn, lo, hi), wanted)
    finally:
        engine.dispose()


class _Quoted(dict[bytes, bytes]):
    """JSON string literals of the few distinct actors, kinds and request ids, computed once each."""

    def __missing__(self, key: bytes) -> bytes:
        quoted = encode_basestring_ascii(key.decode("utf-8", "surrogateescape")).encode("ascii")
        self[key] = quoted
        return quoted


# _LINE as bytes with the previous hash in front: what the hot loop formats and hashes.
_HASHED_LINE = ("%b" + _LINE.replace("%s", "%b")).encode("ascii")


def _verify_rows(rows: Iterable[tuple[Any, ...]], wanted: frozenset[int]) -> _Range:
    """Check consecutive rows: seq has no gaps, each links to the one before, each hash matches.

    The first row's link is checked when ranges are stitched together (``_conclude``). The
    loop is the hot path of `audit verify`: when nothing is wrong it costs one format, one
    sha256 and a few comparisons per event; everything else happens only on a problem.
    """
    iterator = iter(rows)
    first = next(iterator, None)
    if first is None:
        return _Range()
    sha256 = hashlib.sha256
    actors, kinds, ids = _Quoted(), _Quoted(), _Quoted()
    problems: list[Problem] = []
    first_seq, first_prev, prev = int(first[0]), first[6], first[7]
    first_altered = _altered(first, actors, kinds, ids)
    hashes: dict[int, bytes] = {first_seq: prev} if first_seq in wanted else {}
    expected, count = first_seq + 1, 1
    for seq, request_id, actor, kind, details, at, prev_hash, stored in iterator:
        try:  # the same computation as _altered, inlined: this runs once per event
            hashed = _HASHED_LINE % (
                prev_hash,
                actors[actor],
                at[:10],
                at[11:],
                details,
                kinds[kind],
                ids[request_id],
                seq,
            )
            altered = sha256(hashed).hexdigest().encode() != stored or len(at) != _STORED_AT_LENGTH
        except (TypeError, AttributeError):  # a value of the wrong type was written straight into the database
            altered = True
        if altered or seq != expected or prev_hash != prev:
            gap = seq != expected
            if gap:
                problems.append(Problem(expected, _missing(expected, seq - 1)))
            unlinked = prev_hash != prev and not gap
            if altered or unlinked:
                problems.append(Problem(seq, _row_problem(seq, altered, unlinked)))
            if len(problems) > MAX_PROBLEMS:
                break
        if seq in wanted:
            hashes[seq] = stored
        prev, expected, count = stored, seq + 1, count + 1
    found = {seq: _text(stored) for seq, stored in hashes.items()}
    return _Range(count, first_seq, _text(first_prev), first_altered, expected - 1, _text(prev), tuple(problems), found)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _altered(row: tuple[Any, ...], actors: _Quoted, kinds: _Quoted, ids: _Quoted) -> bool:
    """True if the row's stored hash is not sha256(its prev_hash || its canonical line)."""
    seq, request_id, actor, kind, details, at, prev_hash, stored = row
    try:
        hashed = _HASHED_LINE % (prev_hash, actors[actor], at[:10], at[11:], details, kinds[kind], ids[request_id], seq)
        return bool(hashlib.sha256(hashed).hexdigest().encode() != stored or len(at) != _STORED_AT_LENGTH)
    except (TypeError, AttributeError):  # a value of the wrong type was written straight into the database
        return True


def _missing(first: int, last: int) -> str:
    if first == last:
        return f"event {first} is missing (deleted)."
    return f"events {first}-{last} are missing (deleted)."


def _row_problem(seq: int, altered: bool, unlinked: bool) -> str:
    if altered and unlinked:
        return f"event {seq} does not match its hash and does not follow event {seq - 1} (edited, moved or replaced)."
    if altered:
        return f"event {seq} does not match its hash: a field was edited after it was recorded."
    return (
        f"event {seq} does not follow event {seq - 1}: its prev_hash is not the hash of event {seq - 1} "
        "(events were reordered, removed or replaced)."
    )


def _conclude(ranges: list[_Range], recorded: ChainHead, signed: list[tuple[Checkpoint, bool]]) -> ChainVerification:
    """Stitch the ranges together, compare with the head row, then with each checkpoint."""
    problems: list[Problem] = []
    hashes: dict[int, str] = {0: GENESIS_HASH}
    last_seq, last_hash, count = 0, GENESIS_HASH, 0
    for part in ranges:
        if part.count == 0:
            continue
        gap = part.first_seq != last_seq + 1
        if gap:
            problems.append(Problem(last_seq + 1, _missing(last_seq + 1, part.first_seq - 1)))
        unlinked = part.first_prev != last_hash and not gap
        if part.first_altered or unlinked:
            problems.append(Problem(part.first_seq, _row_problem(part.first_seq, part.first_altered, unlinked)))
        problems.extend(part.problems)
        hashes.update(part.hashes)
        last_seq, last_hash, count = part.last_seq, part.last_hash, count + part.count
    head = ChainHead(last_seq, last_hash)
    if recorded != head:
        at = min(recorded.seq, head.seq) + (0 if recorded.seq == head.seq else 1)
        problems.append(
            Problem(
                at,
                f"the chain_head row says the last event is {recorded.seq} ({recorded.hash[:12]}…) "
                f"but the last event found is {head.seq} ({head.hash[:12]}…).",
            )
        )
    checks, covered = _check_checkpoints(signed, hashes, head, problems)
    problems.sort(key=lambda p: p.seq)
    return ChainVerification(count, head, recorded, tuple(problems[:MAX_PROBLEMS]), tuple(checks), covered)


def _check_checkpoints(
    signed: list[tuple[Checkpoint, bool]], hashes: dict[int, str], head: ChainHead, problems: list[Problem]
) -> tuple[list[CheckpointCheck], int]:
    checks: list[CheckpointCheck] = []
    covered = 0
    for checkpoint, valid in signed:
        when = f"{checkpoint.at:%Y-%m-%d %H:%M:%S} UTC"
        if not valid:
            checks.append(
                CheckpointCheck(
                    checkpoint, False, False, "signature does not verify with this public key (forged or wrong key)"
                )
            )
            continue
        found = hashes.get(checkpoint.seq)
        if found == checkpoint.hash:
            covered = max(covered, checkpoint.seq)
            checks.append(CheckpointCheck(checkpoint, True, True, f"events 1-{checkpoint.seq} are as signed"))
            continue
        if checkpoint.seq > head.seq:
            text = (
                f"the chain ends at event {head.seq} but the checkpoint signed at {when} covers up to "
                f"event {checkpoint.seq}: events {head.seq + 1}-{checkpoint.seq} were removed (truncated)."
            )
            problems.append(Problem(head.seq + 1, text))
        elif found is None:
            text = f"event {checkpoint.seq}, signed at {when}, is missing."
            problems.append(Problem(checkpoint.seq, text))
        else:
            since = f" after event {covered}" if covered else ""
            text = (
                f"event {checkpoint.seq} has a different hash than the checkpoint signed at {when}: "
                f"events{since} up to {checkpoint.seq} were rewritten (hashes recomputed)."
            )
            problems.append(Problem(checkpoint.seq, text))
        checks.append(CheckpointCheck(checkpoint, True, False, text))
    return checks, covered
