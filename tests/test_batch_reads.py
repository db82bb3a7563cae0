"""Batch reads (``read_many``): one zone listing or AXFR answers exactly what one read per rrset would.

Planning and the compare-before-write step read every rrset of a plan; for a 1,000-record
failover that was thousands of queries or API calls. These tests pin that the batch answers
match ``read`` on the real servers, that what a batch cannot answer is left to ``read``, and
that a plan made through a batch equals the plan made one rrset at a time.
"""

from __future__ import annotations

import pytest

from core.errors import ConflictError, SafetyRefused
from core.models import RecordEdit
from core.records import RecordType, RRset
from core.verification import ServerAddress
from providers import rfc2136
from providers.powerdns import PowerDnsApiPath
from providers.rfc2136 import Rfc2136Path
from providers.route53 import Route53Path
from sandbox.bind import BindPair
from sandbox.moto import MotoServer
from sandbox.net import free_port
from sandbox.powerdns import PowerDnsServer
from service.planning import BatchReader, check_still_current, make_plan
from tests.fixtures.bind import ZONE, CoreOnly, new_name, out_of_band
from tests.fixtures.moto import MOTO_CREDENTIALS, make_hosted_zone, route53_out_of_band
from tests.fixtures.powerdns import PDNS_ZONE, powerdns_api_key, powerdns_out_of_band

A, CNAME, TXT, NS = RecordType.A, RecordType.CNAME, RecordType.TXT, RecordType.NS
Key = tuple[str, RecordType]


def a(name: str, *values: str, ttl: int = 60) -> RRset:
    return RRset.build(name, A, ttl, list(values))


def many_names(bind_pair: BindPair, count: int = 100) -> list[str]:
    """``count`` fresh A rrsets on the BIND primary: enough for RFC2136 reads to try a zone transfer."""
    names = [new_name() for _ in range(count)]
    out_of_band(bind_pair, *((n, "A", 60, [f"192.0.2.{i % 250 + 1}"]) for i, n in enumerate(names)))
    return names


# --- RFC2136 (AXFR) -------------------------------------------------------------------------------


def test_rfc2136_batch_answers_what_each_query_answers(bind_pair: BindPair) -> None:
    path = Rfc2136Path("bind", bind_pair.primary, ZONE)
    names = many_names(bind_pair)
    keys: list[Key] = [(n, A) for n in names] + [
        ("www.example.test.", A),
        ("alias.example.test.", CNAME),
        ("alias.example.test.", A),  # a CNAME's name asked for A: no A rrset
        ("txt.example.test.", TXT),
        (new_name(), A),  # does not exist
    ]

    found = path.read_many(keys)

    assert set(found) == set(keys)
    assert found == {key: path.read(*key) for key in keys}
    assert found[(names[3], A)] == a(names[3], "192.0.2.4")


def test_rfc2136_batch_leaves_delegations_and_foreign_names_to_queries(bind_pair: BindPair) -> None:
    path = Rfc2136Path("bind", bind_pair.primary, ZONE)
    delegated = ("delegated.example.test.", NS)
    below_cut = ("host.delegated.example.test.", A)
    outside = ("www.elsewhere.test.", A)
    names: list[Key] = [(n, A) for n in many_names(bind_pair)]

    found = path.read_many([delegated, below_cut, outside, *names])

    assert set(found) == set(names)


