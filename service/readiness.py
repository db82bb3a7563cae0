"""The readiness report: could breakglass correct routing for each critical record, in time, today?

Per critical record (the config's ``[[inventory]]``): its change paths and their trust paths, the
last successful drill of each path and its time to corrected routing against the record's RTO,
who could approve (eligible people against the quorum), credential age where it is known, and
findings. Each finding names the control it maps to and what to do. The report reads config,
the signed policy and the drill history only: it never leases a credential or writes DNS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from approvals.explain import RuleReport, explain
from approvals.policy import Policy, PolicyError
from approvals.signing import PolicySignatureError
from core.errors import InvalidInput
from core.models import JsonValue
from core.ports import DrillRecord, DrillStore
from core.records import RecordType, is_subdomain
from service.policy import PolicySource
from service.zones import TrustPath


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise InvalidInput(
                f"`{text}` is not a severity.", hint=f"Use one of: {', '.join(s.value for s in cls)}."
            ) from None


class FindingKind(StrEnum):
    SINGLE_PATH = "single_path"
    SHARED_TRUST_PATH = "shared_trust_path"
    STALE_DRILL = "stale_drill"  # no successful drill within the configured number of days (or never)
    RTO_MISSED = "rto_missed"
    QUORUM_FRAGILE = "quorum_fragile"
    POLICY_UNSIGNED = "policy_unsigned"  # unsigned, modified or badly signed: the bot refuses every request
    CREDENTIAL_AGE = "credential_age"
    NO_POLICY_RULE = "no_policy_rule"


# What each finding maps to. NIST CSF 2.0 subcategories, and the OWASP Non-Human Identities Top 10 (2025).
CSF_RC_RP_01 = "NIST CSF 2.0 RC.RP-01"  # the recovery portion of the incident response plan is executed
CSF_RC_RP_02 = "NIST CSF 2.0 RC.RP-02"  # recovery actions are selected, scoped, prioritized, and performed
CSF_PR_IR_03 = "NIST CSF 2.0 PR.IR-03"  # mechanisms achieve resilience requirements in normal and adverse situations
CSF_ID_IM_02 = "NIST CSF 2.0 ID.IM-02"  # improvements are identified from security tests and exercises
CSF_PR_AA_05 = "NIST CSF 2.0 PR.AA-05"  # access permissions and authorizations are defined in a policy and managed
CSF_PR_PS_01 = "NIST CSF 2.0 PR.PS-01"  # configuration management practices are established and applied
NHI7 = "OWASP NHI7:2025 Long-Lived Secrets"
NHI9 = "OWASP NHI9:2025 NHI Reuse"


@dataclass(frozen=True)
class CriticalRecord:
    """A critical service destination from the config's inventory."""

    name: str
    rtype: RecordType
    service: str  # the owning service
    rto_seconds: float
    leads_to: tuple[str, ...] = ()  # secrets and identities that routing leads to (e.g. "token service")


@dataclass(frozen=True)
class PathFacts:
    """What the report knows about a change path without touching its credentials."""

    zone: str
    name: str
    kind: str  # rfc2136, powerdns, route53
    trust: TrustPath
    sealed: bool = False
    credential_created_at: datetime | None = None  # where known (a sealed envelope's sealing time)


@dataclass(frozen=True)
class ReadinessSettings:
    stale_after_days: int = 30
    approval_estimate_seconds: float = 0.0  # added to drilled times: drills do not wait for people
    max_credential_age_days: int = 90


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    severity: Severity
    subject: str  # `api.example.com. A`, `path pdns-api of example.com.`, `policy`
    message: str
    controls: tuple[str, ...]
    action: str

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "kind": self.kind.value, "severity": self.severity.value, "subject": self.subject,
            "message": self.message, "controls": list(self.controls), "action": self.action,
        }  # fmt: skip


@dataclass(frozen=True)
class PathReadiness:
    facts: PathFacts
    last_drill: DrillRecord | None  # the last drill this path passed
    time_to_routing: float | None  # that drill's measured seconds plus the approval estimate
    credential_age_days: float | None

    def to_dict(self) -> dict[str, JsonValue]:
        drill = self.last_drill
        return {
            "path": self.facts.name,
            "kind": self.facts.kind,
            "sealed": self.facts.sealed,
            "identity": self.facts.trust.identity,
            "credential_source": self.facts.trust.credential_source,
            "control_plane": self.facts.trust.control_plane,
            "last_drill": None if drill is None else {
                "drill_id": drill.drill_id, "at": drill.started_at.isoformat(),
                "simulated_outage": drill.simulated_outage,
                "lease_seconds": drill.lease_seconds, "apply_seconds": drill.apply_seconds,
                "propagation_seconds": drill.propagation_seconds, "cleanup_seconds": drill.cleanup_seconds,
                "routing_seconds": drill.routing_seconds,
            },
            "time_to_routing_seconds": self.time_to_routing,
            "credential_age_days": self.credential_age_days,
        }  # fmt: skip


