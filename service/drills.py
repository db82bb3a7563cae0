"""Drills: prove, before an incident, that each change path can still correct routing, and how fast.

For each change path of a zone, a drill leases credentials, writes a canary TXT record
``_breakglass-drill.<zone>`` holding a random nonce through that path only, waits until every
authoritative server serves it, deletes it the same way and waits until every server has
dropped it. Every phase is timed; each path's result goes to the drill history together with
its audit event, and the leases, refusals and outcome go to the hash-chained audit trail; a drill
that wrote DNS ends with a signed audit checkpoint, as a request does.

With ``simulate_primary_outage`` the zone's first path is taken out on purpose and the paths
are tried in order as a real failover would (skipping those that share the failed path's
control plane), until one corrects routing: that proves the failover and times it.

Authorisation: the drill is checked against the signed policy like a change of the canary
(``check_request(..., drill=True)``): a rule must cover ``_breakglass-drill.<zone>`` TXT and let
the requester request it. Approvals are *simulated*: the drill reports what the rule's
``drill_count`` would need and from how many eligible people, but does not wait for them. What
keeps this safe is that a drill only ever writes the canary name, with a value it chose itself,
and deletes it again (docs/readiness.md).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from approvals.matching import check_request
from approvals.policy import Policy, PolicyError
from approvals.signing import PolicySignatureError
from approvals.statements import Decision, SignedStatement, verify_statement
from core.errors import (
    ApprovalRefused,
    BreakglassError,
    ConflictError,
    CredentialError,
    InvalidInput,
    ProviderError,
    RefusalReason,
    SafetyRefused,
    ZoneNotConfigured,
)
from core.events import EventKind, EventValue, NewEvent
from core.models import SYSTEM, ChangeRequest, Principal, RecordEdit, RequestKind, RRsetChange
from core.ports import AuditCheckpointer, CheckpointPublisher, DrillOutcome, DrillRecord, DrillStore, ZoneInspector
from core.records import RecordType, RRset, normalize_name
from core.verification import VerificationReport
from service.checkpoints import take_checkpoint
from service.leases import AuditedLeases
from service.policy import PolicySource, describe
from service.propagation import PropagationChecker
from service.zones import PathRuntime, ZoneDirectory, ZoneRuntime, shares_failed_trust

CANARY_LABEL = "_breakglass-drill"
STATEMENT_MAX_AGE = timedelta(minutes=30)
_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
TXT = RecordType.TXT


def canary_name(zone: str) -> str:
    return f"{CANARY_LABEL}.{normalize_name(zone)}"


def new_drill_id() -> str:
    return "DR-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(6))


class AuditSink(Protocol):
    def append(self, event: NewEvent) -> None: ...


@dataclass(frozen=True)
class DrillRequest:
    """What to drill: one zone or all, one path or all, or a failover away from the first path."""

    zone: str | None = None
    path: str | None = None
    simulate_primary_outage: bool = False
    reason: str = ""

    def digest(self, drill_id: str) -> str:
        """What a signed drill statement binds to (the statement's Plan-Digest)."""
        body = {"drill": drill_id, "zone": self.zone, "path": self.path, "outage": self.simulate_primary_outage}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ZoneDrill:
    zone: str
    rule: str  # the policy rule that authorised the drill
    approval: str  # what the rule would need, for people: approvals are simulated, never waited for
    paths: tuple[DrillRecord, ...]
    refused: str | None = None  # why the policy refused the drill (nothing was written)

    @property
    def passed(self) -> bool:
        outcomes = [p.outcome for p in self.paths]
        if self.refused is not None or DrillOutcome.PASSED not in outcomes:
            return False
        if self.paths[0].simulated_outage:  # a failover drill passes when one backup corrected routing
            return True
        return DrillOutcome.FAILED not in outcomes


@dataclass(frozen=True)
class DrillReport:
    drill_id: str
    actor: str
    simulated_outage: bool
    zones: tuple[ZoneDrill, ...]

    @property
    def passed(self) -> bool:
        return bool(self.zones) and all(z.passed for z in self.zones)

    def to_text(self) -> str:
        """Plain text for terminals and chat (callers escape it for their medium)."""
        outage = " (simulated primary outage)" if self.simulated_outage else ""
        lines = [f"Drill {self.drill_id} by {self.actor}{outage}: {'passed' if self.passed else 'FAILED'}"]
        for zone in self.zones:
            if zone.refused is not None:
                lines.append(f"{zone.zone} refused by the policy, nothing written: {zone.refused}")
                continue
            lines.append(f"{zone.zone} {'passed' if zone.passed else 'FAILED'}; approval {zone.approval}")
            lines += [f"  {record.path}: {describe_record(record)}" for record in zone.paths]
        return "\n".join(lines)


def describe_record(record: DrillRecord) -> str:
    """`passed: lease 12 ms, apply 3 ms, ...; corrected routing in 0.04 s`, for people."""
    phases = [
        ("lease", record.lease_seconds),
        ("apply", record.apply_seconds),
        ("propagation", record.propagation_seconds),
        ("cleanup", record.cleanup_seconds),
    ]
    text = record.outcome.value
    timed = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in phases if seconds is not None)
    if timed:
        text += f": {timed}"
    if record.routing_seconds is not None:
        text += f"; corrected routing in {record.routing_seconds:.2f} s"
    if record.detail:
        text += f" ({record.detail})"
    return text


