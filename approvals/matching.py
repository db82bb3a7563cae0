"""From (policy, request, requester) to the approvals a change needs, and whether it has them.

Several edits in one request may match different rules; the request must satisfy every one of them, so
the requirement is their strictest combination:

- count, rollback count: the largest of the matched rules;
- eligible approvers: people eligible under *every* matched rule (intersection), never the requester;
- groups that must be represented: all of them (union);
- expiry: the shortest;
- emergency self-approval: only if *every* matched rule allows it to the requester;
- the "too much change" limit: the smallest ``max_change_fraction`` (enforced when planning, since it
  needs the zone's size; a rollback puts back what was served before, so it has none).

Approvals are counted per person, not per principal: the same person approving once in Slack and once
with a signed statement counts once.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from approvals.policy import Person, Policy, Rule
from core.errors import ApprovalRefused, InvalidInput, RefusalReason, SafetyRefused
from core.limits import ChangeLimit
from core.models import Approval, ChangeRequest, Principal, RecordEdit, RequestKind
from core.records import RecordType, target_host

_ADDRESS_TYPES = (RecordType.A, RecordType.AAAA)


@dataclass(frozen=True)
class GroupNeed:
    """At least one approver from ``group``; ``members`` are its eligible people."""

    group: str
    members: frozenset[Person]


@dataclass(frozen=True)
class EmergencyApproval:
    """What the service must do after an emergency self-approval: notify, record, review."""

    person: Person
    reason: str
    notify: tuple[Person, ...]  # every eligible approver, so nobody learns of it afterwards
    review_required: bool = True


@dataclass(frozen=True)
class Requirement:
    request_id: str
    rules: tuple[str, ...]
    requester: Person
    count: int  # distinct approvers needed for this request (already the rollback/drill count if it is one)
    eligible: tuple[Person, ...]  # who may approve; never the requester
    must_include: tuple[GroupNeed, ...]
    expires_after: int  # seconds
    emergency_allowed: bool
    rollback_count: int  # what a rollback of this change will need
    sealed_count: int  # approvals before a sealed-envelope (Vault-down) credential may be opened
    drill: bool = False
    change_limit: ChangeLimit | None = None  # how much of the zone it may update or delete; None: unlimited

    def expires_at(self, request: ChangeRequest) -> datetime:
        return request.created_at + timedelta(seconds=self.expires_after)

    # --- one approver ------------------------------------------------------------------

    def check_approver(self, request: ChangeRequest, approver: Principal, existing: Sequence[Approval]) -> None:
        """Raise ApprovalRefused unless ``approver`` may add an approval now (a wrong group mix is allowed)."""
        self._check_same_request(request)
        if self.requester.is_principal(approver):
            hint = "Ask another approver: " + self._names(self.eligible) + "."
            if self.emergency_allowed:
                hint += " If nobody can be reached, the emergency clause lets you self-approve with a reason."
            raise ApprovalRefused(
                RefusalReason.SELF_APPROVAL, "You requested this change, so you cannot approve it.", hint=hint
            )
        person = self._eligible_person(approver)
        if person is None:
            raise ApprovalRefused(
                RefusalReason.NOT_AN_APPROVER,
                f"You are not an approver for this change (policy rule {', '.join(self.rules)}).",
                hint=f"Approvers: {self._names(self.eligible)}.",
            )
        if any(person.is_principal(a.approver) for a in existing):
            raise ApprovalRefused(
                RefusalReason.ALREADY_APPROVED,
                f"{person.name} has already approved this change; one person counts once.",
                hint=f"Still needed: {self.missing(existing)}.",
            )

    def check_denier(self, request: ChangeRequest, person: Principal) -> None:
        """The requester may withdraw their own request; otherwise only eligible approvers may deny."""
        self._check_same_request(request)
        if not self.requester.is_principal(person) and self._eligible_person(person) is None:
            raise ApprovalRefused(
                RefusalReason.NOT_AN_APPROVER,
                "Only the approvers of this change (or the requester) can deny it.",
                hint=f"Approvers: {self._names(self.eligible)}.",
            )

    def check_emergency(self, request: ChangeRequest, approver: Principal, reason: str) -> EmergencyApproval:
        """Let the requester self-approve under the emergency clause; the service must act on the result."""
        self._check_same_request(request)
        if not self.requester.is_principal(approver):
            raise ApprovalRefused(
                RefusalReason.EMERGENCY_NOT_ALLOWED,
                "Only the requester can invoke the emergency clause on their own request.",
                hint="Approve it normally instead.",
            )
        if not self.emergency_allowed:
            raise ApprovalRefused(
                RefusalReason.EMERGENCY_NOT_ALLOWED,
                f"Policy rule {', '.join(self.rules)} does not allow emergency self-approval for this change "
                "(or not for you).",
                hint=f"Ask an approver: {self._names(self.eligible)}.",
            )
        if not reason.strip():
            raise InvalidInput(
                "An emergency self-approval needs a reason.",
                hint="Say why nobody else could approve; every approver is notified and it will be reviewed.",
            )
        return EmergencyApproval(self.requester, reason.strip(), self.eligible)

    # --- the whole set -----------------------------------------------------------------

    def counted(self, approvals: Sequence[Approval]) -> tuple[Person, ...]:
        """The distinct eligible people behind ``approvals``; strangers and the requester are not counted."""
        people: list[Person] = []
        for approval in approvals:
            person = self._eligible_person(approval.approver)
            if person is not None and person not in people:
                people.append(person)
        return tuple(people)

    def emergency_used(self, approvals: Sequence[Approval]) -> bool:
        """True when the requester's own approval is present and the emergency clause allows it."""
        return self.emergency_allowed and any(self.requester.is_principal(a.approver) for a in approvals)

    def missing_count(self, approvals: Sequence[Approval]) -> int:
        """How many more people must approve at least (taking the group mix into account)."""
        if self.emergency_used(approvals):
            return 0
        people = self.counted(approvals)
        unmet = self._unmet_groups(people)
        cover = _smallest_cover(unmet, frozenset(self.eligible) - set(people))
        groups_need = cover if cover is not None else len(unmet)  # impossible: check_request refused it already
        return max(self.count - len(people), groups_need)

    def satisfied(self, approvals: Sequence[Approval]) -> bool:
        if self.emergency_used(approvals):
            return True
        people = self.counted(approvals)
        return len(people) >= self.count and not self._unmet_groups(people)

    def missing(self, approvals: Sequence[Approval]) -> str:
        """What is still needed, for people: ``1 more approver, at least one from security``."""
        needed = self.missing_count(approvals)
        if needed == 0 and self.satisfied(approvals):
            return "nothing: the approvals are complete"
        text = f"{needed} more approver{'s' if needed != 1 else ''}"
        unmet = self._unmet_groups(self.counted(approvals))
        if unmet:
            text += ", at least one from " + " and one from ".join(g.group for g in unmet)
        return text

    def _unmet_groups(self, people: Sequence[Person]) -> tuple[GroupNeed, ...]:
        return tuple(need for need in self.must_include if not need.members.intersection(people))

    def _eligible_person(self, principal: Principal) -> Person | None:
        return next((p for p in self.eligible if p.is_principal(principal)), None)

    def _check_same_request(self, request: ChangeRequest) -> None:
        if request.id != self.request_id:
            raise ApprovalRefused(
                RefusalReason.WRONG_REQUEST,
                f"This approval requirement belongs to {self.request_id}, not {request.id}.",
            )

    @staticmethod
    def _names(people: Sequence[Person]) -> str:
        return ", ".join(p.name for p in people) or "nobody"


