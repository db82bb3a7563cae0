"""Turning requested edits into a reviewed plan, with the safety checks that come first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Protocol, runtime_checkable

from core.credentials import Credentials
from core.errors import ConflictError, SafetyRefused
from core.limits import ChangeLimit, percent
from core.models import Plan, RecordEdit, RRsetChange
from core.ports import ChangePath
from core.records import RecordType, RRset

BATCH_READ_FROM = 10  # rrsets; below this, one read per rrset is as cheap as one read of the zone
RRsetKey = tuple[str, RecordType]
Reader = Callable[[str, RecordType], "RRset | None"]


@runtime_checkable
class BatchReader(Protocol):
    """A change path that can read many rrsets in one go (one zone listing, one AXFR).

    ``read_many`` returns the same values ``read`` would for the keys it answers; a key it leaves
    out (e.g. a name it cannot answer from the listing) is read on its own.
    """

    def read_many(
        self, keys: Sequence[RRsetKey], credentials: Credentials | None = None
    ) -> dict[RRsetKey, RRset | None]: ...


@runtime_checkable
class ZoneCounter(Protocol):
    """A change path that can count the rrsets of its zone (one zone listing, one AXFR), for the change limit."""

    def count_rrsets(self, up_to: int, credentials: Credentials | None = None) -> int | None:
        """The zone's rrsets without its SOA and DNSSEC data (core/limits.py), counted no further than ``up_to``.

        None when this path cannot list the zone (e.g. the primary refuses breakglass a zone transfer).
        """


def reader(path: ChangePath, keys: Sequence[RRsetKey], credentials: Credentials | None = None) -> Reader:
    """``path.read``, answered from one batch read when many rrsets are wanted and the path can do that.

    A 1,000-record failover would otherwise cost thousands of API calls or DNS queries.
    """
    wanted = list(dict.fromkeys(keys))
    if len(wanted) < BATCH_READ_FROM or not isinstance(path, BatchReader):
        return lambda name, rtype: path.read(name, rtype, credentials)
    found = path.read_many(wanted, credentials)

    def read(name: str, rtype: RecordType) -> RRset | None:
        if (name, rtype) in found:
            return found[(name, rtype)]
        return path.read(name, rtype, credentials)

    return read


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


def _cname_keys(path: ChangePath, edit: RecordEdit) -> list[RRsetKey]:
    """The rrsets ``_check_cname_exclusive`` reads for ``edit``."""
    if edit.after is None:
        return []
    if edit.rtype is RecordType.CNAME:
        return [(edit.name, t) for t in path.supported_types if t is not RecordType.CNAME]
    return [(edit.name, RecordType.CNAME)] if RecordType.CNAME in path.supported_types else []


def _check_cname_exclusive(path: ChangePath, edit: RecordEdit, read: Reader) -> None:
    """A CNAME owns its name alone (RFC 1034); servers silently ignore updates that break that."""
    if edit.after is None:
        return
    if edit.rtype is RecordType.CNAME:
        others = [t for t in path.supported_types if t is not RecordType.CNAME]
        clash = next((t for t in others if read(edit.name, t) is not None), None)
        if clash is not None:
            raise SafetyRefused(
                f"{edit.name} already has {clash} records, so it cannot also be a CNAME.",
                hint=f"Delete the {clash} records in the same request, or pick another name.",
            )
    elif RecordType.CNAME in path.supported_types and read(edit.name, RecordType.CNAME) is not None:
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
    limit: ChangeLimit | None = None,
) -> Plan:
    """Read the current rrsets through ``path`` and diff them against ``edits``.

    ``limit``: the policy's "too much change" limit for this request; None checks none (previews, rollbacks).
    """
    check_safety(zone, edits)
    deleting = {(e.name, e.rtype) for e in edits if e.after is None}
    deleting_names = {name for name, _ in deleting}
    keys: list[RRsetKey] = []
    for edit in edits:  # what the loop below reads, up to the first edit it refuses
        if edit.rtype not in path.supported_types:
            break
        keys += [] if edit.name in deleting_names else _cname_keys(path, edit)
        keys.append((edit.name, edit.rtype))
    read = reader(path, keys, credentials)
    changes = []
    for edit in edits:
        if edit.rtype not in path.supported_types:
            raise SafetyRefused(f"Change path {path.name} cannot change {edit.rtype} records.")
        if edit.name not in deleting_names:
            _check_cname_exclusive(path, edit, read)
        before = read(edit.name, edit.rtype)
        if before == edit.after:
            state = "does not exist" if before is None else f"already serves {before.describe()}"
            raise SafetyRefused(f"Nothing to change: {edit.name} {edit.rtype} {state}.")
        changes.append(RRsetChange(edit.name, edit.rtype, before, edit.after))
    if limit is not None:
        check_change_limit(zone, path, changes, limit, credentials)
    # Deletes first, as octoDNS does: frees names before anything new is put on them.
    changes.sort(key=lambda c: (c.after is not None, c.name, c.rtype))
    return Plan(request_id=request_id, zone=zone, path=path.name, changes=tuple(changes), policy=policy)


def check_change_limit(
    zone: str, path: ChangePath, changes: Sequence[RRsetChange], limit: ChangeLimit, credentials: Credentials | None
) -> None:
    """Refuse a plan that updates or deletes too large a share of the zone's rrsets in one go.

    The zone is counted through ``path`` only when its size matters: a plan touching at most
    ``limit.always_allowed()`` existing rrsets passes in any zone. A path that cannot count the zone
    fails closed.
    """
    changed = sum(1 for c in changes if c.before is not None)
    if not limit.needs_zone_size(changed):
        return
    rules = f"polic{'ies' if len(limit.rules) > 1 else 'y'} rule {', '.join(limit.rules)}"
    bulk = "ask a policy owner for a rule that allows bulk changes of these records (`max_change_fraction`)"
    counted = path.count_rrsets(limit.enough(changed), credentials) if isinstance(path, ZoneCounter) else None
    if counted is None:
        raise SafetyRefused(
            f"This request would update or delete {changed} existing rrsets of zone {zone}, but change path "
            f"{path.name} cannot list the zone, so it cannot be checked against the limit of {rules} "
            f"(at most {percent(limit.max_fraction)} of a zone's rrsets in one request).",
            hint=f"Split it into requests of at most {limit.always_allowed()} updated or deleted rrsets, "
            f"let breakglass list the zone (for RFC2136: allow it zone transfers), or {bulk}.",
        )
    zone_rrsets = max(counted, changed)  # the listing cannot hold fewer than the rrsets being replaced
    if limit.allows(changed, zone_rrsets):
        return
    most = limit.most(zone_rrsets)
    split = f"Split it into requests of at most {most} updated or deleted rrsets (new records do not count), or"
    raise SafetyRefused(
        f"Too much change at once: this request would update or delete {changed} of the {zone_rrsets} rrsets "
        f"in zone {zone} ({percent(Fraction(changed, zone_rrsets))}); {rules} allows at most "
        f"{percent(limit.max_fraction)} ({most} of {zone_rrsets}) in one request.",
        hint=f"{split} for a pre-agreed bulk failover, {bulk}." if most else f"For a pre-agreed bulk failover, {bulk}.",
    )


def already_applied(plan: Plan, path: ChangePath, credentials: Credentials | None = None) -> bool:
    """Every rrset already holds its new value: applying again must be a no-op (retries, failover)."""
    if not plan.changes:
        return True
    first, rest = plan.changes[0], plan.changes[1:]
    if path.read(first.name, first.rtype, credentials) != first.after:
        return False  # the usual case (nothing applied yet), decided by one read
    read = reader(path, [(c.name, c.rtype) for c in rest], credentials)
    return all(read(c.name, c.rtype) == c.after for c in rest)


def check_still_current(plan: Plan, path: ChangePath, credentials: Credentials | None = None) -> None:
    """Raise ConflictError if any rrset no longer holds what approvers saw."""
    read = reader(path, [(c.name, c.rtype) for c in plan.changes], credentials)
    for change in plan.changes:
        now = read(change.name, change.rtype)
        if now != change.before:
            seen = change.before.describe() if change.before else "no record"
            found = now.describe() if now else "no record"
            raise ConflictError(
                f"{change.name} {change.rtype} changed after the plan was made "
                f"(approved against {seen}, now {found}); nothing was applied.",
                hint="Request the change again so it is planned and approved against the current value.",
            )
