"""Ports: what the service needs from the outside world, as typing.Protocols.

Adapters (providers, credentials, store, bot, cli) implement these; the service
only ever sees these shapes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from core.credentials import Credentials, LeaseInfo
from core.events import Event, NewEvent
from core.liveness import LivenessReport, Probe
from core.models import Approval, ChangeRequest, Plan, RRsetChange
from core.records import RecordType, RRset
from core.states import RequestState
from core.verification import (
    ResolverView,
    ServerAddress,
    ServerAnswer,
    ServerSet,
    VerificationOutcome,
    VerificationReport,
)


class ChangePath(Protocol):
    """One way to change a zone (RFC2136, PowerDNS API, Route53...).

    ``read`` returns what the path's control plane holds now. ``apply`` applies all
    changes atomically, and only if every rrset still equals its ``before``
    (compare-and-swap); otherwise it raises ConflictError and changes nothing.
    Other failures raise ProviderError. Neither message may contain a secret.
    """

    name: str
    supported_types: frozenset[RecordType]
    reads_need_credentials: bool  # API paths (PowerDNS, Route53) need a lease even to plan

    def read(self, name: str, rtype: RecordType, credentials: Credentials | None = None) -> RRset | None: ...

    def apply(self, changes: Sequence[RRsetChange], credentials: Credentials) -> None: ...


class Lease(Protocol):
    @property
    def info(self) -> LeaseInfo: ...

    @property
    def credentials(self) -> Credentials: ...

    def revoke(self) -> None:
        """Revoke the lease now; raises CredentialError if that fails (it still expires by TTL)."""


class CredentialSource(Protocol):
    name: str

    def lease(self) -> Lease:
        """Fetch short-lived credentials; raises CredentialError, never leaking a secret."""


class AuthoritativeQuerier(Protocol):
    def query(self, server: ServerAddress, name: str, rtype: RecordType) -> ServerAnswer:
        """Ask ``server`` directly (recursion off); never raises for DNS-level failures."""


class ZoneInspector(Protocol):
    """Where a zone's authoritative servers are, and whether the rest of the world can see them."""

    def authoritative_servers(self, zone: str) -> ServerSet: ...

    def delegation_warnings(self, zone: str) -> tuple[str, ...]:
        """Sentences for people when the parent's delegation does not match the zone's NS set."""

    def resolver_views(self, change: RRsetChange) -> tuple[ResolverView, ...]: ...


class LivenessProber(Protocol):
    def probe(self, rrset: RRset, probes: Sequence[Probe]) -> LivenessReport:
        """Probe the new target(s) of ``rrset``; never raises for network failures."""


@dataclass(frozen=True)
class StoredRequest:
    request: ChangeRequest
    plan: Plan
    state: RequestState
    anchor: str | None  # where a front door shows this request (e.g. Slack channel and ts)
    updated_at: datetime


class RequestStore(Protocol):
    """Durable requests, approvals and events. Writes raise PersistenceError when refused."""

    def create(self, request: ChangeRequest, plan: Plan, event: NewEvent) -> StoredRequest: ...

    def get(self, request_id: str) -> StoredRequest:
        """Raises UnknownRequest."""

    def transition(self, request_id: str, current: RequestState, new: RequestState, event: NewEvent) -> bool:
        """Atomically move ``current`` -> ``new`` and append ``event``; False if no longer ``current``."""

    def add_approval(self, approval: Approval, event: NewEvent) -> bool:
        """Record an approval with its event; False if this approver had already approved."""

    def approvals(self, request_id: str) -> list[Approval]: ...

    def append(self, event: NewEvent) -> None: ...

    def append_many(self, events: Sequence[NewEvent]) -> None:
        """Append ``events`` in this order in one transaction: all of them or, refused, none."""

    def events(self, request_id: str) -> list[Event]: ...

    def set_anchor(self, request_id: str, anchor: str) -> None: ...

    def recent(self, limit: int) -> list[StoredRequest]: ...


