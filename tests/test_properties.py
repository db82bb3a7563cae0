"""Hypothesis properties of the pure parts: the /dns parser, plan diffs and canonical digests.

(The policy loader's properties, "only PolicyError, whatever the input", live in tests/test_policy.py.)
"""

from __future__ import annotations

import json
import random
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from bot.commands import ChangeCommand, parse
from core.credentials import Credentials
from core.errors import InvalidInput, SafetyRefused
from core.models import (
    ChangeRequest,
    Plan,
    Principal,
    PrincipalSource,
    RecordEdit,
    RequestKind,
    RRsetChange,
    plan_from_dict,
    plan_to_dict,
    request_from_dict,
    request_to_dict,
)
from core.records import RecordType, RRset
from service.planning import make_plan

ZONE = "example.test."
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # big inputs

# --- generators ---------------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
names = st.lists(_label, min_size=1, max_size=3).map(lambda labels: ".".join(labels) + "." + ZONE)
_hosts = st.lists(_label, min_size=1, max_size=3).map(lambda labels: ".".join(labels) + ".example.net.")
_ports = st.integers(0, 65535).map(str)
# TXT: printable text without what Slack escapes (& < >) or rewrites (smart quotes), and not an option.
_txt = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="&<>\u201c\u201d\u2018\u2019"),
    min_size=1, max_size=40,
).filter(lambda v: v.isprintable() and v.strip() == v and not v.lower().startswith(("ttl=", "reason=")))  # fmt: skip
VALUES = {
    RecordType.A: st.ip_addresses(v=4).map(str),
    RecordType.AAAA: st.ip_addresses(v=6).map(str),
    RecordType.CNAME: _hosts,
    RecordType.TXT: _txt,
    RecordType.MX: st.tuples(_ports, _hosts).map(" ".join),
    RecordType.SRV: st.tuples(_ports, _ports, _ports, _hosts).map(" ".join),
    RecordType.NS: _hosts,
}
_reasons = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="&<>"), min_size=1).map(
    lambda r: f"INC-1 {r}"
)


@st.composite
def rrsets(draw: st.DrawFn, rtypes: Sequence[RecordType] = tuple(RecordType), name: str | None = None) -> RRset:
    rtype = draw(st.sampled_from(rtypes))
    size = 1 if rtype is RecordType.CNAME else 3
    values = draw(st.lists(VALUES[rtype], min_size=1, max_size=size))
    return RRset.build(name or draw(names), rtype, draw(st.integers(1, 86400)), values)


# --- the /dns parser ----------------------------------------------------------------------------

_words = st.sampled_from(["set", "delete", "status", "rollback", "help", "A", "TXT", "ttl=", "reason=", '"', "'"])
_junk = st.lists(st.one_of(_words, st.text(max_size=12)), max_size=8).map(" ".join)


@FAST
@given(st.one_of(st.text(max_size=200), _junk))
@example('set a.example.test A 192.0.2.1 ttl=3\u278e00 reason="x"')  # found by bench/fuzz_inputs.py
def test_parse_raises_nothing_but_invalid_input_with_a_message(text: str) -> None:
    try:
        parse(text)
    except InvalidInput as error:
        assert error.user_text().strip()


def test_mx_and_srv_numbers_in_other_scripts_are_refused_like_any_bad_value() -> None:
    """Found by bench/fuzz_inputs.py (22 of 100,000 inputs); ttl= had the same bug."""
    with pytest.raises(InvalidInput):
        parse('set example.test MX "1\u278e mx.example.net" reason="INC-1"')


@FAST
@given(rrsets(), _reasons)
def test_a_set_command_round_trips_to_the_rrset_it_names(rrset: RRset, reason: str) -> None:
    values = " ".join(shlex.quote(v) for v in rrset.values)
    text = f"set {rrset.name} {rrset.rtype.value.lower()} {values} ttl={rrset.ttl} reason={shlex.quote(reason)}"
    parsed = parse(text)
    assert parsed == ChangeCommand((RecordEdit(rrset.name, rrset.rtype, rrset),), reason)


@FAST
@given(names, st.sampled_from(list(RecordType)), _reasons)
def test_a_delete_command_round_trips(name: str, rtype: RecordType, reason: str) -> None:
    assert parse(f"delete {name} {rtype.value} reason={shlex.quote(reason)}") == ChangeCommand(
        (RecordEdit(name, rtype, None),), reason
    )


# --- plan diffs ---------------------------------------------------------------------------------

PLANNED_TYPES = (RecordType.A, RecordType.AAAA, RecordType.TXT, RecordType.MX)  # no CNAME: its own rules


@dataclass
class ZoneContents:
    """A change path that only reads: what the zone holds now, for planning."""

    rrsets: dict[tuple[str, RecordType], RRset] = field(default_factory=dict)
    name: str = "memory"
    supported_types: frozenset[RecordType] = frozenset(RecordType)
    reads_need_credentials: bool = False

    def read(self, name: str, rtype: RecordType, credentials: Credentials | None = None) -> RRset | None:
        return self.rrsets.get((name, rtype))

    def apply(self, changes: Sequence[RRsetChange], credentials: Credentials) -> None:
        raise AssertionError("planning never applies")


