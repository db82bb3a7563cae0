"""NS discovery, the parent's delegation and resolver caches, against real BIND servers on loopback.

The setup is a small DNS tree: a BIND pair serving ``example.test.`` and ``good.test.``, a
parent server for ``test.`` that delegates both (``example.test.`` with a stale NS set), and a
caching resolver that forwards ``example.test.`` to the secondary and the rest of ``test.``
to the parent. Name servers all live on 127.0.0.1/::1, so ``ports`` maps each NS name to
the port its server listens on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from core.errors import ProviderError
from core.liveness import TcpProbe
from core.records import RecordType, RRset
from core.verification import AnswerStatus, ServerAddress
from probes.liveness import probe_rrset
from providers.authoritative import DnsAuthoritativeQuerier
from providers.discovery import (
    DnsAddressResolver,
    NameServer,
    check_delegation,
    check_resolvers,
    clients_follow_within,
    discover_servers,
    find_parent_servers,
)
from sandbox.bind import BindPair, BindServer
from sandbox.net import LOOPBACK, free_port, wait_until
from tests.fixtures.bind import new_name, out_of_band

A = RecordType.A
ZONE = "example.test."
NS1, NS2, NS3 = "ns1.example.test.", "ns2.example.test.", "ns3.elsewhere.test."
TIMEOUT = 1.0
CHILD_RECORDS = [
    (ZONE, "NS", 300, NS2),  # ns1.example.test. comes with every BindPair zone
    (ZONE, "NS", 300, NS3),
    (NS1, "AAAA", 300, "::1"),
    (NS2, "A", 300, "127.0.0.1"),
    (NS2, "AAAA", 300, "::1"),
    ("www.example.test.", "A", 300, "192.0.2.10"),
    ("alias.example.test.", "CNAME", 300, "www.example.test."),
    ("far.example.test.", "CNAME", 300, "lb.elsewhere.test."),
]
PARENT_RECORDS = [
    (ZONE, "NS", 300, NS1),  # stale: the registrar still has ns1 and a retired server, not ns2/ns3
    (ZONE, "NS", 300, "old.example.test."),
    (NS1, "A", 300, "127.0.0.1"),
    ("old.example.test.", "A", 300, "127.0.0.9"),
    ("good.test.", "NS", 300, "ns1.good.test."),
    ("ns1.good.test.", "A", 300, "127.0.0.1"),
    (NS3, "A", 300, "127.0.0.1"),
    ("lb.elsewhere.test.", "A", 300, "127.0.0.1"),
]


@dataclass
class Tree:
    pair: BindPair
    parent: BindServer
    resolver: BindServer

    @property
    def ports(self) -> dict[str, int]:
        """Where each name server really listens (in production they all share port 53)."""
        primary, secondary = self.pair.primary.port, self.pair.secondary.port
        return {
            NS1: primary,
            NS2: secondary,
            NS3: secondary,
            "ns1.good.test.": primary,
            "ns.test.": self.parent.address.port,
        }


@pytest.fixture(scope="module")
def tree() -> Iterator[Tree]:
    pair = BindPair([ZONE, "good.test."], CHILD_RECORDS, ipv6=True)
    parent = BindServer({"test.": PARENT_RECORDS})
    resolver: BindServer | None = None
    try:
        pair.start()
        parent.start()
        resolver = BindServer(forwards={ZONE: [pair.secondary], "test.": [parent.address]}).start()
        yield Tree(pair, parent, resolver)
    finally:
        with ThreadPoolExecutor() as pool:  # each named takes ~2 s to stop: stop them together
            list(pool.map(lambda server: server.stop(), [s for s in (pair, parent, resolver) if s is not None]))


# --- discovery -------------------------------------------------------------------------


def test_discovers_every_address_of_every_name_server(tree: Tree) -> None:
    found = discover_servers(
        ZONE, via=[tree.pair.primary], timeout=TIMEOUT, resolvers=[tree.resolver.address], ports=tree.ports
    )
    p1, p2 = tree.pair.primary.port, tree.pair.secondary.port
    assert found.source == tree.pair.primary
    assert found.nameservers == (
        NameServer(NS1, (ServerAddress(LOOPBACK, p1), ServerAddress("::1", p1))),
        NameServer(NS2, (ServerAddress(LOOPBACK, p2), ServerAddress("::1", p2))),
        NameServer(NS3, (ServerAddress(LOOPBACK, p2),)),  # outside the zone: found through the resolver
    )
    assert found.servers == (  # without repeats: ns3 is the secondary again
        ServerAddress(LOOPBACK, p1),
        ServerAddress("::1", p1),
        ServerAddress(LOOPBACK, p2),
        ServerAddress("::1", p2),
    )
    assert found.problems() == ()
    querier = DnsAuthoritativeQuerier(TIMEOUT)
    for server in found.servers:  # each discovered address really is an authoritative server of the zone
        answer = querier.query(server, "www.example.test.", A)
        assert answer.status is AnswerStatus.ANSWER and answer.rrset is not None, f"{server}: {answer.describe()}"


def test_name_server_outside_the_zone_needs_a_resolver(tree: Tree) -> None:
    found = discover_servers(ZONE, via=[tree.pair.primary], timeout=TIMEOUT, ports=tree.ports)
    assert found.ns_names == {NS1, NS2, NS3}
    assert found.problems() == (f"`{NS3}`: outside the zone, and no resolver is configured to look it up",)
    assert len(found.servers) == 4  # ns1 and ns2, both families


def test_discovery_skips_servers_that_cannot_answer_and_fails_loudly_when_none_can(tree: Tree) -> None:
    dead = ServerAddress(LOOPBACK, free_port())
    found = discover_servers(ZONE, via=[dead, tree.pair.secondary], timeout=0.3, ports=tree.ports)
    assert found.source == tree.pair.secondary
    with pytest.raises(ProviderError) as raised:
        discover_servers(ZONE, via=[tree.parent.address], timeout=TIMEOUT)
    assert raised.value.message == (
        f"Could not learn the name servers of `{ZONE}`: {tree.parent.address}: answer without the AA flag."
    )


# --- delegation ------------------------------------------------------------------------


def test_matching_delegation_is_consistent(tree: Tree) -> None:
    parents = find_parent_servers("good.test.", resolvers=[tree.resolver.address], timeout=TIMEOUT, ports=tree.ports)
    assert parents.zone == "test."
    assert parents.servers == (tree.parent.address,)
    child = discover_servers("good.test.", via=[tree.pair.primary], timeout=TIMEOUT)
    report = check_delegation("good.test.", parent_servers=parents.servers, expected_ns=child.ns_names, timeout=TIMEOUT)
    assert report.consistent, report.warnings()
    assert report.warnings() == ()
    assert report.answers[0].glue == (("ns1.good.test.", "127.0.0.1"),)


def test_stale_delegation_is_reported_with_what_to_fix(tree: Tree) -> None:
    child = discover_servers(ZONE, via=[tree.pair.primary], timeout=TIMEOUT, ports=tree.ports)
    report = check_delegation(ZONE, parent_servers=[tree.parent.address], expected_ns=child.ns_names, timeout=TIMEOUT)
    assert not report.consistent
    assert report.missing() == {NS2, NS3}
    assert report.extra() == {"old.example.test."}
    assert report.warnings() == (
        f"Parent server {tree.parent.address} delegates `{ZONE}` to `ns1.example.test.`, `old.example.test.`, "
        "not to `ns2.example.test.`, `ns3.elsewhere.test.`, and to `old.example.test.`, which the zone does not "
        "list. Resolvers follow the parent, so fix the delegation at the registrar or in the parent zone.",
    )


def test_delegation_check_names_parents_that_do_not_answer(tree: Tree) -> None:
    dead = ServerAddress(LOOPBACK, free_port())
    report = check_delegation(ZONE, parent_servers=[dead], expected_ns={NS1}, timeout=0.3)
    assert not report.consistent
    assert report.warnings() == (f"Parent server {dead} gave no delegation for `{ZONE}`: no answer within 0.3s.",)


# --- resolvers -------------------------------------------------------------------------


def authoritative_serves(tree: Tree, name: str, value: str) -> None:
    querier = DnsAuthoritativeQuerier(TIMEOUT)

    def served() -> bool:
        answer = querier.query(tree.pair.secondary, name, A)
        return answer.rrset is not None and answer.rrset.values == (value,)

    wait_until(served, 10, f"secondary serving {name} A {value}")


def test_resolver_keeps_the_old_answer_until_its_ttl_runs_out(tree: Tree) -> None:
    name, ttl = new_name(), 3
    old, new = RRset.build(name, A, ttl, ["192.0.2.1"]), RRset.build(name, A, ttl, ["192.0.2.2"])
    out_of_band(tree.pair, (name, "A", ttl, ["192.0.2.1"]))
    authoritative_serves(tree, name, "192.0.2.1")
    [cached] = check_resolvers(name, A, [tree.resolver.address], timeout=TIMEOUT)
    assert cached.follows(old) and 0 < (cached.remaining_ttl or 0) <= ttl

    out_of_band(tree.pair, (name, "A", ttl, ["192.0.2.2"]))
    authoritative_serves(tree, name, "192.0.2.2")  # every authoritative server has the change...
    stale: list[int] = []
    deadline = time.monotonic() + ttl + 5
    while True:
        [answer] = check_resolvers(name, A, [tree.resolver.address], timeout=TIMEOUT)
        if answer.follows(new):
            break
        assert answer.follows(old), answer.describe()  # ...but the resolver still hands out the old value
        assert clients_follow_within([answer], new) == answer.remaining_ttl
        stale.append(answer.remaining_ttl or 0)
        assert time.monotonic() < deadline, f"resolver still stale: {answer.describe()}"
        time.sleep(0.2)
    assert stale, "the resolver should have served the cached old value at least once"
    assert stale == sorted(stale, reverse=True) and stale[-1] < ttl  # counting down
    assert (answer.remaining_ttl, clients_follow_within([answer], new)) == (ttl, 0)


def test_resolver_caches_nonexistence_for_the_negative_ttl(tree: Tree) -> None:
    name = new_name()
    [answer] = check_resolvers(name, A, [tree.resolver.address], timeout=TIMEOUT)
    assert (answer.error, answer.detail, answer.rrset) == (False, "NXDOMAIN", None)
    assert 0 < (answer.remaining_ttl or 0) <= 60  # the zone's SOA minimum
    assert answer.follows(None)
    assert answer.describe() == f"{tree.resolver.address}: NXDOMAIN (expires in {answer.remaining_ttl}s)"


def test_a_server_that_does_not_recurse_is_not_taken_for_a_resolver(tree: Tree) -> None:
    [answer] = check_resolvers("www.example.test.", A, [tree.parent.address], timeout=TIMEOUT)
    assert answer.error
    assert answer.describe() == f"{tree.parent.address}: answer without the RA flag: not a recursive resolver"


# --- addresses for probes ----------------------------------------------------------------


def test_address_resolver_follows_cnames_in_and_out_of_the_zone(tree: Tree) -> None:
    inside = DnsAddressResolver(authoritative=[tree.pair.primary], timeout=TIMEOUT)
    assert inside("alias.example.test.") == ("192.0.2.10",)
    with pytest.raises(ProviderError) as raised:
        inside("far.example.test.")  # lb.elsewhere.test. is not in the zone the primary serves
    assert "Could not find the addresses of `far.example.test.`" in raised.value.message
    both = DnsAddressResolver(authoritative=[tree.pair.primary], resolvers=[tree.resolver.address], timeout=TIMEOUT)
    assert both("far.example.test.") == ("127.0.0.1",)


def test_cname_target_found_through_dns_is_probed(tree: Tree) -> None:
    resolve = DnsAddressResolver(authoritative=[tree.pair.primary], resolvers=[tree.resolver.address], timeout=TIMEOUT)
    cname = RRset.build("far.example.test.", RecordType.CNAME, 60, ["lb.elsewhere.test."])
    report = probe_rrset(
        cname, [TcpProbe(tree.parent.address.port, timeout=2)], resolve=resolve
    )  # named listens on TCP
    assert report.targets == ("127.0.0.1",)
    assert report.live, report.describe()
