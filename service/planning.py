"""Turning requested edits into a reviewed plan, with the safety checks that come first."""

from __future__ import annotations

from collections.abc import Sequence

from core.credentials import Credentials
from core.errors import ConflictError, SafetyRefused
from core.models import Plan, RecordEdit, RRsetChange
from core.ports import ChangePath
from core.records import RecordType


def check_safety(zone: str, edits: Sequence[RecordEdit]) -> None:
    for edit in edits:
        if edit.name == zone and edit.rtype is RecordType.CNAME:
            raise SafetyRefused(
                f"A CNAME at the zone apex `{zone}` would break the zone.",
                hint="Change the A/AAAA records of the apex instead.",
            )
        if edit.name == zone and edit.rtype is RecordType.NS:
            raise SafetyRefused(
                f"The apex NS records of `{zone}` are not changed by breakglass: a mistake there takes the zone down.",
                hint="Change the delegation with your registrar and DNS provider's own process.",
            )
    names = [(e.name, e.rtype) for e in edits]
    if len(names) != len(set(names)):
        raise SafetyRefused("The same name and type appear twice in one request.", hint="List each rrset once.")


def _check_cname_exclusive(path: ChangePath, edit: RecordEdit, credentials: Credentials | None) -> None:
    """A CNAME owns its name alone (RFC 1034); servers silently ignore updates that break that."""
    if edit.after is None:
        return
    if edit.rtype is RecordType.CNAME:
        others = [t for t in path.supported_types if t is not RecordType.CNAME]
        clash = next((t for t in others if path.read(edit.name, t, credentials) is not None), None)
        if clash is not None:
            raise SafetyRefused(
                f"{edit.name} already has {clash} records, so it cannot also be a CNAME.",
                hint=f"Delete the {clash} records in the same request, or pick another name.",
            )
    elif RecordType.CNAME in path.supported_types and path.read(edit.name, RecordType.CNAME, credentials) is not None:
        raise SafetyRefused(
            f"{edit.name} is a CNAME, so it cannot also have {edit.rtype} records.",
            hint="Replace the CNAME itself, or delete it first.",
        )


def make_plan(
    request_id: str,
    zone: str,
    path: ChangePath,
    edits: Sequence[RecordEdit],
    credentials: Credentials | None = None,
    *,
    policy: str = "",
) -> Plan:
    """Read the current rrsets through ``path`` and diff them against ``edits``."""
    check_safety(zone, edits)
    deleting = {(e.name, e.rtype) for e in edits if e.after is None}
    changes = []
    for edit in edits:
        if edit.rtype not in path.supported_types:
            raise SafetyRefused(f"Change path {path.name} cannot change {edit.rtype} records.")
        if not any(name == edit.name for name, _ in deleting):
            _check_cname_exclusive(path, edit, credentials)
        before = path.read(edit.name, edit.rtype, credentials)
        if before == edit.after:
            state = "does not exist" if before is None else f"already serves {before.describe()}"
            raise SafetyRefused(f"Nothing to change: {edit.name} {edit.rtype} {state}.")
        changes.append(RRsetChange(edit.name, edit.rtype, before, edit.after))
    # Deletes first, as octoDNS does: frees names before anything new is put on them.
    changes.sort(key=lambda c: (c.after is not None, c.name, c.rtype))
    return Plan(request_id=request_id, zone=zone, path=path.name, changes=tuple(changes), policy=policy)


def already_applied(plan: Plan, path: ChangePath, credentials: Credentials | None = None) -> bool:
    """Every rrset already holds its new value: applying again must be a no-op (retries, failover)."""
    return all(path.read(c.name, c.rtype, credentials) == c.after for c in plan.changes)


def check_still_current(plan: Plan, path: ChangePath, credentials: Credentials | None = None) -> None:
    """Raise ConflictError if any rrset no longer holds what approvers saw."""
    for change in plan.changes:
        now = path.read(change.name, change.rtype, credentials)
        if now != change.before:
            seen = change.before.describe() if change.before else "no record"
            found = now.describe() if now else "no record"
            raise ConflictError(
                f"{change.name} {change.rtype} changed after the plan was made "
                f"(approved against {seen}, now {found}); nothing was applied.",
                hint="Request the change again so it is planned and approved against the current value.",
            )
