"""The "too much change" limit: a request may not update or delete too large a share of a zone at once.

The limit comes from the signed policy (``safety``, a rule's ``max_change_fraction``); planning
counts the zone through the change path, on the real servers, and refuses before anyone is asked
to approve. These tests pin the arithmetic (octoDNS's 30 % of zones of 10 or more rrsets), each
path's count, failing closed when a path cannot count, and the whole flow on a BIND pair: the
refusal the requester reads, its audit event, a bulk-failover rule, rollbacks, and Slack.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from cli.localstack import DEFAULT_RULES, SEED, LocalStack
from core.errors import SafetyRefused
from core.events import EventKind
from core.limits import ChangeLimit
from core.models import Principal, PrincipalSource, RecordEdit
from core.records import RecordType, RRset
from core.states import RequestState
from core.verification import ServerAddress
from providers.powerdns import PowerDnsApiPath
from providers.rfc2136 import Rfc2136Path
from providers.route53 import Route53Path
from sandbox.bind import BindPair, SeedRecord
from sandbox.moto import MotoServer
from sandbox.net import free_port
from sandbox.openbao import OpenBaoServer
from sandbox.powerdns import PowerDnsServer
from sandbox.quiet import QuietNotifier
from service.planning import ZoneCounter, make_plan
from store.sql import SqlRequestStore
from tests.fixtures.bind import ZONE, CoreOnly, new_name, out_of_band
from tests.fixtures.bot import SlackDriver
from tests.fixtures.moto import MOTO_CREDENTIALS, make_hosted_zone, moto_client, route53_out_of_band
from tests.fixtures.powerdns import PDNS_ZONE, powerdns_api_key, powerdns_out_of_band

A = RecordType.A
OCTODNS = ChangeLimit(Fraction(3, 10), 10, ("incident-failover",))
EVERYTHING = 10**6  # an up_to no test zone reaches: count it all


def a(name: str, *values: str, ttl: int = 300) -> RRset:
    return RRset.build(name, A, ttl, list(values))


# --- the arithmetic ----------------------------------------------------------------------------


def test_the_octodns_threshold_refuses_more_than_30_percent_of_zones_of_10_or_more() -> None:
    assert OCTODNS.allows(6, 20) and not OCTODNS.allows(7, 20)  # 30 % is allowed, 35 % is not
    assert OCTODNS.allows(3, 10) and not OCTODNS.allows(4, 10)
    assert OCTODNS.allows(9, 9)  # a zone of fewer than 10 rrsets is not limited
    assert (OCTODNS.most(20), OCTODNS.most(9), OCTODNS.always_allowed()) == (6, 9, 3)
    assert not OCTODNS.needs_zone_size(3) and OCTODNS.needs_zone_size(4)  # 3 pass in any zone: no count
    assert OCTODNS.enough(7) == 24 and OCTODNS.allows(7, 24) and not OCTODNS.allows(7, 23)
    assert not ChangeLimit(Fraction(1), 10, ("bulk",)).needs_zone_size(1000)


@given(
    st.fractions(min_value=Fraction(1, 1000), max_value=1),
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=0, max_value=2000),
)
def test_skipping_the_count_or_stopping_it_early_never_changes_the_verdict(
    fraction: Fraction, min_zone: int, changed: int, others: int
) -> None:
    limit = ChangeLimit(fraction, min_zone, ("rule",))
    zone = changed + others  # the rrsets being replaced are in the zone
    if not limit.needs_zone_size(changed):
        assert limit.allows(changed, zone)
    else:
        assert limit.allows(changed, min(zone, limit.enough(changed))) == limit.allows(changed, zone)
    most = limit.most(zone)
    assert limit.allows(most, zone) and (zone < min_zone or not limit.allows(most + 1, zone))


# --- each change path counts its zone ------------------------------------------------------------


def test_rfc2136_counts_the_zone_by_transfer_and_stops_at_up_to(bind_pair: BindPair) -> None:
    path = Rfc2136Path("bind", bind_pair.primary, ZONE)
    before = path.count_rrsets(EVERYTHING)
    two_values, two_types = new_name(), new_name()
    out_of_band(
        bind_pair,
        (two_values, "A", 60, ["192.0.2.1", "192.0.2.2"]),  # one rrset of two records
        (two_types, "A", 60, ["192.0.2.3"]),
        (two_types, "TXT", 60, ['"two rrsets at one name"']),
    )

    assert isinstance(path, ZoneCounter)
    assert before is not None and path.count_rrsets(EVERYTHING) == before + 3
    assert path.count_rrsets(4) == 4  # a small request in a large zone does not transfer all of it


def test_rfc2136_cannot_count_when_the_primary_hands_no_zone_over() -> None:
    path = Rfc2136Path("closed", ServerAddress("127.0.0.1", free_port()), ZONE, timeout_seconds=1)

    assert path.count_rrsets(EVERYTHING) is None


def test_powerdns_counts_the_zone_in_one_listing(powerdns: PowerDnsServer) -> None:
    path = PowerDnsApiPath("pdns", powerdns.api_url, PDNS_ZONE)
    key = powerdns_api_key(powerdns)
    before = path.count_rrsets(EVERYTHING, key)
    names = [f"c{i}-{new_name()}" for i in range(3)]
    for i, name in enumerate(names):
        powerdns_out_of_band(powerdns, name, A, a(name, f"192.0.2.{i + 1}", "192.0.2.200"))

    assert before is not None and path.count_rrsets(EVERYTHING, key) == before + 3
    assert path.count_rrsets(2, key) == 2


def test_route53_counts_every_page_without_the_soa_and_stops_at_up_to(moto: MotoServer) -> None:
    zone, zone_id = make_hosted_zone(moto)
    path = Route53Path("route53", zone, endpoint_url=moto.endpoint_url)
    assert path.count_rrsets(EVERYTHING, MOTO_CREDENTIALS) == 1  # a new hosted zone: its NS (and SOA, not counted)
    route53_out_of_band(moto, zone_id, f"www.{zone}", A, a(f"www.{zone}", "192.0.2.1"))
    assert path.count_rrsets(EVERYTHING, MOTO_CREDENTIALS) == 2
    changes = [
        {
            "Action": "CREATE",
            "ResourceRecordSet": {
                "Name": f"h{i}.{zone}", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.9"}],
            },
        }
        for i in range(320)
    ]  # fmt: skip
    moto_client(moto).change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})

    assert path.count_rrsets(EVERYTHING, MOTO_CREDENTIALS) == 322  # more than one page of 300
    assert path.count_rrsets(5, MOTO_CREDENTIALS) == 5


# --- planning ----------------------------------------------------------------------------------


def test_a_path_that_cannot_count_the_zone_refuses_large_plans_and_passes_small_ones(bind_pair: BindPair) -> None:
    path = CoreOnly(Rfc2136Path("bind", bind_pair.primary, ZONE))
    names = [new_name() for _ in range(4)]
    out_of_band(bind_pair, *((n, "A", 60, ["192.0.2.1"]) for n in names))
    edits = [RecordEdit(n, A, a(n, "198.51.100.1")) for n in names]

    assert not isinstance(path, ZoneCounter)
    with pytest.raises(SafetyRefused) as caught:
        make_plan("BG-CLOSED", ZONE, path, edits, limit=OCTODNS)
    created = new_name()
    small = make_plan(
        "BG-SMALL", ZONE, path, [*edits[:3], RecordEdit(created, A, a(created, "198.51.100.2"))], limit=OCTODNS
    )

    said = caught.value.user_text()
    assert "update or delete 4 existing rrsets" in said and "cannot list the zone" in said
    assert "at most 30%" in said and "requests of at most 3" in said and "allow it zone transfers" in said
    assert len(small.changes) == 4  # 3 updates and a new record: within the limit in any zone, never counted


# --- the whole flow on a BIND pair -----------------------------------------------------------------

POOL = [f"h{i:02d}.pool.example.test." for i in range(16)]
# NS, ns A, api A, www CNAME and 16 pool hosts: 20 rrsets (the SOA is not counted).
POOL_SEED: tuple[SeedRecord, ...] = SEED + tuple((n, "A", 300, f"192.0.2.{i + 100}") for i, n in enumerate(POOL))
BULK_RULE = """
  - name: pool-failover
    zone: example.test
    names: ["*.pool.example.test"]
    types: [A]
    requesters: [sre]
    approvals:
      count: 2
      approvers: [sre]
    max_change_fraction: 1.0
