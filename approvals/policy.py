"""The approval policy: who may change which records, and who must approve. Loaded from a signed YAML file.

The YAML is checked in two passes: a strict pydantic schema (types, unknown keys), then cross references
(groups name known people, rules name known groups). Every problem is reported with its path in the file
(``rules[1] (web-failover).approvals.count``) so the person editing it knows what to fix.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import yaml
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import InvalidInput
from core.limits import DEFAULT_MAX_CHANGE_FRACTION, DEFAULT_MIN_ZONE_RRSETS
from core.models import Principal, PrincipalSource
from core.records import RecordType, normalize_name

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_EXPIRY = "30m"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_MAX_PROBLEMS_SHOWN = 10


class PolicyError(InvalidInput):
    """The policy file cannot be used; ``problems`` lists each one as ``path: what to fix``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        shown = problems[:_MAX_PROBLEMS_SHOWN]
        more = len(problems) - len(shown)
        text = "; ".join(shown) + (f"; and {more} more" if more else "")
        super().__init__(
            f"Policy {source} is invalid: {text}.",
            hint="Fix the file, run `breakglass policy check` and sign it again (see docs/policy.md).",
        )
        self.source = source
        self.problems = tuple(problems)


# --- keys ------------------------------------------------------------------------------


def ssh_fingerprint(wire_blob: bytes) -> str:
    """The ``SHA256:...`` fingerprint ``ssh-keygen -l`` prints for a key's wire-format blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(wire_blob).digest()).decode().rstrip("=")


def fingerprint_of(key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    """Fingerprint of a loaded public key, the same value ``ssh-keygen -lf key.pub`` shows."""
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return ssh_fingerprint(base64.b64decode(line.split()[1]))


SshPublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
_ECDSA_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


@dataclass(frozen=True)
class PublicKey:
    """One pinned SSH public key: ``ssh-ed25519`` (tested), ``ecdsa-sha2-*`` or ``ssh-rsa``."""

    algorithm: str
    blob: str  # base64 wire format, as in the .pub file
    comment: str
    fingerprint: str

    @classmethod
    def parse(cls, line: str) -> PublicKey:
        """Parse an OpenSSH ``.pub`` line; raises ValueError saying what is wrong."""
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise ValueError("not an OpenSSH public key line (expected `ssh-ed25519 AAAA... comment`)")
        algorithm, blob = parts[0], parts[1]
        try:
            loaded = serialization.load_ssh_public_key(f"{algorithm} {blob}".encode())
        except (ValueError, UnsupportedAlgorithm):
            raise ValueError(f"`{algorithm} {blob[:12]}...` is not a valid SSH public key") from None
        if not isinstance(loaded, SshPublicKey):
            raise ValueError(f"{algorithm} keys are not supported; use ssh-ed25519 (or ecdsa/rsa)")
        return cls(algorithm, blob, parts[2].strip() if len(parts) > 2 else "", fingerprint_of(loaded))

    def load(self) -> SshPublicKey:
        loaded = serialization.load_ssh_public_key(f"{self.algorithm} {self.blob}".encode())
        assert isinstance(loaded, SshPublicKey)
        return loaded

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` over ``data`` was made by this key (see statements.sign_with)."""
        key = self.load()
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, data)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, data, ec.ECDSA(_ECDSA_HASHES[key.curve.name]()))
            else:
                key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            return False
        return True

    def openssh(self) -> str:
        return f"{self.algorithm} {self.blob}"


# --- name patterns ------------------------------------------------------------------------


@dataclass(frozen=True)
class NamePattern:
    """``*`` (anything), ``*.example.com`` (any name strictly below, at any depth) or one exact name."""

    text: str
    suffix: str  # absolute name; "" for `*`
    wildcard: bool

    @classmethod
    def parse(cls, text: str, *, apex: str | None = None) -> NamePattern:
        """``apex`` (the rule's zone) enables ``@``; raises ValueError saying what is wrong."""
        stripped = text.strip()
        if stripped == "*":
            return cls(stripped, "", True)
        if stripped == "@":
            if apex is None:
                raise ValueError("`@` (the zone apex) is only meaningful in a rule's `names`")
            return cls(stripped, apex, False)
        wildcard = stripped.startswith("*.")
        body = stripped[2:] if wildcard else stripped
        if "*" in body:
            raise ValueError(f"`{text}`: only a leading `*.` wildcard is supported, e.g. `*.example.com`")
        try:
            return cls(stripped, normalize_name(body), wildcard)
        except InvalidInput:
            raise ValueError(
                f"`{text}` is not a valid name or pattern (e.g. `www.example.com`, `*.example.com`)"
            ) from None

    def matches(self, name: str) -> bool:
        if not self.wildcard:
            return name == self.suffix
        return self.suffix == "" or name.endswith("." + self.suffix)

    def covers(self, other: NamePattern) -> bool:
        """True when every name ``other`` matches is also matched by this pattern."""
        if self.wildcard and self.suffix == "":
            return True
        if other.wildcard and other.suffix == "":
            return False
        if not self.wildcard:
            return not other.wildcard and other.suffix == self.suffix
        return other.suffix.endswith("." + self.suffix) or (other.wildcard and other.suffix == self.suffix)

    def __str__(self) -> str:
        return self.text


