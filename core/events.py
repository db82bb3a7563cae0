"""Audit events: one per state transition, refusal, attempt and result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

EventValue = str | int | float | bool | None


class EventKind(StrEnum):
    PLANNED = "planned"
    REQUEST_REFUSED = "request_refused"  # the policy did not allow the request; nothing was created
    EXPIRED = "expired"
    EMERGENCY_APPROVED = "emergency_approved"  # requester self-approved under the emergency clause
    APPROVED = "approved"  # one approver's approval counted
    APPROVAL_REFUSED = "approval_refused"
    QUORUM_REACHED = "quorum_reached"
    DENIED = "denied"
    APPLY_STARTED = "apply_started"
    CREDENTIALS_LEASED = "credentials_leased"
    CREDENTIALS_REVOKED = "credentials_revoked"
    CREDENTIALS_REVOKE_FAILED = "credentials_revoke_failed"
    CREDENTIALS_FAILED = "credentials_failed"
    CREDENTIALS_MUST_ROTATE = "credentials_must_rotate"  # a sealed envelope was opened
    PATH_FAILED = "path_failed"  # one change path failed; the next one with another trust path is tried
    PATH_SKIPPED = "path_skipped"
    ELEVATION_REQUIRED = "elevation_required"  # usual paths failed; the sealed envelope needs more approvals
    CONFLICT = "conflict"
    APPLY_FAILED = "apply_failed"
    APPLIED = "applied"
    SERVER_CHECKED = "server_checked"  # one authoritative server, one rrset: served or not, and when
    PROBE_CHECKED = "probe_checked"  # one liveness probe of one target
    DELEGATION_WARNING = "delegation_warning"
    RESOLVER_VIEW = "resolver_view"
    RECHECK_REQUESTED = "recheck_requested"
    VERIFIED = "verified"
    RECOVERED = "recovered"
    VERIFIED_NOT_LIVE = "verified_not_live"
    VERIFICATION_FAILED = "verification_failed"
    ROLLBACK_REQUESTED = "rollback_requested"
    RECOVERY_STARTED = "recovery_started"  # a bot took over a request whose bot stopped mid-flow (crash recovery)
    LEASE_UNREVOKED = "lease_unrevoked"  # a lease the stopped bot never revoked; it expires by its TTL
    DRILL_STARTED = "drill_started"  # a drill was authorised by the policy's drill rule (approvals simulated)
    DRILL_PATH = "drill_path"  # one change path's drill: outcome and the time each phase took
    DRILL_FINISHED = "drill_finished"


@dataclass(frozen=True)
class NewEvent:
    """An event to append. ``details`` holds flat, non-secret facts only."""

    request_id: str
    actor: str
    kind: EventKind
    details: dict[str, EventValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    seq: int
    request_id: str
    actor: str
    kind: EventKind
    details: dict[str, EventValue]
    at: datetime
