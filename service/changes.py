"""ChangeService: one change request from plan to verified, the same for Slack and the CLI."""

from __future__ import annotations

import secrets
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import structlog

from approvals.matching import Requirement, check_request
from approvals.policy import Policy, PolicyError
from approvals.signing import PolicySignatureError
from approvals.statements import Decision, SignedStatement, verify_statement
from core.credentials import Credentials
from core.errors import (
    ApprovalRefused,
    BreakglassError,
    ConflictError,
    CredentialError,
    InvalidInput,
    PersistenceError,
    ProviderError,
    RefusalReason,
    SafetyRefused,
)
from core.events import Event, EventKind, EventValue, NewEvent
from core.liveness import LivenessReport
from core.models import SYSTEM, Approval, ChangeRequest, Principal, RecordEdit, RequestKind, RRsetChange
from core.ports import AuditCheckpointer, LivenessProber, Notifier, RequestStore, StoredRequest, ZoneInspector
from core.records import RecordType, RRset
from core.states import OPEN_FOR_APPROVAL, RECHECK_ALLOWED, RESTING, ROLLBACK_ALLOWED, RequestState
from core.verification import VerificationOutcome, VerificationReport
from service.checkpoints import take_checkpoint
from service.claims import WorkClaims
from service.failpoints import failpoint
from service.leases import AuditedLeases
from service.planning import already_applied, check_safety, check_still_current, make_plan, reader
from service.policy import PolicySource, describe
from service.propagation import PropagationChecker
from service.zones import PathRuntime, ZoneDirectory, ZoneRuntime, shares_failed_trust

log = structlog.get_logger("breakglass.service")
NEEDS_ELEVATION = "opening the sealed envelope needs more approvals"
T = TypeVar("T")

_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: ids get read aloud on calls


def new_request_id() -> str:
    return "BG-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))


@dataclass(frozen=True)
class ApprovalOutcome:
    stored: StoredRequest
    approvals: tuple[Approval, ...]
    missing: str  # what is still needed, for people
    ready_to_apply: bool  # True for exactly one approval: the one that completed the quorum
    notify: tuple[str, ...] = ()  # Slack ids to tell (an emergency self-approval tells every approver)


@dataclass(frozen=True)
class RequestStatus:
    stored: StoredRequest
    approvals: tuple[Approval, ...]
    events: tuple[Event, ...]
    rule: str = ""  # the matched rule(s) and what they require
    needs: str = ""  # what approvals are still missing
    expires_at: datetime | None = None
    emergency_allowed: bool = False
    approvers: tuple[str, ...] = ()  # Slack ids of the people who may approve
    policy_problem: str | None = None  # why the policy refuses to serve, if it does


@dataclass(frozen=True)
class ExecutionResult:
    stored: StoredRequest
    outcome: VerificationOutcome | None
    error: BreakglassError | None


@dataclass(frozen=True)
class PathView:
    """What one change path's control plane holds for a record now, or why it was not read."""

    path: str
    rrset: RRset | None
    problem: str = ""


PROBED_TYPES = frozenset({RecordType.A, RecordType.AAAA, RecordType.CNAME})


def _verify_command(change: RRsetChange) -> str:
    """The `breakglass verify` line that checks ``change`` reached every authoritative server."""
    if change.after is None:
        return f"`breakglass verify {change.name} {change.rtype} --absent`"
    values = " ".join(shlex.quote(v) for v in change.after.values)
    return f"`breakglass verify {change.name} {change.rtype} {values}`"


def verdict(outcome: VerificationOutcome) -> tuple[RequestState, EventKind]:
    """Recovery is declared only when every server serves the change and the target is live."""
    if not outcome.served_everywhere:
        return RequestState.VERIFICATION_FAILED, EventKind.VERIFICATION_FAILED
    if outcome.live is None:
        return RequestState.VERIFIED, EventKind.VERIFIED
    if outcome.live:
        return RequestState.RECOVERED, EventKind.RECOVERED
    return RequestState.VERIFIED_NOT_LIVE, EventKind.VERIFIED_NOT_LIVE