@dataclass(frozen=True)
class WorkClaim:
    """Which bot process carries out a request in flight, and its last sign of life."""

    request_id: str
    state: RequestState
    owner: str | None  # None: nobody claimed it (e.g. written by a version without claims)
    last_seen: datetime  # the later of its last state change and its owner's last heartbeat


class ClaimStore(Protocol):
    """Who carries out which request in flight, so a request whose bot died is finished by another.

    Writes raise PersistenceError when refused.
    """

    def claim(self, request_id: str, state: RequestState, owner: str) -> bool:
        """Make ``owner`` the one carrying out ``request_id`` (heartbeat now); False if it is no longer ``state``."""

    def heartbeat(self, owner: str, request_ids: Collection[str]) -> set[str]:
        """Refresh ``owner``'s claims; returns those it still holds (another bot may have taken one over)."""

    def holds(self, request_id: str, owner: str) -> bool: ...

    def stale(self, states: Collection[RequestState], silent_since: datetime) -> list[WorkClaim]:
        """Requests in ``states`` with neither a state change nor a heartbeat since ``silent_since``, oldest first."""

    def take_over(self, claim: WorkClaim, owner: str, silent_since: datetime, event: NewEvent) -> bool:
        """Claim a still-stale request for ``owner`` and append ``event``, in one transaction.

        Compare-and-set: of several bots trying at once, exactly one gets True.
        """

    def announce(self, request_id: str, state: RequestState) -> bool:
        """Record that people were told ``request_id`` is ``state``; False if it is no longer ``state`` or that
        was already recorded since it became so (compare-and-set: of several bots, exactly one gets True)."""

    def unannounced(
        self, states: Collection[RequestState], changed_before: datetime, changed_after: datetime
    ) -> list[str]:
        """Requests in ``states``, reached between the two times, whose thread was never told so; oldest first."""


class DrillOutcome(StrEnum):
    PASSED = "passed"  # the canary was served everywhere, deleted, and its deletion served everywhere
    FAILED = "failed"
    UNAVAILABLE = "unavailable"  # taken out on purpose (a simulated primary outage)
    SKIPPED = "skipped"  # not tried: a sealed envelope, or it shares a trust path with a path that failed


@dataclass(frozen=True)
class DrillRecord:
    """One change path's part in a drill, with the seconds each phase took (None: not reached)."""

    drill_id: str
    zone: str
    path: str
    actor: str
    started_at: datetime
    outcome: DrillOutcome
    simulated_outage: bool
    lease_seconds: float | None = None
    apply_seconds: float | None = None
    propagation_seconds: float | None = None  # until every authoritative server served the canary
    cleanup_seconds: float | None = None  # lease, delete, and until every server stopped serving it
    routing_seconds: float | None = None  # measured time to corrected routing (approval not included)
    detail: str = ""


class DrillStore(Protocol):
    """Drill history. Writes raise PersistenceError when refused."""

    def record(self, record: DrillRecord, event: NewEvent) -> None:
        """Store one path's result together with its audit event (one transaction)."""

    def history(self, *, zone: str | None = None, limit: int = 50) -> list[DrillRecord]:
        """Newest first."""

    def last_passed(self, zone: str, path: str) -> DrillRecord | None: ...


class AuditCheckpointer(Protocol):
    def checkpoint(self) -> str:
        """Sign the audit chain head, keep a copy outside the database; returns the line to publish."""


class CheckpointPublisher(Protocol):
    def checkpoint(self, text: str) -> None:
        """Publish a signed audit checkpoint (e.g. to an audit channel)."""


class Notifier(CheckpointPublisher, Protocol):
    """How the service tells people about a request it is carrying out, and publishes its checkpoints."""

    def progress(self, stored: StoredRequest, text: str) -> None: ...

    def verifying(self, stored: StoredRequest, report: VerificationReport) -> None:
        """Called after each polling round; implementations throttle their own updates."""

    def finished(self, stored: StoredRequest, outcome: VerificationOutcome | None) -> None: ...
