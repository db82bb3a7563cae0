"""`breakglass policy check`: what each rule allows, and the traps a policy owner should fix before an incident.

A policy that loads can still fail people at 3 a.m.: a rule whose quorum dies with one absence, a required
group of one, an approver without a key when Slack is down, a rule hidden behind an earlier one. Unknown
group or person references are not warnings: they are load errors (PolicyError), so they never reach here.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from approvals.policy import Person, Policy, Rule, format_duration
from core.limits import percent
from core.records import RecordType

_TARGETED = {
    RecordType.A: "networks",
    RecordType.AAAA: "networks",
    RecordType.CNAME: "hosts",
    RecordType.MX: "hosts",
    RecordType.SRV: "hosts",
    RecordType.NS: "hosts",
}


@dataclass(frozen=True)
class PolicyWarning:
    subject: str  # `rule web-failover`, `person alice`, `group security`
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


@dataclass(frozen=True)
class RuleReport:
    name: str
    zone: str
    names: tuple[str, ...]
    types: tuple[str, ...]
    requesters: tuple[str, ...]  # people
    approvers: tuple[str, ...]  # people
    count: int
    must_include: tuple[str, ...]  # groups
    rollback_count: int
    drill_count: int
    expires_after: int
    emergency: tuple[str, ...] | None  # people who may self-approve; None when the rule has no clause
    max_change_fraction: Fraction  # of a zone's rrsets one request may update or delete
    min_zone_rrsets: int

    def describe(self) -> str:
        must = f", at least one from {' and '.join(self.must_include)}" if self.must_include else ""
        lines = [
            f"rule {self.name}: {', '.join(self.names)} in {self.zone} ({', '.join(self.types)})",
            f"  may request: {', '.join(self.requesters) or 'nobody'}",
            f"  may approve: {', '.join(self.approvers) or 'nobody'}",
            f"  needs: {self.count} approver(s){must}; rollback {self.rollback_count}; drill {self.drill_count}; "
            f"expires after {format_duration(self.expires_after)}",
            f"  emergency self-approval: {', '.join(self.emergency) if self.emergency is not None else 'no'}",
            f"  too much change: {self._limit()}",
        ]
        return "\n".join(lines)

    def _limit(self) -> str:
        if self.max_change_fraction >= 1:
            return "no limit (bulk changes allowed)"
        return (
            f"refused above {percent(self.max_change_fraction)} of a zone's rrsets updated or deleted in one request "
            f"(zones of {self.min_zone_rrsets} or more)"
        )


@dataclass(frozen=True)
class PolicyReport:
    source: str
    sha256: str
    rules: tuple[RuleReport, ...]
    warnings: tuple[PolicyWarning, ...]

    def to_text(self) -> str:
        head = f"policy {self.source} (sha256 {self.sha256[:12]}...): {len(self.rules)} rule(s)"
        warnings = [f"warning: {w}" for w in self.warnings] or ["no warnings"]
        return "\n".join([head, *(r.describe() for r in self.rules), *warnings])


def explain(policy: Policy) -> PolicyReport:
    rules = tuple(_report(policy, rule) for rule in policy.rules)
    warnings = [*_person_warnings(policy)]
    for index, rule in enumerate(policy.rules):
        warnings += _quorum_warnings(policy, rule)
        warnings += _target_warnings(rule)
        shadow = next((earlier for earlier in policy.rules[:index] if _shadows(earlier, rule)), None)
        if shadow is not None:
            warnings.append(
                PolicyWarning(
                    f"rule {rule.name}",
                    f"unreachable: earlier rule {shadow.name} matches every record it covers (first match wins)",
                )
            )
    return PolicyReport(policy.source, policy.sha256, rules, tuple(warnings))


def _names(people: frozenset[Person]) -> tuple[str, ...]:
    return tuple(sorted(p.name for p in people))


def _report(policy: Policy, rule: Rule) -> RuleReport:
    spec = rule.approvals
    return RuleReport(
        name=rule.name,
        zone=rule.zone,
        names=tuple(str(p) for p in rule.names),
        types=tuple(sorted(t.value for t in rule.types)),
        requesters=_names(policy.members(rule.requesters)),
        approvers=_names(policy.members(spec.approver_groups + spec.must_include)),
        count=spec.count,
        must_include=spec.must_include,
        rollback_count=spec.rollback_count,
        drill_count=spec.drill_count,
        expires_after=rule.expires_after,
        emergency=_names(policy.members(rule.emergency.groups)) if rule.emergency is not None else None,
        max_change_fraction=policy.max_change_fraction(rule),
        min_zone_rrsets=policy.safety.min_zone_rrsets,
    )


def _person_warnings(policy: Policy) -> list[PolicyWarning]:
    warnings = []
    for person in policy.people:
        if not person.keys:
            warnings.append(
                PolicyWarning(f"person {person.name}", "has no SSH key: cannot approve out of band when Slack is down")
            )
        if not policy.groups_of(person):
            warnings.append(PolicyWarning(f"person {person.name}", "is in no group: can neither request nor approve"))
    return warnings


def _quorum_warnings(policy: Policy, rule: Rule) -> list[PolicyWarning]:
    """Count the people left once the requester is taken out (the requester never approves)."""
    subject = f"rule {rule.name}"
    spec = rule.approvals
    eligible = policy.members(spec.approver_groups + spec.must_include)
    requesters = policy.members(rule.requesters)
    pool = len(eligible) - (1 if eligible & requesters else 0)
    besides = " besides the requester" if eligible & requesters else ""
    warnings = []
    needed = max(spec.count, spec.rollback_count)
    if pool < needed:
        warnings.append(
            PolicyWarning(
                subject, f"needs {needed} approvers but only {pool} eligible people exist{besides}: it can never pass"
            )
        )
    elif pool == needed:
        warnings.append(
            PolicyWarning(
                subject,
                f"needs {needed} approvers but only {pool} eligible people exist{besides}: one absence blocks it",
            )
        )
    for group in spec.must_include:
        members = policy.members([group])
        if len(members) == 0:
            warnings.append(PolicyWarning(subject, f"requires {group} but {group} has no members: it can never pass"))
        elif len(members) == 1:
            (only,) = members
            extra = f" (and {only.name} can never approve their own request)" if only in requesters else ""
            warnings.append(PolicyWarning(subject, f"requires {group} but {group} has 1 member{extra}"))
    if not requesters:
        warnings.append(PolicyWarning(subject, "nobody may request it: its requester groups are empty"))
    return warnings


def _target_warnings(rule: Rule) -> list[PolicyWarning]:
    unrestricted = sorted(
        t.value
        for t in rule.types
        if t in _TARGETED and (rule.targets.networks if _TARGETED[t] == "networks" else rule.targets.hosts) is None
    )
    if not unrestricted:
        return []
    return [
        PolicyWarning(
            f"rule {rule.name}",
            f"does not restrict where {'/'.join(unrestricted)} records may point (no `targets`)",
        )
    ]


def _shadows(earlier: Rule, later: Rule) -> bool:
    return (
        earlier.zone == later.zone
        and later.types <= earlier.types
        and all(any(e.covers(n) for e in earlier.names) for n in later.names)
    )