class ChangeService:
    def __init__(
        self,
        zones: ZoneDirectory,
        store: RequestStore,
        policy: PolicySource,
        checker: PropagationChecker,
        verify_timeout: float,
        inspector: ZoneInspector,
        prober: LivenessProber,
        *,
        checkpointer: AuditCheckpointer | None = None,
        claims: WorkClaims | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = new_request_id,
    ) -> None:
        """``claims``: this process's work claims, so another can finish a request if this one dies."""
        self.zones = zones
        self._store = store
        self._policy = policy
        self._checker = checker
        self._verify_timeout = verify_timeout
        self._inspector = inspector
        self._prober = prober
        self._checkpointer = checkpointer
        self.claims = claims or WorkClaims(None)
        self._leases = AuditedLeases(store.append)
        self._now = now
        self._new_id = new_id

    # --- requesting ---------------------------------------------------------------

    def request_change(
        self, requester: Principal, edits: Sequence[RecordEdit], reason: str, *, request_id: str | None = None
    ) -> StoredRequest:
        """Plan ``edits`` against what the zone serves now and persist the request for approval."""
        if not reason.strip():
            raise InvalidInput("A reason is required.", hint='Add reason="INC-123 what and why".')
        if not edits:
            raise InvalidInput("Nothing to change.")
        zone = self.zones.for_name(edits[0].name)
        if any(self.zones.for_name(e.name).name != zone.name for e in edits):
            raise InvalidInput(
                "All records of one request must be in the same zone.", hint="Send one request per zone."
            )
        return self._create(
            ChangeRequest(
                id=request_id or self._new_id(),
                kind=RequestKind.CHANGE,
                zone=zone.name,
                edits=tuple(edits),
                reason=reason.strip(),
                requester=requester,
                created_at=self._now(),
            )
        )

    def request_rollback(self, request_id: str, requester: Principal) -> StoredRequest:
        """Plan putting back what ``request_id`` replaced, only if nobody changed it since."""
        original = self._store.get(request_id)
        if original.state not in ROLLBACK_ALLOWED:
            raise InvalidInput(
                f"{request_id} is `{original.state.value}`; only applied changes can be rolled back.",
                hint="Check `/dns status` for where it stands.",
            )
        zone = self.zones.get(original.plan.zone)
        current = self._through_any_path(
            request_id,
            zone,
            lambda route, creds: [route.path.read(c.name, c.rtype, creds) for c in original.plan.changes],
        )
        for change, now in zip(original.plan.changes, current, strict=True):
            if now != change.after:
                found = now.describe() if now else "no record"
                raise ConflictError(
                    f"{change.name} {change.rtype} changed after {request_id} was applied (now {found}); "
                    "a rollback would overwrite someone else's change.",
                    hint="Request the value you want explicitly with `/dns set`.",
                )
        stored = self._create(
            ChangeRequest(
                id=self._new_id(),
                kind=RequestKind.ROLLBACK,
                zone=original.plan.zone,
                edits=original.plan.inverse(),
                reason=f"Rollback of {request_id}: {original.request.reason}",
                requester=requester,
                created_at=self._now(),
                rollback_of=request_id,
            )
        )
        self._store.append(
            NewEvent(request_id, str(requester), EventKind.ROLLBACK_REQUESTED, {"rollback": stored.request.id})
        )
        return stored

    def _through_any_path(
        self, request_id: str, zone: ZoneRuntime, read: Callable[[PathRuntime, Credentials | None], T]
    ) -> T:
        """Run a read through the first change path that answers (leasing credentials if it needs them)."""
        errors = []
        for route in zone.paths:
            if route.sealed and route.path.reads_need_credentials:
                continue  # never open a sealed envelope just to look
            try:
                return self._read_through(request_id, route, read)
            except (ProviderError, CredentialError) as error:
                errors.append(f"{route.path.name}: {error.user_text()}")
        raise ProviderError(
            "Could not read the current records through any change path: " + "; ".join(errors),
            hint="Check the change paths' servers and credentials (`breakglass config check`).",
        )

    def _read_through(
        self, request_id: str, route: PathRuntime, read: Callable[[PathRuntime, Credentials | None], T]
    ) -> T:
        """Run a read through ``route``, leasing (and revoking) its credentials if its reads need them."""
        if not route.path.reads_need_credentials:
            return read(route, None)
        lease = self._leases.lease(request_id, route, purpose="read")
        try:
            return read(route, lease.credentials)
        finally:
            self._leases.revoke(request_id, lease)

    def _create(self, request: ChangeRequest) -> StoredRequest:
        zone = self.zones.get(request.zone)
        try:
            policy = self._policy_in_force()
            limit = check_request(policy, request, request.requester).change_limit
            plan = self._through_any_path(
                request.id, zone, lambda route, creds: make_plan(
                    request.id, request.zone, route.path, request.edits, creds, policy=policy.sha256, limit=limit
                ),
            )  # fmt: skip
        except (ApprovalRefused, SafetyRefused, InvalidInput) as refusal:  # planning's refusals too (change limit)
            reason = refusal.reason.value if isinstance(refusal, ApprovalRefused) else type(refusal).__name__
            self._store.append(NewEvent(request.id, str(request.requester), EventKind.REQUEST_REFUSED, {
                "reason": reason, "message": refusal.user_text(), "zone": request.zone,
            }))  # fmt: skip
            log.info("request.refused", request_id=request.id, requester=str(request.requester), reason=reason)
            raise
        details: dict[str, EventValue] = {"digest": plan.digest(), "path": plan.path, "kind": request.kind.value}
        stored = self._store.create(
            request, plan, NewEvent(request.id, str(request.requester), EventKind.PLANNED, details)
        )
        log.info("request.planned", request_id=request.id, zone=request.zone, digest=plan.digest())
        return stored

    # --- deciding ---------------------------------------------------------------

    def _policy_in_force(self) -> Policy:
        try:
            return self._policy.current()
        except (PolicySignatureError, PolicyError) as error:
            raise ApprovalRefused(RefusalReason.POLICY_REFUSED, error.message, hint=error.hint) from None

    def _requirement(self, stored: StoredRequest) -> Requirement:
        """The rules the request was planned under; refuses if other rules are in force now."""
        policy = self._policy_in_force()
        if policy.sha256 != stored.plan.policy:
            raise ApprovalRefused(
                RefusalReason.POLICY_CHANGED,
                f"The approval policy changed after {stored.request.id} was planned; "
                "approvals under the old rules are void.",
                hint="Request the change again so it is approved under the rules in force now.",
            )
        return check_request(policy, stored.request, stored.request.requester)

    def _expire_if_late(self, stored: StoredRequest, requirement: Requirement) -> None:
        expires_at = requirement.expires_at(stored.request)
        if self._now() < expires_at:
            return
        self._store.transition(
            stored.request.id, stored.state, RequestState.EXPIRED,
            NewEvent(stored.request.id, str(SYSTEM), EventKind.EXPIRED, {"expired_at": expires_at.isoformat()}),
        )  # fmt: skip
        raise ApprovalRefused(
            RefusalReason.EXPIRED,
            f"{stored.request.id} expired at {expires_at:%H:%M:%S} UTC without being approved in time.",
            hint="Request the change again if it is still needed.",
        )

    def approve(
        self, request_id: str, approver: Principal, *, emergency: bool = False, notifier: Notifier | None = None
    ) -> ApprovalOutcome:
        """Count ``approver``'s approval; ``emergency`` is the requester's self-approval clause.

        ``notifier`` is told if the request ends here (it expired) and publishes its audit checkpoint.
        """
        stored = self._store.get(request_id)
        existing = self._store.approvals(request_id)
        notify: tuple[str, ...] = ()
        try:
            if stored.state not in OPEN_FOR_APPROVAL:
                raise ApprovalRefused(
                    RefusalReason.NOT_PENDING,
                    f"{request_id} is already `{stored.state.value}`; approvals are closed.",
                )
            requirement = self._requirement(stored)
            self._expire_if_late(stored, requirement)
            approval = Approval(request_id, approver, stored.plan.digest(), self._now())
            if emergency:
                grant = requirement.check_emergency(stored.request, approver, stored.request.reason)
                notify = tuple(p.slack_id for p in grant.notify if p.slack_id)
                event = NewEvent(request_id, str(approver), EventKind.EMERGENCY_APPROVED, {
                    "digest": approval.plan_digest, "reason": grant.reason, "review_required": True,
                    "notified": ",".join(p.name for p in grant.notify),
                })  # fmt: skip
            else:
                requirement.check_approver(stored.request, approver, existing)
                event = NewEvent(request_id, str(approver), EventKind.APPROVED, {"digest": approval.plan_digest})
            if not self._store.add_approval(approval, event):
                raise ApprovalRefused(RefusalReason.ALREADY_APPROVED, "You have already approved this change.")
        except (ApprovalRefused, InvalidInput) as refusal:
            reason = refusal.reason.value if isinstance(refusal, ApprovalRefused) else "invalid_input"
            self._store.append(NewEvent(request_id, str(approver), EventKind.APPROVAL_REFUSED, {"reason": reason}))
            log.info("approval.refused", request_id=request_id, approver=str(approver), reason=reason)
            if isinstance(refusal, ApprovalRefused) and refusal.reason is RefusalReason.EXPIRED:
                self._finish(self._store.get(request_id), None, notifier)
            raise
        approvals = tuple(self._store.approvals(request_id))
        elevated = stored.state is RequestState.NEEDS_ELEVATED_APPROVAL
        ready = False
        if requirement.satisfied(approvals) and (not elevated or self._elevated(requirement, approvals)):
            approvers = ",".join(str(a.approver) for a in approvals)
            ready = self._store.transition(
                request_id, stored.state, RequestState.APPROVED,
                NewEvent(request_id, str(SYSTEM), EventKind.QUORUM_REACHED, {"approvers": approvers,
                                                                            "elevated": elevated}),
            )  # fmt: skip
            if ready:
                self.claims.claim(request_id, RequestState.APPROVED)  # the caller executes it next
                failpoint("after_approval")
        missing = self._elevated_missing(requirement, approvals) if elevated else requirement.missing(approvals)
        return ApprovalOutcome(self._store.get(request_id), approvals, missing, ready, notify)

    @staticmethod
    def _elevated(requirement: Requirement, approvals: Sequence[Approval]) -> bool:
        return len(requirement.counted(approvals)) >= requirement.sealed_count

    @staticmethod
    def _elevated_missing(requirement: Requirement, approvals: Sequence[Approval]) -> str:
        left = max(0, requirement.sealed_count - len(requirement.counted(approvals)))
        return f"{left} more approver{'s' if left != 1 else ''} to open the sealed envelope"

    # --- out of band: decisions signed with a person's pinned SSH key -----------------------

    STATEMENT_MAX_AGE = timedelta(minutes=30)

    def identify(self, signed: SignedStatement, *, request_id: str, plan_digest: str, decision: Decision) -> Principal:
        """The key principal behind ``signed``, if it is this decision, on this request and plan, and fresh."""
        principal = verify_statement(
            signed, self._policy_in_force(), request_id=request_id, plan_digest=plan_digest,
            now=self._now(), max_age=self.STATEMENT_MAX_AGE,
        )  # fmt: skip
        if signed.statement.decision is not decision:
            raise ApprovalRefused(
                RefusalReason.WRONG_REQUEST,
                f"The statement says `{signed.statement.decision.value}`, not `{decision.value}`.",
            )
        return principal

    def decide_signed(
        self, signed: SignedStatement, *, emergency: bool = False, notifier: Notifier | None = None
    ) -> ApprovalOutcome | StoredRequest:
        """Apply an approve/deny statement signed out of band (Slack down, SSO down)."""
        request_id = signed.statement.request_id
        stored = self._store.get(request_id)
        try:
            if signed.statement.decision is Decision.REQUEST:
                raise ApprovalRefused(RefusalReason.WRONG_REQUEST, "A request statement cannot approve or deny.")
            principal = self.identify(
                signed, request_id=request_id, plan_digest=stored.plan.digest(), decision=signed.statement.decision
            )
        except ApprovalRefused as refusal:
            self._store.append(NewEvent(request_id, f"key:{signed.statement.signer}", EventKind.APPROVAL_REFUSED, {
                "reason": refusal.reason.value, "key": signed.statement.key_fingerprint,
            }))  # fmt: skip
            raise
        if signed.statement.decision is Decision.DENY:
            return self.deny(request_id, principal, notifier)
        return self.approve(request_id, principal, emergency=emergency, notifier=notifier)

    def request_change_signed(
        self, edits: Sequence[RecordEdit], reason: str, sign: Callable[[str, str], SignedStatement]
    ) -> StoredRequest:
        """A request made out of band: ``sign(request_id, plan_digest)`` proves who asks, with their key."""
        request_id = self._new_id()
        zone = self.zones.for_name(edits[0].name) if edits else None
        if zone is None:
            raise InvalidInput("Nothing to change.")
        preview = make_plan(request_id, zone.name, zone.paths[0].path, edits, policy=self._policy_in_force().sha256)
        signed = sign(request_id, preview.digest())
        requester = self.identify(
            signed, request_id=request_id, plan_digest=preview.digest(), decision=Decision.REQUEST
        )
        return self.request_change(requester, edits, reason, request_id=request_id)

    def deny(self, request_id: str, person: Principal, notifier: Notifier | None = None) -> StoredRequest:
        """Approvers may deny; the requester may always withdraw (denying is the safe direction).

        ``notifier`` is told the request ended and publishes its audit checkpoint.
        """
        stored = self._store.get(request_id)
        if person != stored.request.requester:
            self._requirement(stored).check_denier(stored.request, person)
        moved = stored.state in OPEN_FOR_APPROVAL and self._store.transition(
            request_id, stored.state, RequestState.DENIED, NewEvent(request_id, str(person), EventKind.DENIED)
        )
        if not moved:
            raise ApprovalRefused(RefusalReason.NOT_PENDING, f"{request_id} was already decided.")
        stored = self._store.get(request_id)
        self._finish(stored, None, notifier)
        return stored

    # --- carrying out --------------------------------------------------------------

    def execute(self, request_id: str, notifier: Notifier) -> ExecutionResult:
        """Lease, apply, revoke, verify. Runs at most once per request, whoever calls it."""
        stored = self._store.get(request_id)
        if stored.state is RequestState.APPROVED:
            try:
                self._check_still_approved(stored)
            except ApprovalRefused as refusal:
                notifier.progress(self._store.get(request_id), f"Nothing was applied: {refusal.user_text()}")
                self._finish(self._store.get(request_id), None, notifier)
                return ExecutionResult(self._store.get(request_id), None, refusal)
        claimed = self._store.transition(
            request_id,
            RequestState.APPROVED,
            RequestState.APPLYING,
            NewEvent(request_id, str(SYSTEM), EventKind.APPLY_STARTED),
        )
        stored = self._store.get(request_id)
        if not claimed:
            return ExecutionResult(stored, None, None)
        with self.claims.holding(request_id, RequestState.APPLYING):
            return self._carry_out(stored, notifier)

    def _carry_out(self, stored: StoredRequest, notifier: Notifier) -> ExecutionResult:
        """Try each change path in turn until one applies, then verify."""
        request_id = stored.request.id
        failures: list[tuple[PathRuntime, BreakglassError]] = []
        for route in self.zones.get(stored.plan.zone).paths:
            skip = self._skip_reason(stored, route, failures)
            if skip:
                self._store.append(NewEvent(request_id, str(SYSTEM), EventKind.PATH_SKIPPED, {
                    "path": route.path.name, "reason": skip,
                }))  # fmt: skip
                notifier.progress(stored, f"Skipping change path {route.path.name}: {skip}.")
                continue
            try:
                applied_at = self._apply(stored, route, notifier)
            except ConflictError as error:  # not a path failure: someone changed the record; re-plan
                return self._not_applied(stored, RequestState.CONFLICT, EventKind.CONFLICT, route, error, notifier)
            except (CredentialError, ProviderError) as error:
                failures.append((route, error))
                self._store.append(NewEvent(request_id, str(SYSTEM), EventKind.PATH_FAILED, {
                    "path": route.path.name, "error": error.user_text(), "kind": type(error).__name__,
                }))  # fmt: skip
                log.warning(
                    "apply.path_failed", request_id=request_id, path=route.path.name, error=type(error).__name__
                )
                notifier.progress(stored, f"Change path {route.path.name} failed: {error.user_text()}")
                continue
            return self._verify(request_id, applied_at, notifier)
        if any(route.sealed for route in self.zones.get(stored.plan.zone).paths) and self._only_elevation_missing(
            stored, failures
        ):
            return self._ask_for_elevation(stored, failures, notifier)
        summary = "; ".join(f"{route.path.name}: {error.user_text()}" for route, error in failures)
        exhausted = ProviderError(
            f"Every change path failed or was skipped, so nothing was applied ({summary or 'no usable path'}).",
            hint="Fix one path (see the thread), then request the change again.",
        )
        return self._not_applied(stored, RequestState.APPLY_FAILED, EventKind.APPLY_FAILED, None, exhausted, notifier)

    def _skip_reason(
        self, stored: StoredRequest, route: PathRuntime, failures: Sequence[tuple[PathRuntime, BreakglassError]]
    ) -> str:
        """Why trying ``route`` now is pointless or not allowed ("" to try it)."""
        shared = shares_failed_trust(route, failures)
        if shared:
            return shared
        if route.sealed:
            requirement = self._requirement(stored)
            have = len(requirement.counted(self._store.approvals(stored.request.id)))
            if have < requirement.sealed_count:
                return f"{NEEDS_ELEVATION}: {requirement.sealed_count} approvals are needed and {have} were given"
        return ""

    def _only_elevation_missing(
        self, stored: StoredRequest, failures: Sequence[tuple[PathRuntime, BreakglassError]]
    ) -> bool:
        """Every usable path failed, and a sealed path was skipped only for want of approvals."""
        zone = self.zones.get(stored.plan.zone)
        failed = {route.path.name for route, _ in failures}
        sealed = [r for r in zone.paths if r.sealed and r.path.name not in failed]
        return any(self._skip_reason(stored, r, failures).startswith(NEEDS_ELEVATION) for r in sealed)

    def _ask_for_elevation(
        self, stored: StoredRequest, failures: Sequence[tuple[PathRuntime, BreakglassError]], notifier: Notifier
    ) -> ExecutionResult:
        request_id = stored.request.id
        requirement = self._requirement(stored)
        approvals = self._store.approvals(request_id)
        missing = self._elevated_missing(requirement, approvals)
        failed = "; ".join(f"{route.path.name}: {error.user_text()}" for route, error in failures)
        self._store.transition(request_id, RequestState.APPLYING, RequestState.NEEDS_ELEVATED_APPROVAL, NewEvent(
            request_id, str(SYSTEM), EventKind.ELEVATION_REQUIRED,
            {"failed": failed, "sealed_count": requirement.sealed_count},
        ))  # fmt: skip
        stored = self._store.get(request_id)
        notifier.progress(
            stored,
            f"The usual change paths failed ({failed}). Only the sealed envelope is left: it needs {missing}. "
            "Approvers: approve again on the request message. Nothing has been applied.",
        )
        self._finish(stored, None, notifier)
        return ExecutionResult(stored, None, None)

    def _not_applied(
        self,
        stored: StoredRequest,
        final: RequestState,
        kind: EventKind,
        route: PathRuntime | None,
        error: BreakglassError,
        notifier: Notifier,
    ) -> ExecutionResult:
        request_id = stored.request.id
        details: dict[str, EventValue] = {"error": error.user_text()}
        if route is not None:
            details["path"] = route.path.name
        self._store.transition(
            request_id, RequestState.APPLYING, final, NewEvent(request_id, str(SYSTEM), kind, details)
        )
        log.warning("apply.failed", request_id=request_id, state=final.value, error=type(error).__name__)
        stored = self._store.get(request_id)
        notifier.progress(stored, f"Nothing was applied: {error.user_text()}")
        self._finish(stored, None, notifier)
        return ExecutionResult(stored, None, error)

    def _check_still_approved(self, stored: StoredRequest) -> None:
        """Approvals hold only for this plan, under these rules, within the expiry (fail closed)."""
        try:
            requirement = self._requirement(stored)
            self._expire_if_late(stored, requirement)
            digest = stored.plan.digest()
            approvals = self._store.approvals(stored.request.id)
            if any(a.plan_digest != digest for a in approvals) or not requirement.satisfied(approvals):
                raise ApprovalRefused(RefusalReason.STALE_PLAN, "The approvals do not match this plan.")
        except ApprovalRefused as refusal:
            if refusal.reason is not RefusalReason.EXPIRED:  # expiry already moved it to `expired`
                self._store.transition(stored.request.id, RequestState.APPROVED, RequestState.CONFLICT, NewEvent(
                    stored.request.id, str(SYSTEM), EventKind.CONFLICT,
                    {"reason": refusal.reason.value, "error": refusal.user_text()},
                ))  # fmt: skip
            raise

    def _apply(self, stored: StoredRequest, route: PathRuntime, notifier: Notifier) -> float:
        request_id = stored.request.id
        notifier.progress(stored, f"Leasing break-glass credentials from {route.credentials.name}…")
        lease = self._leases.lease(request_id, route)
        failpoint("after_lease")
        try:
            self.claims.check(request_id)  # a process that was cut off must not write after another took over
            if lease.info.must_rotate:
                notifier.progress(stored, f":rotating_light: Opened {lease.info.source}: these credentials are now "
                                  "exposed to this bot and MUST be rotated after the incident.")  # fmt: skip
            started = time.monotonic()
            if already_applied(stored.plan, route.path, lease.credentials):
                notifier.progress(stored, "Every record already holds the new value (an earlier attempt applied it).")
            else:
                check_still_current(stored.plan, route.path, lease.credentials)
                route.path.apply(stored.plan.changes, lease.credentials)
            applied_at = time.monotonic()
            failpoint("mid_apply")
        finally:
            self._leases.revoke(request_id, lease)
        try:
            self._record_applied(request_id, route, started, applied_at)
        except PersistenceError as error:
            notifier.progress(stored, (
                f":rotating_light: The change WAS applied through {route.path.name}, but the audit database refused "
                f"to record it ({error.user_text()}). breakglass stops here: check the records by hand "
                "(`breakglass verify`) and restore the database before anything else."
            ))  # fmt: skip
            raise
        notifier.progress(
            self._store.get(request_id),
            f"Applied through {route.path.name} "
            f"in {(applied_at - started) * 1000:.0f} ms. Checking every authoritative server…",
        )
        failpoint("after_apply")
        return applied_at

    def _record_applied(self, request_id: str, route: PathRuntime, started: float, applied_at: float) -> None:
        self._store.transition(request_id, RequestState.APPLYING, RequestState.VERIFYING, NewEvent(
            request_id, str(SYSTEM), EventKind.APPLIED,
            {"path": route.path.name, "apply_ms": round((applied_at - started) * 1000, 1)},
        ))  # fmt: skip

    def _verify(
        self, request_id: str, applied_at: float, notifier: Notifier, *, resumed: bool = False
    ) -> ExecutionResult:
        """``resumed``: a recovery after a crash; times then count from the restart, not from the apply."""
        stored = self._store.get(request_id)
        zone = self.zones.get(stored.plan.zone)

        def progress(report: VerificationReport) -> None:
            failpoint("mid_verification")
            notifier.verifying(stored, report)

        outcome = self._outcome(zone, stored.plan.changes, applied_at, progress)
        failpoint("mid_verification")  # every server answered in the first round: still before the verdict
        self._record_outcome(request_id, outcome)
        final, kind = verdict(outcome)
        lagging = ",".join(sorted({str(r.server) for r in outcome.report.lagging()}))
        details: dict[str, EventValue] = {
            "elapsed_seconds": round(outcome.report.elapsed_seconds, 3),
            "lagging": lagging,
            "problems": "; ".join(outcome.server_problems),
        }
        if resumed:
            details["measured_from"] = "recovery"
        if not self._store.transition(
            request_id, RequestState.VERIFYING, final, NewEvent(request_id, str(SYSTEM), kind, details)
        ):
            return self._superseded(request_id, outcome)
        log.info(f"request.{final.value}", request_id=request_id, seconds=details["elapsed_seconds"], lagging=lagging)
        stored = self._store.get(request_id)
        self._finish(stored, outcome, notifier)
        return ExecutionResult(stored, outcome, None)

    def _finish(self, stored: StoredRequest, outcome: VerificationOutcome | None, notifier: Notifier | None) -> None:
        """Tell people, then sign the audit chain head so the record of this request cannot be cut off.

        Every way a request ends comes through here. ``notifier`` None: nobody to tell, and the
        checkpoint is only signed and kept (the checkpoint file), not published.
        """
        failpoint("after_ending")
        if notifier is not None:
            notifier.finished(stored, outcome)
            self._record_announced(stored)
        failed = take_checkpoint(self._checkpointer, notifier, stored.request.id)
        if failed is not None and notifier is not None:
            notifier.progress(stored, f"Could not sign or publish an audit checkpoint: {failed.user_text()}")

    def _record_announced(self, stored: StoredRequest) -> None:
        """So crash recovery knows this thread was told; if that cannot be recorded, it is told again later."""
        if stored.state not in RESTING:
            return
        try:
            self.claims.announced(stored.request.id, stored.state)
        except PersistenceError as error:
            log.warning("request.announce_not_recorded", request_id=stored.request.id, error=error.user_text())

    def tell_ending(self, request_id: str, notifier: Notifier, lead: str) -> StoredRequest:
        """Tell a thread where its request came to rest when the bot that took it there stopped first."""
        stored = self._store.get(request_id)
        notifier.progress(stored, lead)
        self._finish(stored, None, notifier)
        return stored

    def _outcome(
        self,
        zone: ZoneRuntime,
        changes: Sequence[RRsetChange],
        since: float | None,
        on_round: Callable[[VerificationReport], None] | None = None,
        *,
        timeout: float | None = None,
        match_ttl: bool = True,
    ) -> VerificationOutcome:
        server_set = self._inspector.authoritative_servers(zone.name)
        report = self._checker.wait(
            changes, server_set.servers, self._verify_timeout if timeout is None else timeout,
            since=since, on_round=on_round, match_ttl=match_ttl,
        )  # fmt: skip
        liveness: tuple[LivenessReport, ...] = ()
        if report.verified and not server_set.problems and zone.probes:
            liveness = tuple(
                self._prober.probe(c.after, zone.probes)
                for c in changes
                if c.after is not None and c.rtype in PROBED_TYPES
            )
        return VerificationOutcome(
            report=report,
            server_problems=server_set.problems,
            liveness=liveness,
            delegation_warnings=self._inspector.delegation_warnings(zone.name),
            resolver_views=tuple(v for c in changes for v in self._inspector.resolver_views(c)),
        )

    def _record_outcome(self, request_id: str, outcome: VerificationOutcome) -> None:
        """Every answer, probe and view behind the verdict, in one write (one per answer took half the time)."""
        batch: list[NewEvent] = []

        def event(kind: EventKind, details: dict[str, EventValue]) -> None:
            batch.append(NewEvent(request_id, str(SYSTEM), kind, details))

        for result in outcome.report.results:
            event(EventKind.SERVER_CHECKED, {
                "server": str(result.server), "name": result.name, "type": result.rtype.value,
                "served": result.served, "seconds": result.seconds_to_serve,
                "answer": result.last_answer.describe(),
            })  # fmt: skip
        for report in outcome.liveness:
            for probe in report.results:
                event(EventKind.PROBE_CHECKED, {
                    "name": report.name, "target": probe.target, "probe": probe.probe.describe(),
                    "ok": probe.ok, "detail": probe.detail, "seconds": round(probe.seconds, 3),
                })  # fmt: skip
            if report.problem:
                event(EventKind.PROBE_CHECKED, {"name": report.name, "ok": False, "detail": report.problem})
        for warning in outcome.delegation_warnings:
            event(EventKind.DELEGATION_WARNING, {"warning": warning})
        for view in outcome.resolver_views:
            event(EventKind.RESOLVER_VIEW, {
                "resolver": str(view.resolver), "follows": view.follows, "answer": view.description,
                "remaining_ttl": view.remaining_ttl,
            })  # fmt: skip
        self._store.append_many(batch)

    # --- crash recovery (service/recovery.py takes a stale request over, then calls resume) ---

    def resume(self, request_id: str, notifier: Notifier) -> ExecutionResult:
        """Finish a request whose bot stopped mid-flow, from what DNS holds now; never applies twice.

        ``approved``: nothing had started, so carry on (policy, expiry and the plan are checked again).
        ``applying``: the change reached DNS or it did not; it is never applied again without people
        deciding again. ``verifying``: verify again, timing from now.
        """
        stored = self._store.get(request_id)
        if stored.state is RequestState.APPROVED:
            return self.execute(request_id, notifier)
        if stored.state is RequestState.APPLYING:
            with self.claims.holding(request_id, stored.state):
                return self._resume_apply(stored, notifier)
        if stored.state is RequestState.VERIFYING:
            with self.claims.holding(request_id, stored.state):
                return self._verify(request_id, time.monotonic(), notifier, resumed=True)
        return ExecutionResult(stored, None, None)

    def _resume_apply(self, stored: StoredRequest, notifier: Notifier) -> ExecutionResult:
        request_id, changes = stored.request.id, stored.plan.changes
        reads, unread = self._read_every_path(stored)
        for path, current in reads:
            if all(now == change.after for change, now in zip(changes, current, strict=True)):
                if not self._store.transition(request_id, RequestState.APPLYING, RequestState.VERIFYING, NewEvent(
                    request_id, str(SYSTEM), EventKind.APPLIED, {"path": path, "found_on_recovery": True},
                )):  # fmt: skip
                    return self._superseded(request_id)
                notifier.progress(self._store.get(request_id), (
                    f"Every record already holds the new value ({path}): the change reached DNS before breakglass "
                    "stopped. Recorded as applied (not applied again). Checking every authoritative server; "
                    "times now count from this restart, not from the apply…"
                ))  # fmt: skip
                return self._verify(request_id, time.monotonic(), notifier, resumed=True)
        untouched = all(now == c.before for _, current in reads for c, now in zip(changes, current, strict=True))
        if reads and untouched and not unread:
            error = ProviderError(
                "breakglass stopped before the change reached DNS (every record still holds its old value).",
                hint="Request the change again if it is still needed: after a crash it is applied only once "
                "people approve it again.",
            )
            return self._failed_after_crash(stored, error, "not_applied", notifier)
        found = "; ".join(
            [f"{path}: {', '.join(n.describe() if n else 'no record' for n in current)}" for path, current in reads]
            + unread
        )
        error = ProviderError(
            "breakglass stopped while applying, and whether the change reached DNS cannot be told "
            f"(the change paths hold: {found}). Nothing more was applied.",
            hint="Check each record by hand: " + "; ".join(_verify_command(c) for c in changes)
            + ". Then request what is still needed again.",
        )  # fmt: skip
        return self._failed_after_crash(stored, error, "unknown", notifier)

    def _read_every_path(self, stored: StoredRequest) -> tuple[list[tuple[str, list[RRset | None]]], list[str]]:
        """What each change path holds now for the plan's rrsets, and why any path's control plane went unread."""
        keys = [(c.name, c.rtype) for c in stored.plan.changes]

        def read(route: PathRuntime, credentials: Credentials | None) -> list[RRset | None]:
            get = reader(route.path, keys, credentials)
            return [get(name, rtype) for name, rtype in keys]

        reads: list[tuple[str, list[RRset | None]]] = []
        problems: list[tuple[PathRuntime, str]] = []
        for route in self.zones.get(stored.plan.zone).paths:
            if any(c.rtype not in route.path.supported_types for c in stored.plan.changes):
                continue  # it cannot hold these records, so it cannot have applied them
            if route.sealed and route.path.reads_need_credentials:
                problems.append((route, "not read (a sealed envelope is never opened just to look)"))
                continue
            try:
                reads.append((route.path.name, self._read_through(stored.request.id, route, read)))
            except (ProviderError, CredentialError) as error:
                problems.append((route, f"not read ({error.user_text()})"))
        read_planes = {r.trust.control_plane for r in self.zones.get(stored.plan.zone).paths
                       if r.path.name in {path for path, _ in reads}}  # fmt: skip
        unread = [f"{r.path.name}: {why}" for r, why in problems if r.trust.control_plane not in read_planes]
        return reads, unread

    def _superseded(self, request_id: str, outcome: VerificationOutcome | None = None) -> ExecutionResult:
        """Another process moved the request on meanwhile (it was cut off, not dead): leave the rest to it."""
        stored = self._store.get(request_id)
        log.warning("request.superseded", request_id=request_id, state=stored.state.value)
        return ExecutionResult(stored, outcome, None)

    def _failed_after_crash(
        self, stored: StoredRequest, error: ProviderError, found: str, notifier: Notifier
    ) -> ExecutionResult:
        request_id = stored.request.id
        if not self._store.transition(request_id, RequestState.APPLYING, RequestState.APPLY_FAILED, NewEvent(
            request_id, str(SYSTEM), EventKind.APPLY_FAILED, {"error": error.user_text(), "recovery": found},
        )):  # fmt: skip
            return self._superseded(request_id)
        log.warning("recovery.apply_failed", request_id=request_id, found=found)
        stored = self._store.get(request_id)
        prefix = "Nothing was applied: " if found == "not_applied" else ":warning: "
        notifier.progress(stored, prefix + error.user_text())
        self._finish(stored, None, notifier)
        return ExecutionResult(stored, None, error)

    def recheck(self, request_id: str, person: Principal, notifier: Notifier) -> ExecutionResult:
        """Verify an applied change again (a lagging server may have caught up)."""
        stored = self._store.get(request_id)
        if stored.state not in RECHECK_ALLOWED or not self._store.transition(
            request_id, stored.state, RequestState.VERIFYING,
            NewEvent(request_id, str(person), EventKind.RECHECK_REQUESTED),
        ):  # fmt: skip
            raise InvalidInput(
                f"{request_id} is `{stored.state.value}`; only a failed or not-live verification can be rechecked."
            )
        with self.claims.holding(request_id, RequestState.VERIFYING):
            notifier.progress(self._store.get(request_id), "Checking every authoritative server again…")
            return self._verify(request_id, time.monotonic(), notifier)

    def verify_now(
        self,
        name: str,
        rtype: RecordType,
        desired: RRset | None,
        on_round: Callable[[VerificationReport], None] | None = None,
        *,
        timeout: float | None = None,
        match_ttl: bool = True,
    ) -> VerificationOutcome:
        """Standalone check (no request): does every authoritative server serve ``desired``?

        ``timeout=0`` asks each server once: what they answer now.
        """
        zone = self.zones.for_name(name)
        change = RRsetChange(name, rtype, None, desired)
        return self._outcome(zone, [change], None, on_round, timeout=timeout, match_ttl=match_ttl)

    # --- reading ---------------------------------------------------------------

    def status(self, request_id: str) -> RequestStatus:
        stored = self._store.get(request_id)
        approvals = tuple(self._store.approvals(request_id))
        events = tuple(self._store.events(request_id))
        try:
            requirement = self._requirement(stored)
        except ApprovalRefused as refusal:
            return RequestStatus(stored, approvals, events, policy_problem=refusal.user_text())
        return RequestStatus(
            stored, approvals, events,
            rule=describe(requirement),
            needs=self._elevated_missing(requirement, approvals)
            if stored.state is RequestState.NEEDS_ELEVATED_APPROVAL
            else requirement.missing(approvals),
            expires_at=requirement.expires_at(stored.request),
            emergency_allowed=requirement.emergency_allowed,
            approvers=tuple(p.slack_id for p in requirement.eligible if p.slack_id),
        )  # fmt: skip

    def preflight(self, requester: Principal, edits: Sequence[RecordEdit], reason: str) -> None:
        """The cheap checks of ``request_change`` (zone, apex safety, policy), without reading DNS.

        For forms that must answer within Slack's 3 s: planning itself runs later and checks again.
        """
        if not reason.strip():
            raise InvalidInput("A reason is required.", hint="Say what and why, e.g. INC-123 fail over to standby.")
        if not edits:
            raise InvalidInput("Nothing to change.")
        zone = self.zones.for_name(edits[0].name)
        check_safety(zone.name, edits)
        request = ChangeRequest(
            "preflight", RequestKind.CHANGE, zone.name, tuple(edits), reason.strip(), requester, self._now()
        )
        check_request(self._policy_in_force(), request, requester)

    def pending_for(self, approver: Principal, limit: int = 50) -> list[RequestStatus]:
        """Open requests the Slack user ``approver`` may approve and has not approved yet, newest first."""
        found = []
        for stored in self._store.recent(limit):
            if stored.state not in OPEN_FOR_APPROVAL:
                continue
            status = self.status(stored.request.id)
            late = status.expires_at is not None and status.expires_at <= self._now()
            mine = any(a.approver == approver for a in status.approvals)
            if approver.id in status.approvers and not mine and not late:
                found.append(status)
        return found

    def path_views(self, name: str, rtype: RecordType, person: Principal) -> tuple[PathView, ...]:
        """Each change path's read of ``name``/``rtype`` now (where they differ, a write reached only some).

        A path that needs a credential even to read is read only for people in the policy, and the lease is
        audited under a fresh id; a sealed envelope is never opened just to look.
        """
        zone = self.zones.for_name(name)
        lookup = self._new_id()
        return tuple(self._path_view(lookup, route, name, rtype, person) for route in zone.paths)

    def _path_view(self, lookup: str, route: PathRuntime, name: str, rtype: RecordType, who: Principal) -> PathView:
        path = route.path
        if rtype not in path.supported_types:
            return PathView(path.name, None, f"not read: this path cannot hold {rtype} records")
        try:
            if not path.reads_need_credentials:
                return PathView(path.name, path.read(name, rtype))
            if route.sealed:
                return PathView(path.name, None, "not read: a sealed envelope is never opened just to look")
            if self._policy_in_force().person_for(who) is None:
                return PathView(path.name, None, "not read: it needs a credential lease, for people in the policy only")
            lease = self._leases.lease(lookup, route, purpose="show", actor=str(who))
            try:
                return PathView(path.name, path.read(name, rtype, lease.credentials))
            finally:
                self._leases.revoke(lookup, lease)
        except (ProviderError, CredentialError, ApprovalRefused) as error:
            return PathView(path.name, None, f"not read: {error.user_text()}")

    def policy_problem(self) -> str | None:
        """Why the bot refuses every request now (unsigned or modified policy), for people."""
        return self._policy.problem()

    def recent(self, limit: int = 10) -> list[StoredRequest]:
        return self._store.recent(limit)

    def set_anchor(self, request_id: str, anchor: str) -> None:
        self._store.set_anchor(request_id, anchor)