def _smallest_cover(needs: Sequence[GroupNeed], candidates: frozenset[Person]) -> int | None:
    """The fewest candidates that represent every need; None when a need has no candidate.

    People are reduced to the set of needs they cover (a bit mask): there are few distinct masks however
    many people there are, so the search stays small. Beyond 6 needs a greedy pick gives an upper bound.
    """
    if any(not need.members & candidates for need in needs):
        return None
    full = (1 << len(needs)) - 1
    masks = {sum(1 << i for i, need in enumerate(needs) if person in need.members) for person in candidates} - {0}
    if len(needs) <= 6:
        for size in range(len(needs) + 1):
            for chosen in itertools.combinations(sorted(masks), size):
                if functools.reduce(operator.or_, chosen, 0) == full:
                    return size
    covered, picked = 0, 0
    while covered != full:
        covered |= max(masks, key=lambda mask: bin(mask & ~covered).count("1"))
        picked += 1
    return picked


# --- checking a request ----------------------------------------------------------------------


def check_request(policy: Policy, request: ChangeRequest, requester: Principal, *, drill: bool = False) -> Requirement:
    """The approvals ``request`` needs; raises if the policy forbids it (who, which record, which value).

    ``requester`` is who is asking now (Slack or key principal); it must be the same person as
    ``request.requester``, since the requirement excludes exactly that person from approving.
    """
    person = policy.person_for(requester)
    if person is None:
        raise ApprovalRefused(
            RefusalReason.NOT_ALLOWED_TO_REQUEST,
            "You are not in the breakglass policy, so you cannot request changes.",
            hint="Ask a policy owner to add you (with your Slack user id and SSH key).",
        )
    if policy.person_for(request.requester) != person:
        raise ApprovalRefused(
            RefusalReason.NOT_ALLOWED_TO_REQUEST,
            f"{request.id} was requested by {request.requester}, not by {requester}.",
        )
    if not request.edits:
        raise InvalidInput("Nothing to change.")
    rules: list[Rule] = []
    for edit in request.edits:
        rule = policy.match(request.zone, edit.name, edit.rtype)
        if rule is None:
            raise ApprovalRefused(
                RefusalReason.NO_MATCHING_RULE,
                f"No policy rule covers {edit.name} {edit.rtype.value} in zone {request.zone}, so it is denied.",
                hint="Ask a policy owner to add a rule; `breakglass policy check` lists what the rules cover.",
            )
        _check_requester(policy, rule, person)
        if request.kind is not RequestKind.ROLLBACK:  # a rollback restores what was served; bounds limit new values
            _check_values(rule, edit)
        if rule not in rules:
            rules.append(rule)
    for rule in rules:
        _check_reason(rule, request.reason)
    requirement = _combine(policy, request, person, rules, drill)
    _check_satisfiable(requirement)
    return requirement