def test_rfc2136_small_requests_and_large_zones_are_read_by_queries(
    bind_pair: BindPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Rfc2136Path("bind", bind_pair.primary, ZONE)
    names: list[Key] = [(n, A) for n in many_names(bind_pair)]

    assert path.read_many(names[:99]) == {}  # fewer rrsets than a transfer is worth
    monkeypatch.setattr(rfc2136, "_TRANSFER_BUDGET", 1)  # the zone holds more than one record per rrset asked
    assert path.read_many(names) == {}


def test_rfc2136_batch_is_empty_when_the_primary_hands_no_zone_over() -> None:
    path = Rfc2136Path("closed", ServerAddress("127.0.0.1", free_port()), ZONE, timeout_seconds=1)

    assert path.read_many([(f"h{i}.{ZONE}", A) for i in range(100)]) == {}


def test_a_plan_made_from_one_transfer_equals_the_plan_made_query_by_query(bind_pair: BindPair) -> None:
    path = Rfc2136Path("bind", bind_pair.primary, ZONE)
    names = many_names(bind_pair)
    created = new_name()
    edits = [RecordEdit(n, A, a(n, "198.51.100.7")) for n in names] + [
        RecordEdit(created, A, a(created, "198.51.100.8"))
    ]

    assert isinstance(path, BatchReader) and not isinstance(CoreOnly(path), BatchReader)
    assert len(path.read_many([(n, A) for n in names])) == len(names)  # the primary does hand the zone over
    batched = make_plan("BG-1", ZONE, path, edits)
    one_by_one = make_plan("BG-1", ZONE, CoreOnly(path), edits)

    assert batched == one_by_one
    assert len(batched.changes) == 101
    assert [c.name for c in batched.changes if c.before is None] == [created]


def test_a_cname_clash_is_refused_the_same_way_through_a_batch(bind_pair: BindPair) -> None:
    path = Rfc2136Path("bind", bind_pair.primary, ZONE)
    names = many_names(bind_pair)
    edits = [RecordEdit(n, A, a(n, "198.51.100.9")) for n in names] + [
        RecordEdit("alias.example.test.", A, a("alias.example.test.", "198.51.100.9"))
    ]

    with pytest.raises(SafetyRefused) as batched:
        make_plan("BG-2", ZONE, path, edits)
    with pytest.raises(SafetyRefused) as one_by_one:
        make_plan("BG-2", ZONE, CoreOnly(path), edits)

    assert batched.value.message == one_by_one.value.message
    assert "is a CNAME" in batched.value.message


def test_a_change_made_after_the_plan_is_caught_through_a_batch(bind_pair: BindPair) -> None:
    path = Rfc2136Path("bind", bind_pair.primary, ZONE)
    names = many_names(bind_pair)
    plan = make_plan("BG-3", ZONE, path, [RecordEdit(n, A, a(n, "198.51.100.10")) for n in names])
    out_of_band(bind_pair, (names[7], "A", 60, ["203.0.113.99"]))
    assert path.read_many([(n, A) for n in names])[(names[7], A)] == a(names[7], "203.0.113.99")

    with pytest.raises(ConflictError) as caught:
        check_still_current(plan, path)

    assert names[7] in caught.value.message and "203.0.113.99" in caught.value.message


# --- PowerDNS API and Route53: one listing of the zone ----------------------------------------------


def test_powerdns_batch_answers_what_each_read_answers(powerdns: PowerDnsServer) -> None:
    path = PowerDnsApiPath("pdns", powerdns.api_url, PDNS_ZONE)
    key = powerdns_api_key(powerdns)
    names = [f"b{i}-{new_name()}" for i in range(12)]
    for i, name in enumerate(names):
        powerdns_out_of_band(powerdns, name, A, a(name, f"192.0.2.{i + 1}"))
    keys: list[Key] = [(n, A) for n in names] + [(names[0], TXT), (f"missing-{new_name()}", A)]

    found = path.read_many(keys, key)

    assert found == {k: path.read(*k, key) for k in keys}
    assert found[(names[5], A)] == a(names[5], "192.0.2.6")


def test_route53_batch_answers_what_each_read_answers(moto: MotoServer) -> None:
    zone, zone_id = make_hosted_zone(moto)
    path = Route53Path("route53", zone, endpoint_url=moto.endpoint_url)
    names = [f"h{i}.{zone}" for i in range(12)]
    for i, name in enumerate(names):
        route53_out_of_band(moto, zone_id, name, A, a(name, f"192.0.2.{i + 1}"))
    keys: list[Key] = [(n, A) for n in names] + [(names[0], TXT), (f"missing.{zone}", A)]

    found = path.read_many(keys, MOTO_CREDENTIALS)

    assert found == {k: path.read(*k, MOTO_CREDENTIALS) for k in keys}
    assert found[(names[5], A)] == a(names[5], "192.0.2.6")