# --- the model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    name: str
    slack_id: str
    keys: tuple[PublicKey, ...]

    def is_principal(self, principal: Principal) -> bool:
        """Slack principals carry the Slack user id; key principals carry the person's name."""
        if principal.source is PrincipalSource.SLACK:
            return principal.id == self.slack_id
        return principal.source is PrincipalSource.KEY and principal.id == self.name

    def key_principal(self) -> Principal:
        return Principal(PrincipalSource.KEY, self.name)


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[str, ...]  # person names


@dataclass(frozen=True)
class ApprovalSpec:
    count: int
    approver_groups: tuple[str, ...]
    must_include: tuple[str, ...]  # at least one approver from each; these groups are eligible too
    rollback_count: int
    drill_count: int
    sealed_count: int  # approvals needed before a sealed-envelope credential may be opened


@dataclass(frozen=True)
class Targets:
    """Where new values may point; ``None`` means the rule does not restrict that kind."""

    networks: tuple[IpNetwork, ...] | None
    hosts: tuple[NamePattern, ...] | None


@dataclass(frozen=True)
class TtlBounds:
    min: int | None
    max: int | None

    def allows(self, ttl: int) -> bool:
        return (self.min is None or ttl >= self.min) and (self.max is None or ttl <= self.max)

    def describe(self) -> str:
        if self.min is not None and self.max is not None:
            return f"between {self.min} and {self.max} seconds"
        if self.min is not None:
            return f"at least {self.min} seconds"
        return f"at most {self.max} seconds" if self.max is not None else "any"


@dataclass(frozen=True)
class Emergency:
    """Self-approval when nobody else can be reached: needs a reason, notifies every approver, forces a review."""

    groups: tuple[str, ...]  # who may invoke it (defaults to the rule's requesters)


@dataclass(frozen=True)
class Rule:
    name: str
    zone: str
    names: tuple[NamePattern, ...]
    types: frozenset[RecordType]
    requesters: tuple[str, ...]  # groups
    approvals: ApprovalSpec
    targets: Targets
    ttl: TtlBounds
    expires_after: int  # seconds a request may wait for approval
    require_reason: bool
    ticket: re.Pattern[str] | None  # searched in the reason
    emergency: Emergency | None
    max_change_fraction: Fraction | None  # None: the policy's `safety` default

    def matches(self, zone: str, name: str, rtype: RecordType) -> bool:
        return zone == self.zone and rtype in self.types and any(p.matches(name) for p in self.names)


@dataclass(frozen=True)
class Safety:
    """The policy-wide "too much change" limit (core/limits.py); a rule may set its own fraction."""

    max_change_fraction: Fraction
    min_zone_rrsets: int


@dataclass(frozen=True)
class Policy:
    source: str
    sha256: str  # of the exact file bytes; goes in the audit log
    people: tuple[Person, ...]
    groups: tuple[Group, ...]
    rules: tuple[Rule, ...]
    safety: Safety

    def max_change_fraction(self, rule: Rule) -> Fraction:
        """The share of a zone's rrsets one request under ``rule`` may update or delete."""
        return self.safety.max_change_fraction if rule.max_change_fraction is None else rule.max_change_fraction

    def person_by_slack(self, user_id: str) -> Person | None:
        return next((p for p in self.people if p.slack_id == user_id), None)

    def person_by_name(self, name: str) -> Person | None:
        return next((p for p in self.people if p.name == name), None)

    def person_by_fingerprint(self, fingerprint: str) -> Person | None:
        return next((p for p in self.people if any(k.fingerprint == fingerprint for k in p.keys)), None)

    def person_by_key(self, public_key: str) -> Person | None:
        """The person holding the OpenSSH public key ``public_key`` (the comment is ignored)."""
        try:
            fingerprint = PublicKey.parse(public_key).fingerprint
        except ValueError:
            return None
        return self.person_by_fingerprint(fingerprint)

    def person_for(self, principal: Principal) -> Person | None:
        """The person behind a Slack or key principal; None for strangers and the system."""
        return next((p for p in self.people if p.is_principal(principal)), None)

    def group(self, name: str) -> Group:
        return next(g for g in self.groups if g.name == name)

    def members(self, groups: tuple[str, ...] | list[str]) -> frozenset[Person]:
        """Everyone in any of ``groups``."""
        names = {m for g in self.groups if g.name in groups for m in g.members}
        return frozenset(p for p in self.people if p.name in names)

    def groups_of(self, person: Person) -> tuple[str, ...]:
        return tuple(g.name for g in self.groups if person.name in g.members)

    def match(self, zone: str, name: str, rtype: RecordType) -> Rule | None:
        """The first rule covering the record, in file order; None means the change is denied."""
        zone, name = _absolute(zone), _absolute(name)
        return next((r for r in self.rules if r.matches(zone, name, rtype)), None)