def _check_requester(policy: Policy, rule: Rule, person: Person) -> None:
    if person not in policy.members(rule.requesters):
        raise ApprovalRefused(
            RefusalReason.NOT_ALLOWED_TO_REQUEST,
            f"Policy rule {rule.name} lets only members of {', '.join(rule.requesters)} request this change.",
            hint="Ask one of them to make the request.",
        )


def _check_values(rule: Rule, edit: RecordEdit) -> None:
    after = edit.after
    if after is None:
        return
    if not rule.ttl.allows(after.ttl):
        raise SafetyRefused(
            f"TTL {after.ttl} for {edit.name} {edit.rtype.value} is outside policy rule {rule.name}: "
            f"the TTL must be {rule.ttl.describe()}.",
            hint="Set ttl=<seconds> within those bounds.",
        )
    networks, hosts = rule.targets.networks, rule.targets.hosts
    for value in after.values:
        if edit.rtype in _ADDRESS_TYPES and networks is not None:
            address = _ip(value)
            if not any(address in network for network in networks):
                allowed = ", ".join(str(n) for n in networks) or "no addresses at all"
                raise SafetyRefused(
                    f"{value} is outside the networks policy rule {rule.name} allows for {edit.name}: {allowed}.",
                    hint="Point it at an address in those networks, or ask a policy owner to widen the rule.",
                )
        host = target_host(edit.rtype, value)
        if host is not None and hosts is not None and not any(p.matches(host) for p in hosts):
            allowed = ", ".join(str(p) for p in hosts) or "no host names at all"
            raise SafetyRefused(
                f"{edit.rtype.value} target {host} is outside the hosts policy rule {rule.name} allows: {allowed}.",
                hint="Point it at one of those hosts, or ask a policy owner to widen the rule.",
            )


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidInput(f"`{value}` is not an IP address.") from None


