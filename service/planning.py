"""Turning requested edits into a reviewed plan, with the safety checks that come first."""

from __future__ import annotations

from collections.abc import Sequence

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
    names = [(e.name, e.rtype) for e in edits]
    if len(names) != len(set(names)):
        raise SafetyRefused("The same name and type appear twice in one request.", hint="List each rrset once.")


def make_plan(request_id: str, zone: str, path: ChangePath, edits: Sequence[RecordEdit]) -> Plan:
    """Read the current rrsets through ``path`` and diff them against ``edits``."""
    check_safety(zone, edits)
    changes = []
    for edit in edits:
        before = path.read(edit.name, edit.rtype)
        if before == edit.after:
            state = "does not exist" if before is None else f"already serves {before.describe()}"
            raise SafetyRefused(f"Nothing to change: {edit.name} {edit.rtype} {state}.")
        changes.append(RRsetChange(edit.name, edit.rtype, before, edit.after))
    # Deletes first, as octoDNS does: frees names before anything new is put on them.
    changes.sort(key=lambda c: (c.after is not None, c.name, c.rtype))
    return Plan(request_id=request_id, zone=zone, path=path.name, changes=tuple(changes))


def check_still_current(plan: Plan, path: ChangePath) -> None:
    """Raise ConflictError if any rrset no longer holds what approvers saw."""
    for change in plan.changes:
        now = path.read(change.name, change.rtype)
        if now != change.before:
            seen = change.before.describe() if change.before else "no record"
            found = now.describe() if now else "no record"
            raise ConflictError(
                f"{change.name} {change.rtype} changed after the plan was made "
                f"(approved against {seen}, now {found}); nothing was applied.",
                hint="Request the change again so it is planned and approved against the current value.",
            )
