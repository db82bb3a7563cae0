"""PowerDnsApiPath and the PowerDNS sandbox beyond the shared contract, on a real PowerDNS."""

from __future__ import annotations

import uuid

import pytest

import sandbox.powerdns
from core.errors import ConflictError, ProviderError
from core.models import RRsetChange
from core.records import RecordType, RRset
from providers.authoritative import DnsAuthoritativeQuerier
from providers.powerdns import PowerDnsApiPath
from sandbox.powerdns import PowerDnsServer
from tests.fixtures.powerdns import PDNS_ZONE, powerdns_api_key, powerdns_out_of_band

A, CNAME, TXT = RecordType.A, RecordType.CNAME, RecordType.TXT


def rr(name: str, rtype: RecordType, ttl: int, *values: str) -> RRset:
    return RRset.build(name, rtype, ttl, list(values))


def new_name() -> str:
    return f"p{uuid.uuid4().hex[:12]}.{PDNS_ZONE}"


@pytest.fixture
def api(powerdns: PowerDnsServer) -> PowerDnsApiPath:
    return PowerDnsApiPath("pdns-api", powerdns.api_url + "/api/v1/", PDNS_ZONE)  # the /api/v1 suffix is tolerated


def test_powerdns_refusing_a_change_is_reported_with_its_reason_and_nothing_applied(
    powerdns: PowerDnsServer, api: PowerDnsApiPath
) -> None:
    name, other = new_name(), new_name()
    plan = [
        RRsetChange(other, A, None, rr(other, A, 60, "192.0.2.1")),
        RRsetChange(name, CNAME, None, rr(name, CNAME, 60, "target.example.net.")),
        RRsetChange(name, A, None, rr(name, A, 60, "192.0.2.1")),  # a CNAME cannot share its name
    ]
    with pytest.raises(ProviderError) as caught:
        api.apply(plan, powerdns_api_key(powerdns))
    assert "Conflicts with pre-existing RRset" in caught.value.message and "HTTP 422" in caught.value.message
    assert api.read(other, A, powerdns_api_key(powerdns)) is None  # one PATCH, one transaction


def test_a_ttl_only_change_after_planning_is_a_conflict(powerdns: PowerDnsServer, api: PowerDnsApiPath) -> None:
    """Unlike RFC2136 prerequisites (values only), the API path compares the TTL too."""
    name = new_name()
    planned = rr(name, A, 300, "192.0.2.1")
    api.apply([RRsetChange(name, A, None, planned)], powerdns_api_key(powerdns))
    powerdns_out_of_band(powerdns, name, A, rr(name, A, 5, "192.0.2.1"))
    with pytest.raises(ConflictError):
        api.apply([RRsetChange(name, A, planned, rr(name, A, 300, "192.0.2.2"))], powerdns_api_key(powerdns))


def test_a_large_plan_read_as_a_whole_zone_still_catches_a_conflict_in_any_rrset(
    powerdns: PowerDnsServer, api: PowerDnsApiPath
) -> None:
    names = [new_name() for _ in range(12)]
    key = powerdns_api_key(powerdns)
    api.apply([RRsetChange(n, A, None, rr(n, A, 60, "192.0.2.1")) for n in names], key)
    assert all(api.read(n, A, key) == rr(n, A, 60, "192.0.2.1") for n in names)

    powerdns_out_of_band(powerdns, names[7], A, rr(names[7], A, 60, "198.51.100.1"))
    updates = [RRsetChange(n, A, rr(n, A, 60, "192.0.2.1"), rr(n, A, 60, "192.0.2.2")) for n in names]
    with pytest.raises(ConflictError, match=names[7]):
        api.apply(updates, key)
    assert api.read(names[0], A, key) == rr(names[0], A, 60, "192.0.2.1")


def test_disabled_records_are_not_read_because_they_are_not_served(
    powerdns: PowerDnsServer, api: PowerDnsApiPath
) -> None:
    name = new_name()
    records = [{"content": "192.0.2.1", "disabled": False}, {"content": "192.0.2.9", "disabled": True}]
    entry = {"name": name, "type": "A", "ttl": 60, "changetype": "REPLACE", "records": records}
    powerdns.api("PATCH", powerdns.zone_path(PDNS_ZONE), {"rrsets": [entry]})
    assert api.read(name, A, powerdns_api_key(powerdns)) == rr(name, A, 60, "192.0.2.1")


def test_an_unknown_zone_is_named_in_the_error(powerdns: PowerDnsServer) -> None:
    other = PowerDnsApiPath("pdns-api", powerdns.api_url, "not-served.test.")
    with pytest.raises(ProviderError, match="no zone not-served.test."):
        other.read("www.not-served.test.", A, powerdns_api_key(powerdns))


def test_reading_needs_the_api_key(api: PowerDnsApiPath) -> None:
    with pytest.raises(ProviderError, match="needs a PowerDNS API key"):
        api.read(new_name(), A)


def test_the_sandbox_names_the_debian_packages_when_powerdns_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox.powerdns, "PDNS_SERVER", sandbox.powerdns.PDNS_SERVER.with_name("no-such-pdns"))
    with pytest.raises(RuntimeError, match="apt-get install pdns-server pdns-backend-sqlite3"):
        PowerDnsServer().start()


def test_the_sandbox_serves_seeded_records_over_dns_and_the_api() -> None:
    seeded = rr("txt.seeded.test.", TXT, 60, "x" * 300)
    with PowerDnsServer(["seeded.test."], [("txt.seeded.test.", "TXT", 60, "x" * 300)]) as server:
        path = PowerDnsApiPath("seeded", server.api_url, "seeded.test.")
        assert path.read("txt.seeded.test.", TXT, powerdns_api_key(server)) == seeded
        assert DnsAuthoritativeQuerier().query(server.dns, "txt.seeded.test.", TXT).rrset == seeded
    with pytest.raises(ProviderError, match="unreachable"):  # stopped: nothing listens any more
        path.read("txt.seeded.test.", TXT, powerdns_api_key(server))