def _check_reason(rule: Rule, reason: str) -> None:
    if rule.require_reason and not reason.strip():
        raise InvalidInput(f"Policy rule {rule.name} requires a reason.", hint='Add reason="INC-123 what and why".')
    if rule.ticket is not None and rule.ticket.search(reason) is None:
        raise InvalidInput(
            f"Policy rule {rule.name} requires a ticket reference in the reason (matching `{rule.ticket.pattern}`).",
            hint='Put the ticket in the reason, e.g. reason="INC-123 fail over to standby".',
        )


def _combine(policy: Policy, request: ChangeRequest, person: Person, rules: list[Rule], drill: bool) -> Requirement:
    def count_of(rule: Rule) -> int:
        if request.kind is RequestKind.ROLLBACK:
            return rule.approvals.rollback_count
        return rule.approvals.drill_count if drill else rule.approvals.count

    eligible = frozenset(policy.people)
    for rule in rules:
        eligible &= policy.members(rule.approvals.approver_groups + rule.approvals.must_include)
    eligible -= {person}
    must: list[str] = []
    for rule in rules:
        must += [g for g in rule.approvals.must_include if g not in must]
    return Requirement(
        request_id=request.id,
        rules=tuple(r.name for r in rules),
        requester=person,
        count=max(count_of(r) for r in rules),
        eligible=tuple(sorted(eligible, key=lambda p: p.name)),
        must_include=tuple(GroupNeed(g, policy.members([g]) & eligible) for g in must),
        expires_after=min(r.expires_after for r in rules),
        emergency_allowed=all(r.emergency is not None and person in policy.members(r.emergency.groups) for r in rules),
        rollback_count=max(r.approvals.rollback_count for r in rules),
        sealed_count=max(r.approvals.sealed_count for r in rules),
        drill=drill,
        change_limit=None if request.kind is RequestKind.ROLLBACK else _change_limit(policy, rules),
    )


def _change_limit(policy: Policy, rules: list[Rule]) -> ChangeLimit:
    """The strictest matched rule's share of the zone; messages name the rule(s) it comes from."""
    fractions = {rule.name: policy.max_change_fraction(rule) for rule in rules}
    strictest = min(fractions.values())
    binding = tuple(name for name, fraction in fractions.items() if fraction == strictest)
    return ChangeLimit(strictest, policy.safety.min_zone_rrsets, binding)


def _check_satisfiable(requirement: Requirement) -> None:
    """Refuse at once a request nobody could ever approve, unless its requester may use the emergency clause."""
    if requirement.emergency_allowed:
        return
    cover = _smallest_cover(requirement.must_include, frozenset(requirement.eligible))
    if len(requirement.eligible) < requirement.count or cover is None:
        unmet = [n.group for n in requirement.must_include if not n.members]
        detail = f"; nobody eligible is in {', '.join(unmet)}" if unmet else ""
        raise ApprovalRefused(
            RefusalReason.CANNOT_BE_APPROVED,
            f"This change needs {requirement.count} approver(s) under policy rule {', '.join(requirement.rules)}, "
            f"but only {len(requirement.eligible)} people other than you are eligible{detail}.",
            hint="Split the request, ask someone else to request it, or ask a policy owner to fix the rule "
            "(`breakglass policy check` shows such problems).",
        )