def _absolute(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


# --- the YAML schema --------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RawPerson(_Strict):
    name: str = Field(min_length=1)
    slack: str = Field(min_length=1)
    keys: list[str] = []


class _RawApprovals(_Strict):
    count: int = Field(ge=1, le=50)
    approvers: list[str] = Field(min_length=1)
    must_include: list[str] = []
    rollback_count: int | None = Field(default=None, ge=1, le=50)
    drill_count: int | None = Field(default=None, ge=1, le=50)
    sealed_count: int | None = Field(default=None, ge=1, le=50)


class _RawTargets(_Strict):
    networks: list[str] | None = None
    hosts: list[str] | None = None


class _RawTtl(_Strict):
    min: int | None = Field(default=None, ge=1, le=2_147_483_647)
    max: int | None = Field(default=None, ge=1, le=2_147_483_647)


class _RawEmergency(_Strict):
    allowed: bool
    groups: list[str] | None = None


def _fraction_field(default: float | None) -> Any:
    return Field(default=default, gt=0, le=1, allow_inf_nan=False)


class _RawSafety(_Strict):
    max_change_fraction: float = _fraction_field(float(DEFAULT_MAX_CHANGE_FRACTION))
    min_zone_rrsets: int = Field(default=DEFAULT_MIN_ZONE_RRSETS, ge=1, le=10_000_000)


class _RawRule(_Strict):
    name: str = Field(min_length=1)
    zone: str
    names: list[str] = Field(default=["*"], min_length=1)
    types: list[str] | None = None
    requesters: list[str] = Field(min_length=1)
    approvals: _RawApprovals
    targets: _RawTargets = _RawTargets()
    ttl: _RawTtl = _RawTtl()
    expires_after: str = DEFAULT_EXPIRY
    require_reason: bool = True
    ticket: str | None = None
    emergency: _RawEmergency | None = None
    max_change_fraction: float | None = _fraction_field(None)


class _RawPolicy(_Strict):
    version: Literal[1]
    people: list[_RawPerson] = Field(min_length=1)
    groups: dict[str, list[str]]
    rules: list[_RawRule] = Field(min_length=1)
    safety: _RawSafety = _RawSafety()


class _NoDuplicatesLoader(yaml.SafeLoader):
    """A YAML loader that refuses repeated keys: two `rules:` blocks must not silently become one."""


def _construct_mapping(loader: _NoDuplicatesLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key `{key}`", key_node.start_mark)
    return loader.construct_mapping(node, deep)


_NoDuplicatesLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# --- loading ---------------------------------------------------------------------------------


def load_policy(text: str | bytes, *, source: str) -> Policy:
    """Parse and check a policy file; raises PolicyError listing every problem with its path."""
    try:
        raw_bytes = text.encode() if isinstance(text, str) else text
    except UnicodeEncodeError:  # a str holding lone surrogates cannot be a file's text
        raise PolicyError(source, ["the policy is not valid Unicode text"]) from None
    try:
        document = yaml.load(raw_bytes.decode("utf-8"), Loader=_NoDuplicatesLoader)  # noqa: S506 (safe loader)  # nosec B506
    except UnicodeDecodeError:
        raise PolicyError(source, ["the file is not UTF-8 text"]) from None
    except yaml.YAMLError as error:
        raise PolicyError(source, [f"not valid YAML: {_yaml_problem(error)}"]) from None
    except RecursionError:
        raise PolicyError(source, ["the YAML is nested too deeply"]) from None
    if not isinstance(document, dict):
        raise PolicyError(source, ["the top level must be a mapping with `version`, `people`, `groups` and `rules`"])
    try:
        raw = _RawPolicy.model_validate(document)
    except ValidationError as error:
        raise PolicyError(source, [_schema_problem(e, document) for e in error.errors()]) from None
    except (RecursionError, ValueError):  # e.g. a self-referencing YAML alias
        raise PolicyError(source, ["the YAML structure is cyclic or nested too deeply"]) from None
    problems: list[str] = []
    policy = _build(raw, source, hashlib.sha256(raw_bytes).hexdigest(), problems)
    if problems:
        raise PolicyError(source, problems)
    return policy


def parse_duration(text: str) -> int:
    """``30m``, ``1h30m``, ``90s``, ``2d`` -> seconds; raises ValueError."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise ValueError(f"`{text}` is not a duration; write e.g. `30m`, `1h30m`, `90s`")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError("a duration must be longer than zero")
    return total


def format_duration(seconds: int) -> str:
    """The inverse of parse_duration, for messages: 5400 -> ``1h30m``."""
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else str(problem)


def _schema_problem(error: Any, document: dict[Any, Any]) -> str:
    path = _path(tuple(error["loc"]), document)
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key (check the spelling; see docs/policy.md for the keys)"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "literal_error" and path == "version":
        return "version: must be 1"
    context = error.get("ctx") or {}
    plain = {
        "model_type": "must be a mapping of `key: value` lines",
        "dict_type": "must be a mapping of `key: value` lines",
        "list_type": "must be a list",
        "string_type": "must be text",
        "int_type": "must be a whole number (without quotes)",
        "bool_type": "must be true or false",
        "float_type": "must be a number such as 0.3 (without quotes)",
        "finite_number": "must be a finite number such as 0.3",
        "greater_than": f"must be more than {context.get('gt')}",
        "too_short": f"must list at least {context.get('min_length')}",
        "string_too_short": "must not be empty",
        "greater_than_equal": f"must be at least {context.get('ge')}",
        "less_than_equal": f"must be at most {context.get('le')}",
    }
    return f"{path}: {plain.get(kind, error['msg'])}"


def _path(loc: tuple[int | str, ...], document: dict[Any, Any]) -> str:
    """``rules[1] (web-failover).approvals.count``: list items are named when they have a `name`."""
    text = ""
    node: Any = document
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                text += f" ({node['name']})"
        else:
            text += f".{part}" if text else part
            node = node.get(part) if isinstance(node, dict) else None
    return text or "(top level)"


def _build(raw: _RawPolicy, source: str, sha256: str, problems: list[str]) -> Policy:
    people = tuple(_build_people(raw.people, problems))
    known_people = {p.name for p in people}
    groups: list[Group] = []
    for name, members in raw.groups.items():
        for index, member in enumerate(members):
            if member not in known_people:
                problems.append(f"groups.{name}[{index}]: `{member}` is not in `people`")
        if len(set(members)) != len(members):
            problems.append(f"groups.{name}: lists a person twice")
        groups.append(Group(name, tuple(members)))
    known_groups = {g.name for g in groups}
    rules: list[Rule] = []
    for index, raw_rule in enumerate(raw.rules):
        where = f"rules[{index}] ({raw_rule.name})"
        if any(r.name == raw_rule.name for r in rules):
            problems.append(f"{where}.name: another rule is already called `{raw_rule.name}`")
        rule = _build_rule(raw_rule, where, known_groups, problems)
        if rule is not None:
            rules.append(rule)
    safety = Safety(_fraction(raw.safety.max_change_fraction), raw.safety.min_zone_rrsets)
    return Policy(source, sha256, people, tuple(groups), tuple(rules), safety)


def _fraction(value: float) -> Fraction:
    """The fraction as written (``0.3`` is 3/10, not the nearest binary float), so limits compare exactly."""
    return Fraction(str(value))


def _build_people(raw_people: list[_RawPerson], problems: list[str]) -> Iterator[Person]:
    names: set[str] = set()
    slack_ids: set[str] = set()
    fingerprints: dict[str, str] = {}
    for index, raw in enumerate(raw_people):
        where = f"people[{index}] ({raw.name})"
        if raw.name in names:
            problems.append(f"{where}.name: another person is already called `{raw.name}`")
        if raw.slack in slack_ids:
            problems.append(f"{where}.slack: Slack user {raw.slack} is already listed for someone else")
        names.add(raw.name)
        slack_ids.add(raw.slack)
        keys: list[PublicKey] = []
        for key_index, line in enumerate(raw.keys):
            try:
                key = PublicKey.parse(line)
            except ValueError as error:
                problems.append(f"{where}.keys[{key_index}]: {error}")
                continue
            owner = fingerprints.setdefault(key.fingerprint, raw.name)
            if owner != raw.name or key in keys:
                problems.append(
                    f"{where}.keys[{key_index}]: key {key.fingerprint} is already listed for {owner}; "
                    "every key must identify exactly one person"
                )
            keys.append(key)
        yield Person(raw.name, raw.slack, tuple(keys))


def _build_rule(raw: _RawRule, where: str, known_groups: set[str], problems: list[str]) -> Rule | None:
    count_before = len(problems)

    def check_groups(field: str, names: list[str]) -> tuple[str, ...]:
        for i, group in enumerate(names):
            if group not in known_groups:
                known = ", ".join(sorted(known_groups)) or "none"
                problems.append(f"{where}.{field}[{i}]: unknown group `{group}` (known groups: {known})")
        return tuple(names)

    try:
        zone = normalize_name(raw.zone)
    except InvalidInput:
        problems.append(f"{where}.zone: `{raw.zone}` is not a valid zone name")
        zone = ""
    names: list[NamePattern] = []
    for i, text in enumerate(raw.names):
        try:
            pattern = NamePattern.parse(text, apex=zone)
        except ValueError as error:
            problems.append(f"{where}.names[{i}]: {error}")
            continue
        if zone and pattern.suffix and pattern.suffix != zone and not pattern.suffix.endswith("." + zone):
            problems.append(f"{where}.names[{i}]: `{text}` is not inside zone {zone} (write `@` for the apex)")
        names.append(pattern)
    types: set[RecordType] = set(RecordType)
    if raw.types is not None:
        types = set()
        for i, text in enumerate(raw.types):
            try:
                types.add(RecordType.parse(text))
            except InvalidInput as error:
                problems.append(f"{where}.types[{i}]: {error.user_text()}")
    approvals = raw.approvals
    spec = ApprovalSpec(
        count=approvals.count,
        approver_groups=check_groups("approvals.approvers", approvals.approvers),
        must_include=check_groups("approvals.must_include", approvals.must_include),
        rollback_count=approvals.rollback_count or approvals.count,
        drill_count=approvals.drill_count or approvals.count,
        sealed_count=approvals.sealed_count or approvals.count + 1,
    )
    requesters = check_groups("requesters", raw.requesters)
    targets = _build_targets(raw.targets, where, problems)
    if raw.ttl.min is not None and raw.ttl.max is not None and raw.ttl.min > raw.ttl.max:
        problems.append(f"{where}.ttl: min ({raw.ttl.min}) is larger than max ({raw.ttl.max})")
    try:
        expires_after = parse_duration(raw.expires_after)
    except ValueError as error:
        problems.append(f"{where}.expires_after: {error}")
        expires_after = 0
    ticket: re.Pattern[str] | None = None
    if raw.ticket is not None:
        try:
            ticket = re.compile(raw.ticket)
        except (re.error, RecursionError, OverflowError) as error:
            problems.append(f"{where}.ticket: `{raw.ticket}` is not a valid regular expression ({error})")
    emergency: Emergency | None = None
    if raw.emergency is not None and raw.emergency.allowed:
        emergency_groups = raw.emergency.groups if raw.emergency.groups is not None else raw.requesters
        emergency = Emergency(check_groups("emergency.groups", emergency_groups))
    if len(problems) > count_before:
        return None
    return Rule(
        name=raw.name,
        zone=zone,
        names=tuple(names),
        types=frozenset(types),
        requesters=requesters,
        approvals=spec,
        targets=targets,
        ttl=TtlBounds(raw.ttl.min, raw.ttl.max),
        expires_after=expires_after,
        require_reason=raw.require_reason,
        ticket=ticket,
        emergency=emergency,
        max_change_fraction=None if raw.max_change_fraction is None else _fraction(raw.max_change_fraction),
    )


def _build_targets(raw: _RawTargets, where: str, problems: list[str]) -> Targets:
    networks: list[IpNetwork] | None = None
    if raw.networks is not None:
        networks = []
        for i, text in enumerate(raw.networks):
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=True))
            except ValueError as error:
                problems.append(f"{where}.targets.networks[{i}]: {error} (write a network such as 203.0.113.0/24)")
    hosts: list[NamePattern] | None = None
    if raw.hosts is not None:
        hosts = []
        for i, text in enumerate(raw.hosts):
            try:
                hosts.append(NamePattern.parse(text))
            except ValueError as error:
                problems.append(f"{where}.targets.hosts[{i}]: {error}")
    return Targets(
        tuple(networks) if networks is not None else None,
        tuple(hosts) if hosts is not None else None,
    )