@dataclass(frozen=True)
class ApproverCoverage:
    rule: str
    needed: int  # the larger of the rule's count and rollback count
    eligible: tuple[str, ...]  # people who may approve
    available: int  # eligible people once the requester is taken out
    must_include: tuple[str, ...]
    emergency: bool  # the rule has an emergency self-approval clause

    @property
    def spare(self) -> int:
        """How many eligible people may be absent before the change can no longer be approved."""
        return self.available - self.needed

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "rule": self.rule, "needed": self.needed, "eligible": list(self.eligible), "available": self.available,
            "spare": self.spare, "must_include": list(self.must_include), "emergency": self.emergency,
        }  # fmt: skip


@dataclass(frozen=True)
class RecordReadiness:
    record: CriticalRecord
    zone: str
    paths: tuple[PathReadiness, ...]
    coverage: ApproverCoverage | None  # None when no rule covers it, or the policy is refused
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, JsonValue]:
        r = self.record
        return {
            "record": r.name, "type": r.rtype.value, "service": r.service, "rto_seconds": r.rto_seconds,
            "leads_to": list(r.leads_to), "zone": self.zone, "paths": [p.to_dict() for p in self.paths],
            "approvers": None if self.coverage is None else self.coverage.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
        }  # fmt: skip


@dataclass(frozen=True)
class ReadinessReport:
    generated_at: datetime
    settings: ReadinessSettings
    policy_problem: str | None
    records: tuple[RecordReadiness, ...]
    general: tuple[Finding, ...]  # findings about breakglass as a whole (the policy)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.general + tuple(f for r in self.records for f in r.findings)

    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    def at_or_above(self, severity: Severity) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity.rank >= severity.rank)

    def to_dict(self) -> dict[str, JsonValue]:
        worst = self.worst()
        return {
            "generated_at": self.generated_at.isoformat(),
            "stale_after_days": self.settings.stale_after_days,
            "approval_estimate_seconds": self.settings.approval_estimate_seconds,
            "policy_problem": self.policy_problem,
            "worst_severity": None if worst is None else worst.value,
            "findings": [f.to_dict() for f in self.general],
            "records": [r.to_dict() for r in self.records],
        }

    def to_text(self) -> str:
        """Plain text for terminals and chat (callers escape it for their medium)."""
        lines = [f"breakglass readiness, {self.generated_at:%Y-%m-%d %H:%M} UTC"]
        lines += [f"[{f.severity.value}] {f.subject}: {f.message} -> {f.action}" for f in self.general]
        for item in self.records:
            r = item.record
            lines.append(f"{r.name} {r.rtype.value} ({r.service}, RTO {r.rto_seconds:g}s) in {item.zone}")
            if r.leads_to:
                lines.append(f"  leads to: {', '.join(r.leads_to)}")
            for path in item.paths:
                lines.append(f"  path {path.facts.name}: {describe_path(path, r.rto_seconds)}")
            if item.coverage is not None:
                c = item.coverage
                lines.append(
                    f"  approvers: rule {c.rule} needs {c.needed}, {c.available} available besides the requester "
                    f"({c.spare} may be absent)"
                )
            for f in item.findings:
                lines.append(f"  [{f.severity.value}] {f.kind.value}: {f.message} ({'; '.join(f.controls)})")
                lines.append(f"      what to do: {f.action}")
        if not self.findings:
            lines.append("no findings")
        return "\n".join(lines)


def describe_path(path: PathReadiness, rto_seconds: float) -> str:
    trust = path.facts.trust
    text = f"{path.facts.kind}; identity {trust.identity}; credentials {trust.credential_source}; "
    text += f"control plane {trust.control_plane}"
    if path.facts.sealed:
        text += "; sealed envelope (not drilled)"
    elif path.last_drill is None:
        text += "; never drilled successfully"
    else:
        drill = path.last_drill
        text += f"; last drill {drill.drill_id} on {drill.started_at:%Y-%m-%d}"
        if path.time_to_routing is not None:
            verdict = "within" if path.time_to_routing <= rto_seconds else "MISSES"
            text += f", {path.time_to_routing:.2f}s to corrected routing ({verdict} RTO {rto_seconds:g}s)"
    if path.credential_age_days is not None:
        text += f"; credential {path.credential_age_days:.0f} days old"
    return text