"""


def repoint(count: int, value: str) -> list[RecordEdit]:
    return [RecordEdit(n, A, a(n, value)) for n in POOL[:count]]


@pytest.fixture
def pool(openbao: OpenBaoServer) -> Iterator[LocalStack]:
    with LocalStack(vault=openbao, seed=POOL_SEED, verify_timeout=10.0) as stack:
        yield stack


def test_too_much_change_is_refused_at_planning_and_audited_and_a_bulk_rule_allows_it(pool: LocalStack) -> None:
    alice = Principal(PrincipalSource.SLACK, pool.people.alice)
    reason = "INC-7 fail the pool over"

    with pytest.raises(SafetyRefused) as caught:
        pool.service.request_change(alice, repoint(7, "203.0.113.7"), reason, request_id="BG-TOOBIG")
    said = caught.value.user_text()
    assert said.startswith("Too much change at once: this request would update or delete 7 of the 20 rrsets")
    assert "(35%)" in said and "policy rule incident-failover allows at most 30% (6 of 20)" in said
    assert "requests of at most 6 updated or deleted rrsets" in said and "max_change_fraction" in said
    (refused,) = SqlRequestStore(pool.engine).events("BG-TOOBIG")
    assert refused.kind is EventKind.REQUEST_REFUSED and refused.details["message"] == said
    assert pool.service.recent(10) == []  # nobody is asked to approve it

    six = pool.service.request_change(alice, repoint(6, "203.0.113.6"), reason)  # 30 %: at the limit
    assert [c.before is not None for c in six.plan.changes] == [True] * 6

    pool.write_policy(BULK_RULE + DEFAULT_RULES)  # signed again: the pool now has a pre-agreed bulk rule
    bulk = pool.service.request_change(alice, repoint(16, "203.0.113.16"), reason)
    assert len(bulk.plan.changes) == 16 and pool.service.status(bulk.request.id).rule.startswith("pool-failover")
    for approver in (pool.people.bob, pool.people.carol):
        pool.service.approve(bulk.request.id, Principal(PrincipalSource.SLACK, approver))
    assert pool.service.execute(bulk.request.id, QuietNotifier()).stored.state is RequestState.VERIFIED

    pool.write_policy()  # the bulk rule is gone again, but a rollback puts back what was approved
    rollback = pool.service.request_rollback(bulk.request.id, alice)
    assert len(rollback.plan.changes) == 16 and rollback.plan.changes[0].after == a(POOL[0], "192.0.2.100")


def test_slack_requester_reads_the_refusal_and_it_is_audited(pool: LocalStack) -> None:
    slack = SlackDriver(pool)
    # A strict policy-wide limit: in this zone of 20 rrsets, not even one may be replaced at once.
    pool.write_policy(DEFAULT_RULES + "safety: {max_change_fraction: 0.04, min_zone_rrsets: 10}\n")

    slack.command(pool.people.alice, f'set {POOL[0]} A 203.0.113.1 reason="INC-8 fail over"')

    said = slack.response_url_text()
    assert "Too much change at once" in said and "1 of the 20 rrsets" in said and "at most 4% (0 of 20)" in said
    assert "Split it" not in said and "For a pre-agreed bulk failover" in said
    assert slack.top_level_posts() == []
    with pool.engine.connect() as db:
        rows = db.execute(text("SELECT kind, details_json FROM events")).all()
    assert [(kind, json.loads(details)["reason"]) for kind, details in rows] == [("request_refused", "SafetyRefused")]