@dataclass(frozen=True)
class _Attempt:
    """One path's drill as it runs: the record so far, and the error that ended it (for failover)."""

    record: DrillRecord
    error: BreakglassError | None = None


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


class DrillRunner:
    def __init__(
        self,
        zones: ZoneDirectory,
        audit: AuditSink,
        history: DrillStore,
        policy: PolicySource,
        checker: PropagationChecker,
        inspector: ZoneInspector,
        *,
        verify_timeout: float,
        canary_ttl: int = 60,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = new_drill_id,
        checkpointer: AuditCheckpointer | None = None,
        publisher: CheckpointPublisher | None = None,
    ) -> None:
        """``checkpointer``, ``publisher``: sign the audit chain head after each drill, and where to publish it."""
        self.zones = zones
        self._audit = audit
        self._leases = AuditedLeases(audit.append)
        self._history = history
        self._policy = policy
        self._checker = checker
        self._inspector = inspector
        self._verify_timeout = verify_timeout
        self._canary_ttl = canary_ttl
        self._now = now
        self._monotonic = monotonic
        self._new_id = new_id
        self._checkpointer = checkpointer
        self._publisher = publisher

    # --- who runs it ---------------------------------------------------------------------

    def run(self, requester: Principal, request: DrillRequest, progress: Progress = _quiet) -> DrillReport:
        """A drill by a verified principal (a Slack user)."""
        return self._run(self._new_id(), requester, str(requester), request, progress)

    def run_signed(
        self, request: DrillRequest, sign: Callable[[str, str], SignedStatement], progress: Progress = _quiet
    ) -> DrillReport:
        """A drill asked for with a statement signed by a person's pinned SSH key (`breakglass drill --key`)."""
        drill_id = self._new_id()
        digest = request.digest(drill_id)
        signed = sign(drill_id, digest)
        if signed.statement.decision is not Decision.REQUEST:
            raise ApprovalRefused(RefusalReason.WRONG_REQUEST, "A drill must be asked for with a `request` statement.")
        policy = self._policy_in_force(drill_id, f"key:{signed.statement.signer}")
        try:
            requester = verify_statement(
                signed, policy, request_id=drill_id, plan_digest=digest, now=self._now(), max_age=STATEMENT_MAX_AGE
            )
        except ApprovalRefused as refusal:
            self._refused(drill_id, f"key:{signed.statement.signer}", refusal, request.zone or "")
            raise
        return self._run(drill_id, requester, str(requester), request, progress)

    def run_as_configured(self, person: str, request: DrillRequest, progress: Progress = _quiet) -> DrillReport:
        """A scheduled or CI drill as the config's ``[drills] actor`` (a person in the policy, not key-signed).

        The audit trail records it as ``system:drill-actor:<person>`` so nobody mistakes it for a signed request.
        """
        drill_id = self._new_id()
        actor = f"{SYSTEM.source.value}:drill-actor:{person}"
        found = self._policy_in_force(drill_id, actor).person_by_name(person)
        if found is None:
            refusal = ApprovalRefused(
                RefusalReason.NOT_ALLOWED_TO_REQUEST,
                f"The configured drill actor `{person}` is not a person in the policy.",
                hint="Set [drills] actor to a person's name from the policy, or run the drill with --key.",
            )
            self._refused(drill_id, actor, refusal, request.zone or "")
            raise refusal
        return self._run(drill_id, found.key_principal(), actor, request, progress)

    # --- the drill -------------------------------------------------------------------------

    def _run(
        self, drill_id: str, requester: Principal, actor: str, request: DrillRequest, progress: Progress
    ) -> DrillReport:
        targets = self._targets(request)
        policy = self._policy_in_force(drill_id, actor)
        results: list[ZoneDrill] = []
        try:
            for zone in targets:
                results.append(self._drill_zone(drill_id, zone, requester, actor, request, policy, progress))
        finally:
            if len(results) < len(targets) or any(zone.refused is None for zone in results):
                self._checkpoint(drill_id, progress)
        return DrillReport(drill_id, actor, request.simulate_primary_outage, tuple(results))

    def _checkpoint(self, drill_id: str, progress: Progress) -> None:
        """A drill that wrote DNS ends with a signed audit checkpoint, like a request.

        A drill the policy refused outright wrote no DNS and waits for the next one: anyone in
        Slack can cause a refusal, and one audit channel message each would let them flood it.
        """
        failed = take_checkpoint(self._checkpointer, self._publisher, drill_id)
        if failed is not None:
            progress(f"Could not sign or publish an audit checkpoint: {failed.user_text()}")

    def _targets(self, request: DrillRequest) -> list[ZoneRuntime]:
        if request.path is not None and request.simulate_primary_outage:
            raise InvalidInput(
                "--path and --simulate-primary-outage do not go together: the outage drill tries the paths in order.",
                hint="Drop --path to drill the failover, or drop the outage to drill one path.",
            )
        if request.zone is not None:
            zone = normalize_name(request.zone)
            if zone not in self.zones.names():
                raise ZoneNotConfigured(
                    f"Zone `{zone}` is not managed by breakglass.",
                    hint=f"Managed zones: {', '.join(self.zones.names())}.",
                )
            zones = [self.zones.get(zone)]
        else:
            zones = [self.zones.get(name) for name in self.zones.names()]
        if request.path is not None:
            zones = [z for z in zones if any(r.path.name == request.path for r in z.paths)]
            if not zones:
                raise InvalidInput(
                    f"No change path is called `{request.path}`"
                    + (f" in zone {request.zone}." if request.zone else "."),
                    hint="`breakglass config check` lists the paths of every zone.",
                )
        return zones

    def _policy_in_force(self, drill_id: str, actor: str) -> Policy:
        try:
            return self._policy.current()
        except (PolicySignatureError, PolicyError) as error:
            refusal = ApprovalRefused(RefusalReason.POLICY_REFUSED, error.message, hint=error.hint)
        self._refused(drill_id, actor, refusal, "")
        raise refusal

    def _refused(self, drill_id: str, actor: str, refusal: BreakglassError, zone: str) -> None:
        reason = refusal.reason.value if isinstance(refusal, ApprovalRefused) else type(refusal).__name__
        self._audit.append(NewEvent(drill_id, actor, EventKind.REQUEST_REFUSED, {
            "reason": reason, "message": refusal.user_text(), "zone": zone, "drill": True,
        }))  # fmt: skip

    def _drill_zone(
        self,
        drill_id: str,
        zone: ZoneRuntime,
        requester: Principal,
        actor: str,
        request: DrillRequest,
        policy: Policy,
        progress: Progress,
    ) -> ZoneDrill:
        canary = RRset.build(
            canary_name(zone.name), TXT, self._canary_ttl, [f"breakglass drill {drill_id} {secrets.token_hex(8)}"]
        )
        change = ChangeRequest(
            id=drill_id, kind=RequestKind.CHANGE, zone=zone.name, edits=(RecordEdit(canary.name, TXT, canary),),
            reason=request.reason.strip() or f"breakglass drill {drill_id}", requester=requester,
            created_at=self._now(),
        )  # fmt: skip
        try:
            requirement = check_request(policy, change, requester, drill=True)
        except (ApprovalRefused, SafetyRefused, InvalidInput) as refusal:
            self._refused(drill_id, actor, refusal, zone.name)
            progress(f"{zone.name}: refused by the policy: {refusal.user_text()}")
            return ZoneDrill(zone.name, "", "", (), refused=refusal.user_text())
        approval = (
            f"simulated, not waited for: {describe(requirement)} "
            f"({len(requirement.eligible)} eligible besides the requester)"
        )
        self._audit.append(NewEvent(drill_id, actor, EventKind.DRILL_STARTED, {
            "zone": zone.name, "rule": ",".join(requirement.rules), "approvals_needed": requirement.count,
            "eligible": len(requirement.eligible), "approval": "simulated", "canary": canary.name,
            "simulated_outage": request.simulate_primary_outage, "path": request.path,
        }))  # fmt: skip
        progress(f"{zone.name}: drill {drill_id} authorised by policy rule {', '.join(requirement.rules)}")
        if request.simulate_primary_outage:
            records = self._failover(drill_id, zone, canary, actor, progress)
        else:
            records = self._each_path(drill_id, zone, canary, actor, request.path, progress)
        result = ZoneDrill(zone.name, ", ".join(requirement.rules), approval, tuple(records))
        self._audit.append(NewEvent(drill_id, actor, EventKind.DRILL_FINISHED, {
            "zone": zone.name, "passed": result.passed,
            "passed_paths": ",".join(r.path for r in records if r.outcome is DrillOutcome.PASSED),
        }))  # fmt: skip
        return result

    def _each_path(
        self, drill_id: str, zone: ZoneRuntime, canary: RRset, actor: str, only: str | None, progress: Progress
    ) -> list[DrillRecord]:
        records = []
        for route in zone.paths:
            if only is not None and route.path.name != only:
                continue
            if route.sealed and only is None:
                reason = (
                    "sealed envelope: drilled only when named with --path, since opening it means rotating its secret"
                )
                records.append(self._skip(drill_id, zone, route, actor, reason, outage=False))
            else:
                records.append(self._drill_path(drill_id, zone, route, canary, actor, None, progress).record)
        return records

    def _failover(
        self, drill_id: str, zone: ZoneRuntime, canary: RRset, actor: str, progress: Progress
    ) -> list[DrillRecord]:
        """Take the first path out, then try the others in order as ChangeService.execute would."""
        began = self._monotonic()
        primary, *backups = zone.paths
        outage = ProviderError(f"simulated outage of {primary.path.name}")
        detail = "simulated outage: taken out on purpose"
        if not backups:
            detail += "; this zone has no other path, so routing could not be corrected"
        records = [self._skip(drill_id, zone, primary, actor, detail, outage=True, outcome=DrillOutcome.UNAVAILABLE)]
        progress(f"{zone.name}: {primary.path.name} taken out (simulated outage)")
        failures: list[tuple[PathRuntime, BreakglassError]] = [(primary, outage)]
        for route in backups:
            reason = _skip_reason(route, failures)
            if reason:
                records.append(self._skip(drill_id, zone, route, actor, reason, outage=True))
                continue
            attempt = self._drill_path(drill_id, zone, route, canary, actor, began, progress)
            records.append(attempt.record)
            if attempt.record.outcome is DrillOutcome.PASSED:
                break
            if attempt.error is not None:
                failures.append((route, attempt.error))
        return records

    def _skip(
        self,
        drill_id: str,
        zone: ZoneRuntime,
        route: PathRuntime,
        actor: str,
        reason: str,
        *,
        outage: bool,
        outcome: DrillOutcome = DrillOutcome.SKIPPED,
    ) -> DrillRecord:
        record = DrillRecord(drill_id, zone.name, route.path.name, actor, self._now(), outcome, outage, detail=reason)
        self._history.record(record, _path_event(record))
        return record

    def _drill_path(
        self,
        drill_id: str,
        zone: ZoneRuntime,
        route: PathRuntime,
        canary: RRset,
        actor: str,
        since: float | None,
        progress: Progress,
    ) -> _Attempt:
        """Create, verify, delete, verify; ``since`` is when routing started to need correcting (failover)."""
        record = DrillRecord(
            drill_id, zone.name, route.path.name, actor, self._now(), DrillOutcome.FAILED, since is not None
        )
        began = self._monotonic() if since is None else since
        progress(f"{zone.name}: drilling {route.path.name}")
        error: BreakglassError | None = None
        created = False
        try:
            lease_s, apply_s, applied_at = self._write(drill_id, route, canary.name, canary, "drill: write canary")
            created = True
            record = replace(record, lease_seconds=lease_s, apply_seconds=apply_s)
            served = self._wait(zone, RRsetChange(canary.name, TXT, None, canary), applied_at)
            record = replace(record, propagation_seconds=served, routing_seconds=applied_at - began + served)
        except (CredentialError, ProviderError, ConflictError) as failure:
            error = failure
        cleanup_error: BreakglassError | None = None
        if created:
            try:
                record = replace(record, cleanup_seconds=self._clean_up(drill_id, zone, route, canary))
            except (CredentialError, ProviderError, ConflictError) as failure:
                cleanup_error = failure
        record = self._finish(record, error, cleanup_error, canary)
        self._history.record(record, _path_event(record))
        progress(
            f"{zone.name}: {route.path.name} {record.outcome.value}" + (f": {record.detail}" if record.detail else "")
        )
        return _Attempt(record, error or cleanup_error)

    def _finish(
        self, record: DrillRecord, error: BreakglassError | None, cleanup: BreakglassError | None, canary: RRset
    ) -> DrillRecord:
        problems = []
        if error is not None:
            problems.append(error.user_text())
        if cleanup is not None:
            problems.append(
                f"cleanup failed: {cleanup.user_text()} The canary {canary.name} TXT may still be served; "
                "run the drill again (it replaces and removes a leftover canary) or delete it by hand."
            )
        if problems:
            return replace(record, outcome=DrillOutcome.FAILED, detail=" ".join(problems))
        return replace(record, outcome=DrillOutcome.PASSED)

    def _clean_up(self, drill_id: str, zone: ZoneRuntime, route: PathRuntime, canary: RRset) -> float:
        started = self._monotonic()
        _, _, deleted_at = self._write(drill_id, route, canary.name, None, "drill: delete canary", expect=canary)
        self._wait(zone, RRsetChange(canary.name, TXT, canary, None), deleted_at)
        return self._monotonic() - started

    def _write(
        self,
        drill_id: str,
        route: PathRuntime,
        name: str,
        after: RRset | None,
        purpose: str,
        *,
        expect: RRset | None = None,
    ) -> tuple[float, float, float]:
        """Lease, compare-and-swap the canary to ``after``, revoke: (lease seconds, apply seconds, applied at)."""
        started = self._monotonic()
        lease = self._leases.lease(drill_id, route, purpose=purpose)
        leased_at = self._monotonic()
        try:
            current = route.path.read(name, TXT, lease.credentials)
            if expect is not None and current != expect:
                found = current.describe() if current else "no record"
                raise ConflictError(
                    f"{name} TXT changed during the drill (now {found}); it was not deleted.",
                    hint="Another drill may be running on this zone: run one drill at a time.",
                )
            if current != after:
                route.path.apply([RRsetChange(name, TXT, current, after)], lease.credentials)
            applied_at = self._monotonic()
        finally:
            self._leases.revoke(drill_id, lease)
        return leased_at - started, applied_at - leased_at, applied_at

    def _wait(self, zone: ZoneRuntime, change: RRsetChange, since: float) -> float:
        """Seconds until the last authoritative server served ``change.after``; ProviderError if not all did."""
        servers = self._inspector.authoritative_servers(zone.name)
        if not servers.servers:
            raise ProviderError(f"No authoritative server of {zone.name} could be found to verify the drill.")
        report = self._checker.wait([change], servers.servers, self._verify_timeout, since=since)
        if not report.verified or servers.problems:
            raise ProviderError(_not_served(report, servers.problems, change.after is None))
        return max(r.seconds_to_serve or 0.0 for r in report.results)


