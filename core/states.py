"""The change request's state machine: every legal step is listed here and nowhere else."""

from __future__ import annotations

from enum import StrEnum

from core.errors import IllegalTransition


class RequestState(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"  # not approved (or not applied) within the policy's expiry
    APPLYING = "applying"
    NEEDS_ELEVATED_APPROVAL = "needs_elevated_approval"  # only the sealed envelope is left; it needs more approvals
    CONFLICT = "conflict"  # the plan is no longer current (record or policy changed); nothing applied
    APPLY_FAILED = "apply_failed"  # credentials or change path failed; nothing applied
    VERIFYING = "verifying"  # applied; waiting for every authoritative server
    VERIFIED = "verified"  # every authoritative server serves it (no liveness probe configured)
    RECOVERED = "recovered"  # verified, and every liveness probe of the new target passed
    VERIFIED_NOT_LIVE = "verified_not_live"  # served everywhere, but the new target failed its probes
    VERIFICATION_FAILED = "verification_failed"


TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.PENDING_APPROVAL: frozenset({RequestState.APPROVED, RequestState.DENIED, RequestState.EXPIRED}),
    # An approved plan that is no longer current (policy changed, expired) is never applied.
    RequestState.APPROVED: frozenset({RequestState.APPLYING, RequestState.EXPIRED, RequestState.CONFLICT}),
    RequestState.APPLYING: frozenset(
        {
            RequestState.VERIFYING,
            RequestState.CONFLICT,
            RequestState.APPLY_FAILED,
            RequestState.NEEDS_ELEVATED_APPROVAL,
        }
    ),
    # Only the sealed envelope is left: more approvals re-open the way to apply.
    RequestState.NEEDS_ELEVATED_APPROVAL: frozenset({RequestState.APPROVED, RequestState.DENIED, RequestState.EXPIRED}),
    RequestState.VERIFYING: frozenset(
        {
            RequestState.VERIFIED,
            RequestState.RECOVERED,
            RequestState.VERIFIED_NOT_LIVE,
            RequestState.VERIFICATION_FAILED,
        }
    ),
    RequestState.DENIED: frozenset(),
    RequestState.EXPIRED: frozenset(),
    RequestState.CONFLICT: frozenset(),
    RequestState.APPLY_FAILED: frozenset(),
    RequestState.VERIFIED: frozenset(),
    RequestState.RECOVERED: frozenset(),
    # Checking again is always allowed where the last check did not declare recovery.
    RequestState.VERIFIED_NOT_LIVE: frozenset({RequestState.VERIFYING}),
    RequestState.VERIFICATION_FAILED: frozenset({RequestState.VERIFYING}),
}

# States in which approvers may still add approvals.
OPEN_FOR_APPROVAL = frozenset({RequestState.PENDING_APPROVAL, RequestState.NEEDS_ELEVATED_APPROVAL})

# States after which the change reached (some) DNS servers, so a rollback makes sense.
ROLLBACK_ALLOWED = frozenset(
    {RequestState.VERIFIED, RequestState.RECOVERED, RequestState.VERIFIED_NOT_LIVE, RequestState.VERIFICATION_FAILED}
)
RECHECK_ALLOWED = frozenset({RequestState.VERIFIED_NOT_LIVE, RequestState.VERIFICATION_FAILED})

# States in which a bot process is carrying the request out (and heartbeats while it does).
IN_FLIGHT = frozenset({RequestState.APPROVED, RequestState.APPLYING, RequestState.VERIFYING})

# States a request comes to rest in until people act again; each is announced to its thread when reached.
RESTING = frozenset(RequestState) - IN_FLIGHT - {RequestState.PENDING_APPROVAL}


def check_transition(current: RequestState, new: RequestState) -> None:
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(
            f"A request that is `{current.value}` cannot become `{new.value}`.",
            hint="Check `/dns status <id>` for where it stands.",
        )


def is_terminal(state: RequestState) -> bool:
    """No further step is possible (a recheck of a failed verification is, so that is not terminal)."""
    return not TRANSITIONS[state]