@st.composite
def zone_and_edits(draw: st.DrawFn) -> tuple[ZoneContents, list[RecordEdit]]:
    current = draw(st.lists(rrsets(PLANNED_TYPES), max_size=6, unique_by=lambda r: (r.name, r.rtype)))
    zone = ZoneContents({(r.name, r.rtype): r for r in current})
    keys = draw(
        st.lists(
            st.one_of(st.sampled_from([(r.name, r.rtype) for r in current]) if current else st.nothing(),
                      st.tuples(names, st.sampled_from(PLANNED_TYPES))),
            min_size=1, max_size=5, unique=True,
        )
    )  # fmt: skip
    edits = []
    for name, rtype in keys:
        after = draw(st.one_of(st.none(), rrsets((rtype,), name=name), st.just(zone.rrsets.get((name, rtype)))))
        edits.append(RecordEdit(name, rtype, after))
    return zone, edits


@SLOW
@given(zone_and_edits())
def test_a_plan_diffs_every_edit_against_the_zone_deletes_first_or_refuses_a_no_op(
    case: tuple[ZoneContents, list[RecordEdit]],
) -> None:
    zone, edits = case
    no_op = [e for e in edits if zone.read(e.name, e.rtype) == e.after]
    try:
        plan = make_plan("BG-PROP22", ZONE, zone, edits)
    except SafetyRefused as refusal:
        assert no_op, refusal
        assert refusal.message.startswith("Nothing to change:")
        return
    assert not no_op
    assert sorted((c.name, c.rtype) for c in plan.changes) == sorted((e.name, e.rtype) for e in edits)
    wanted = {(e.name, e.rtype): e.after for e in edits}
    for change in plan.changes:
        assert change.before == zone.read(change.name, change.rtype)
        assert change.after == wanted[(change.name, change.rtype)]
    deletes = [c.after is None for c in plan.changes]
    assert deletes == sorted(deletes, reverse=True)  # every delete before every create or update


# --- canonical digests --------------------------------------------------------------------------


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    changes = []
    for rrset in draw(st.lists(rrsets(), min_size=1, max_size=4, unique_by=lambda r: (r.name, r.rtype))):
        before = draw(st.one_of(st.none(), rrsets((rrset.rtype,), name=rrset.name)))
        after = draw(st.sampled_from([rrset, None])) if before is not None else rrset
        changes.append(RRsetChange(rrset.name, rrset.rtype, before, after))
    policy = draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    return Plan(
        "BG-" + draw(st.text("23456789ABCDEFGHJKMNPQRSTUVWXYZ", min_size=6, max_size=6)),
        ZONE,
        "p",
        tuple(changes),
        policy,
    )


def _shuffled(value: object, rng: random.Random) -> object:
    """The same JSON value with every object's keys in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@SLOW
@given(plans(), st.randoms(use_true_random=False))
def test_a_plan_digest_survives_storage_and_any_key_order(plan: Plan, rng: random.Random) -> None:
    stored = json.dumps(_shuffled(plan_to_dict(plan), rng))
    loaded = plan_from_dict(json.loads(stored))
    assert loaded == plan
    assert loaded.digest() == plan.digest()


@SLOW
@given(plans(), st.integers(1, 86400))
def test_a_plan_digest_changes_when_any_planned_ttl_does(plan: Plan, ttl: int) -> None:
    first = plan.changes[0]
    target = first.after or first.before
    assert target is not None
    assume(ttl != target.ttl)
    moved = RRset(target.name, target.rtype, ttl, target.values)
    changed = (
        RRsetChange(first.name, first.rtype, first.before, moved)
        if first.after
        else RRsetChange(first.name, first.rtype, moved, None)
    )
    other = Plan(plan.request_id, plan.zone, plan.path, (changed, *plan.changes[1:]), plan.policy)
    assert other.digest() != plan.digest()


@SLOW
@given(rrsets(), _reasons, st.datetimes(timezones=st.just(UTC)), st.sampled_from(list(RequestKind)))
def test_a_request_round_trips_through_its_stored_form(
    rrset: RRset, reason: str, at: datetime, kind: RequestKind
) -> None:
    request = ChangeRequest(
        "BG-PROP22", kind, ZONE, (RecordEdit(rrset.name, rrset.rtype, rrset),), reason,
        Principal(PrincipalSource.SLACK, "U0ALICE"), at, "BG-OTHER2" if kind is RequestKind.ROLLBACK else None,
    )  # fmt: skip
    assert request_from_dict(json.loads(json.dumps(request_to_dict(request)))) == request


def test_the_generators_make_what_the_parser_accepts() -> None:
    """Guards the round-trip tests against generating only trivial cases."""
    example = RRset.build("a.b." + ZONE, RecordType.TXT, 60, ["v=spf1 -all", "x y"])
    assert parse(f"set {example.name} TXT 'v=spf1 -all' 'x y' ttl=60 reason=\"INC-1 x\"") == ChangeCommand(
        (RecordEdit(example.name, RecordType.TXT, example),), "INC-1 x"
    )
    with pytest.raises(InvalidInput):
        parse('set a.example.test A 999.1.1.1 reason="x"')


def test_policy_text_with_lone_surrogates_is_refused_clearly() -> None:
    """Found by bench/fuzz_inputs.py: such a str cannot come from a file, but must not crash the loader."""
    from approvals.policy import PolicyError, load_policy

    with pytest.raises(PolicyError, match="not valid Unicode text"):
        load_policy("version: 1\npeople: []\n# \udc80", source="fuzz")