def _skip_reason(route: PathRuntime, failures: Sequence[tuple[PathRuntime, BreakglassError]]) -> str:
    """ChangeService's failover rule; and a sealed envelope is never opened by a drill."""
    shared = shares_failed_trust(route, failures)
    if shared:
        return shared
    if route.sealed:
        return "sealed envelope: a real incident would need the policy's sealed_count approvals; not opened in a drill"
    return ""


def _not_served(report: VerificationReport, problems: Sequence[str], deleting: bool) -> str:
    what = "stopped serving the canary" if deleting else "served the canary"
    lagging = ", ".join(f"{r.server} ({r.last_answer.describe()})" for r in report.lagging())
    text = f"Not every authoritative server {what} within {report.timeout_seconds:g}s"
    text += f": {lagging}." if lagging else "."
    if problems:
        text += " Could not check: " + "; ".join(problems) + "."
    return text


def _ms(seconds: float | None) -> EventValue:
    return None if seconds is None else round(seconds * 1000, 1)


def _path_event(record: DrillRecord) -> NewEvent:
    return NewEvent(record.drill_id, record.actor, EventKind.DRILL_PATH, {
        "zone": record.zone, "path": record.path, "outcome": record.outcome.value,
        "simulated_outage": record.simulated_outage, "lease_ms": _ms(record.lease_seconds),
        "apply_ms": _ms(record.apply_seconds), "propagation_ms": _ms(record.propagation_seconds),
        "cleanup_ms": _ms(record.cleanup_seconds), "routing_ms": _ms(record.routing_seconds),
        "detail": record.detail,
    })  # fmt: skip
