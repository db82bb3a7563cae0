"""Change requests, plans and approvals: the values that travel through breakglass."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from core.records import RecordType, RRset


class PrincipalSource(StrEnum):
    SLACK = "slack"  # user id taken from a Slack request whose signature was verified
    KEY = "key"  # a person's pinned SSH/Ed25519 key signed the statement
    SYSTEM = "system"  # breakglass itself


@dataclass(frozen=True)
class Principal:
    source: PrincipalSource
    id: str

    def __str__(self) -> str:
        return f"{self.source.value}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Principal:
        source, _, ident = text.partition(":")
        return cls(PrincipalSource(source), ident)


SYSTEM = Principal(PrincipalSource.SYSTEM, "breakglass")


class RequestKind(StrEnum):
    CHANGE = "change"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class RecordEdit:
    """What the requester wants one rrset to become; ``after`` None means delete it."""

    name: str
    rtype: RecordType
    after: RRset | None


@dataclass(frozen=True)
class ChangeRequest:
    id: str
    kind: RequestKind
    zone: str
    edits: tuple[RecordEdit, ...]
    reason: str
    requester: Principal
    created_at: datetime
    rollback_of: str | None = None


class Operation(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class RRsetChange:
    """One rrset as the change path served it at plan time, and what it will become."""

    name: str
    rtype: RecordType
    before: RRset | None
    after: RRset | None

    @property
    def operation(self) -> Operation:
        if self.before is None:
            return Operation.CREATE
        return Operation.DELETE if self.after is None else Operation.UPDATE


@dataclass(frozen=True)
class Plan:
    """The exact change approvers review; its digest binds approvals to it."""

    request_id: str
    zone: str
    path: str
    changes: tuple[RRsetChange, ...]
    policy: str = ""  # sha256 of the signed approval policy the plan was approved under

    def digest(self) -> str:
        canonical = json.dumps(plan_to_dict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def inverse(self) -> tuple[RecordEdit, ...]:
        """The edits that restore every rrset to what it was at plan time."""
        return tuple(RecordEdit(c.name, c.rtype, c.before) for c in self.changes)


@dataclass(frozen=True)
class Approval:
    request_id: str
    approver: Principal
    plan_digest: str
    at: datetime


# --- canonical (de)serialisation, used for digests and for storage -----------------

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


def rrset_to_dict(rrset: RRset | None) -> JsonValue:
    if rrset is None:
        return None
    return {"name": rrset.name, "type": rrset.rtype.value, "ttl": rrset.ttl, "values": list(rrset.values)}


def rrset_from_dict(data: JsonValue) -> RRset | None:
    if data is None:
        return None
    assert isinstance(data, dict)
    values = data["values"]
    assert isinstance(values, list)
    return RRset(str(data["name"]), RecordType(str(data["type"])), int(str(data["ttl"])), tuple(str(v) for v in values))


def plan_to_dict(plan: Plan) -> dict[str, JsonValue]:
    return {
        "request_id": plan.request_id,
        "zone": plan.zone,
        "path": plan.path,
        "policy": plan.policy,
        "changes": [
            {"name": c.name, "type": c.rtype.value, "before": rrset_to_dict(c.before), "after": rrset_to_dict(c.after)}
            for c in plan.changes
        ],
    }


def plan_from_dict(data: dict[str, JsonValue]) -> Plan:
    changes = data["changes"]
    assert isinstance(changes, list)
    return Plan(
        request_id=str(data["request_id"]),
        zone=str(data["zone"]),
        path=str(data["path"]),
        changes=tuple(
            RRsetChange(
                str(c["name"]), RecordType(str(c["type"])), rrset_from_dict(c["before"]), rrset_from_dict(c["after"])
            )
            for c in changes
            if isinstance(c, dict)
        ),
        policy=str(data.get("policy", "")),
    )


def request_to_dict(request: ChangeRequest) -> dict[str, JsonValue]:
    return {
        "id": request.id,
        "kind": request.kind.value,
        "zone": request.zone,
        "edits": [{"name": e.name, "type": e.rtype.value, "after": rrset_to_dict(e.after)} for e in request.edits],
        "reason": request.reason,
        "requester": str(request.requester),
        "created_at": request.created_at.isoformat(),
        "rollback_of": request.rollback_of,
    }


def request_from_dict(data: dict[str, JsonValue]) -> ChangeRequest:
    edits = data["edits"]
    assert isinstance(edits, list)
    return ChangeRequest(
        id=str(data["id"]),
        kind=RequestKind(str(data["kind"])),
        zone=str(data["zone"]),
        edits=tuple(
            RecordEdit(str(e["name"]), RecordType(str(e["type"])), rrset_from_dict(e["after"]))
            for e in edits
            if isinstance(e, dict)
        ),
        reason=str(data["reason"]),
        requester=Principal.parse(str(data["requester"])),
        created_at=datetime.fromisoformat(str(data["created_at"])),
        rollback_of=None if data["rollback_of"] is None else str(data["rollback_of"]),
    )