class ReadinessReporter:
    def __init__(
        self,
        inventory: Sequence[CriticalRecord],
        paths: Sequence[PathFacts],
        policy: PolicySource,
        drills: DrillStore,
        settings: ReadinessSettings,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._inventory = tuple(inventory)
        self._paths = tuple(paths)
        self._policy = policy
        self._drills = drills
        self._settings = settings
        self._now = now

    def report(self) -> ReadinessReport:
        now = self._now()
        policy: Policy | None
        try:
            policy, problem = self._policy.current(), None
        except (PolicySignatureError, PolicyError) as error:
            policy, problem = None, error.user_text()
        general = () if problem is None else (_policy_refused(problem),)
        rules = {r.name: r for r in explain(policy).rules} if policy is not None else {}
        records = tuple(self._record(item, policy, rules, now) for item in self._inventory)
        return ReadinessReport(now, self._settings, problem, records, general)

    def _record(
        self, item: CriticalRecord, policy: Policy | None, rules: dict[str, RuleReport], now: datetime
    ) -> RecordReadiness:
        zone = max((p.zone for p in self._paths if is_subdomain(item.name, p.zone)), key=len, default="")
        facts = [p for p in self._paths if p.zone == zone]
        paths = tuple(self._path(p, now) for p in facts)
        subject = f"{item.name} {item.rtype.value}"
        findings = _path_findings(subject, zone, facts)
        for path in paths:
            findings += self._drill_findings(item, path, now)
            findings += self._credential_findings(path)
        coverage = None
        if policy is not None:
            rule = policy.match(zone, item.name, item.rtype)
            if rule is None:
                findings.append(_no_rule(subject, zone))
            else:
                coverage = _coverage(rules[rule.name])
                findings += _quorum_findings(subject, coverage, policy)
        return RecordReadiness(item, zone, paths, coverage, tuple(findings))

    def _path(self, facts: PathFacts, now: datetime) -> PathReadiness:
        last = self._drills.last_passed(facts.zone, facts.name)
        routing = None
        if last is not None and last.routing_seconds is not None:
            routing = last.routing_seconds + self._settings.approval_estimate_seconds
        age = None
        if facts.credential_created_at is not None:
            age = (now - facts.credential_created_at) / timedelta(days=1)
        return PathReadiness(facts, last, routing, age)

    def _drill_findings(self, item: CriticalRecord, path: PathReadiness, now: datetime) -> list[Finding]:
        if path.facts.sealed:
            return []  # opening a sealed envelope forces a rotation; it is not drilled routinely
        name, zone = path.facts.name, path.facts.zone
        subject = f"path {name} of {zone}"
        drill_it = f"Run `breakglass drill --zone {zone.rstrip('.')} --path {name}` (and schedule it)."
        last = path.last_drill
        days = self._settings.stale_after_days
        if last is None:
            return [Finding(
                FindingKind.STALE_DRILL, Severity.HIGH, subject,
                f"never drilled successfully: nobody knows whether it can correct {item.name} {item.rtype.value}",
                (CSF_ID_IM_02, CSF_RC_RP_01), drill_it,
            )]  # fmt: skip
        findings = []
        age = now - last.started_at
        if age > timedelta(days=days):
            findings.append(Finding(
                FindingKind.STALE_DRILL, Severity.MEDIUM, subject,
                f"last successful drill {last.drill_id} was {age.days} days ago (more than {days})",
                (CSF_ID_IM_02, CSF_RC_RP_01), drill_it,
            ))  # fmt: skip
        if path.time_to_routing is not None and path.time_to_routing > item.rto_seconds:
            slowest = _slowest_phase(last)
            findings.append(Finding(
                FindingKind.RTO_MISSED, Severity.HIGH, subject,
                f"drill {last.drill_id} took {path.time_to_routing:.1f}s to corrected routing "
                f"(approval estimate included), over the {item.rto_seconds:g}s RTO of {item.name} ({item.service})",
                (CSF_RC_RP_02,),
                f"Its slowest phase was {slowest}: speed that up (or fail over to a faster path first), "
                "or agree a realistic RTO with the service owner.",
            ))  # fmt: skip
        return findings

    def _credential_findings(self, path: PathReadiness) -> list[Finding]:
        limit = self._settings.max_credential_age_days
        if path.credential_age_days is None or path.credential_age_days <= limit:
            return []
        return [Finding(
            FindingKind.CREDENTIAL_AGE, Severity.MEDIUM, f"path {path.facts.name} of {path.facts.zone}",
            f"its credential was issued {path.credential_age_days:.0f} days ago (more than {limit}), from "
            f"{path.facts.trust.credential_source}",
            (NHI7,), "Rotate the secret on the DNS side and seal or store the new one; the old one stops working.",
        )]  # fmt: skip


def _policy_refused(problem: str) -> Finding:
    return Finding(
        FindingKind.POLICY_UNSIGNED, Severity.CRITICAL, "policy",
        f"breakglass refuses every request: {problem}", (CSF_PR_PS_01, CSF_RC_RP_01),
        "Review the policy, run `breakglass policy check`, then sign it with `breakglass policy sign`.",
    )  # fmt: skip


def _no_rule(subject: str, zone: str) -> Finding:
    return Finding(
        FindingKind.NO_POLICY_RULE, Severity.CRITICAL, subject,
        f"no policy rule covers it in zone {zone}, so breakglass denies any change to it",
        (CSF_RC_RP_01, CSF_PR_AA_05), "Add a rule for it to the policy, check and sign the policy.",
    )  # fmt: skip


def _path_findings(subject: str, zone: str, paths: Sequence[PathFacts]) -> list[Finding]:
    if len(paths) < 2:
        only = paths[0].name if paths else "none"
        return [Finding(
            FindingKind.SINGLE_PATH, Severity.HIGH, subject,
            f"zone {zone} has a single change path ({only}): if it fails, routing cannot be corrected",
            (CSF_RC_RP_02, CSF_PR_IR_03),
            "Add a backup [[zones.paths]] entry with its own identity, credential source and control plane, "
            "then drill it.",
        )]  # fmt: skip
    findings = []
    for i, first in enumerate(paths):
        for second in paths[i + 1 :]:
            shared = first.trust.shared_with(second.trust)
            if not shared:
                continue
            identity = any(s.startswith("identity") for s in shared)
            credentials = any(s.startswith("credential source") for s in shared)
            findings.append(Finding(
                FindingKind.SHARED_TRUST_PATH, Severity.HIGH if identity or credentials else Severity.MEDIUM, subject,
                f"paths {first.name} and {second.name} share {', '.join(shared)}: one outage or revocation there "
                "takes both down",
                (CSF_RC_RP_02, CSF_PR_IR_03, *((NHI9,) if identity else ())),
                f"Give {second.name} its own identity (a separate [vaults.NAME] AppRole or IAM role), credential "
                "source and control plane, so a failure of one path leaves the other usable.",
            ))  # fmt: skip
    return findings


def _coverage(rule: RuleReport) -> ApproverCoverage:
    both = set(rule.approvers) & set(rule.requesters)
    return ApproverCoverage(
        rule=rule.name,
        needed=max(rule.count, rule.rollback_count),
        eligible=rule.approvers,
        available=len(rule.approvers) - (1 if both else 0),  # the requester never approves their own change
        must_include=rule.must_include,
        emergency=rule.emergency is not None,
    )


def _quorum_findings(subject: str, coverage: ApproverCoverage, policy: Policy) -> list[Finding]:
    """Same arithmetic as `breakglass policy check`: one absence must not block a change."""
    problems: list[tuple[Severity, str]] = []
    if coverage.spare < 0:
        problems.append(
            (
                Severity.CRITICAL,
                f"needs {coverage.needed} approvers but only {coverage.available} "
                "are available besides the requester: it can never be approved",
            )
        )
    elif coverage.spare == 0:
        problems.append(
            (
                Severity.HIGH,
                f"needs {coverage.needed} approvers and exactly {coverage.available} are "
                "available besides the requester: one absence blocks it",
            )
        )
    for group in coverage.must_include:
        members = policy.members([group])
        if len(members) <= 1:
            problems.append((Severity.HIGH, f"needs someone from {group}, which has {len(members)} member(s)"))
    if not problems:
        return []
    severity = max((s for s, _ in problems), key=lambda s: s.rank)
    clause = " (the emergency self-approval clause is the only way round it)" if coverage.emergency else ""
    return [Finding(
        FindingKind.QUORUM_FRAGILE, severity, subject,
        f"policy rule {coverage.rule} " + "; ".join(text for _, text in problems) + clause,
        (CSF_RC_RP_01, CSF_PR_AA_05),
        "Add eligible approvers (or members to the required group), or lower the count, so that at least one "
        "person may be absent; then check and sign the policy.",
    )]  # fmt: skip


def _slowest_phase(drill: DrillRecord) -> str:
    phases = {
        "credential lease": drill.lease_seconds,
        "apply": drill.apply_seconds,
        "propagation to every authoritative server": drill.propagation_seconds,
    }
    name, seconds = max(((k, v) for k, v in phases.items() if v is not None), key=lambda kv: kv[1], default=("?", 0.0))
    return f"{name} ({seconds:.1f}s)"
