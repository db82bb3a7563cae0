"""DnsAuthoritativeQuerier against real BIND servers: AA answers, NXDOMAIN/NODATA, referrals, failures, IPv6."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import pytest

from core.credentials import TsigAlgorithm, TsigKey
from core.models import RRsetChange
from core.records import RecordType, RRset
from core.secrets import Secret
from core.verification import AnswerStatus, ServerAddress, ServerAnswer, serves
from providers.authoritative import DnsAuthoritativeQuerier
from providers.dnswire import make_query
from providers.rfc2136 import Rfc2136Path
from sandbox.bind import BindPair
from sandbox.net import LOOPBACK, free_port
from tests.fixtures.bind import ZONE, out_of_band, secondary_stopped

A, TXT, CNAME = RecordType.A, RecordType.TXT, RecordType.CNAME
querier = DnsAuthoritativeQuerier(timeout_seconds=1.0)


def poll(server: ServerAddress, name: str, rtype: RecordType, desired: RRset | None, timeout: float) -> float:
    """Seconds until ``server`` serves ``desired``; fails the test with the last answer otherwise."""
    started = time.monotonic()
    while True:
        answer = querier.query(server, name, rtype)
        if serves(answer, desired):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            pytest.fail(f"{server} still answers {answer.describe()} for {name} {rtype}")
        time.sleep(0.02)


def test_authoritative_answer_from_primary_and_secondary(bind_pair: BindPair) -> None:
    expected = RRset("www.example.test.", A, 300, ("192.0.2.10",))
    for server in (bind_pair.primary, bind_pair.secondary):
        answer = querier.query(server, "WWW.example.test", A)
        assert answer == ServerAnswer(server, "www.example.test.", A, AnswerStatus.ANSWER, rrset=expected)


def test_cname_is_answered_as_its_own_type(bind_pair: BindPair) -> None:
    answer = querier.query(bind_pair.secondary, "alias.example.test.", CNAME)
    assert answer.rrset == RRset("alias.example.test.", CNAME, 300, ("www.example.test.",))
    chased = querier.query(bind_pair.secondary, "alias.example.test.", A)
    assert (chased.status, chased.rrset) == (AnswerStatus.ANSWER, None)  # the A of the target is not alias's A


def test_nxdomain_and_nodata_are_answers_without_rrset(bind_pair: BindPair, unique_name: str) -> None:
    nxdomain = querier.query(bind_pair.primary, unique_name, A)
    assert (nxdomain.status, nxdomain.rrset, nxdomain.detail) == (AnswerStatus.ANSWER, None, "NXDOMAIN")
    nodata = querier.query(bind_pair.secondary, "www.example.test.", TXT)
    assert (nodata.status, nodata.rrset, nodata.detail) == (AnswerStatus.ANSWER, None, "NODATA")
    assert serves(nxdomain, None) and serves(nodata, None)


def test_referral_is_not_authoritative(bind_pair: BindPair) -> None:
    answer = querier.query(bind_pair.primary, "host.delegated.example.test.", A)
    assert answer.status is AnswerStatus.NOT_AUTHORITATIVE
    assert not serves(answer, None)


def test_zone_not_served_is_an_error(bind_pair: BindPair) -> None:
    answer = querier.query(bind_pair.primary, "x.other.test.", A)
    assert (answer.status, answer.detail) == (AnswerStatus.ERROR, "REFUSED")


def test_stopped_server_is_an_error_not_an_exception(bind_pair: BindPair) -> None:
    quick = DnsAuthoritativeQuerier(timeout_seconds=0.3)
    with secondary_stopped(bind_pair):
        started = time.monotonic()
        answer = quick.query(bind_pair.secondary, "www.example.test.", A)
        assert time.monotonic() - started < 1.0
    assert answer.status is AnswerStatus.ERROR
    assert answer.detail == "no answer within 0.3s"
    assert querier.query(bind_pair.secondary, "www.example.test.", A).status is AnswerStatus.ANSWER  # back again


def test_nothing_listening_is_an_error() -> None:
    answer = DnsAuthoritativeQuerier(timeout_seconds=0.2).query(
        ServerAddress(LOOPBACK, free_port()), "www.example.test.", A
    )
    assert answer.status is AnswerStatus.ERROR


def test_large_answer_falls_back_to_tcp(bind_pair: BindPair, unique_name: str) -> None:
    values = [f'"{i:02d}-' + "z" * 240 + '"' for i in range(12)]  # ~3 KB: more than one UDP answer holds
    out_of_band(bind_pair, (unique_name, "TXT", 60, values))
    udp = dns.query.udp(make_query(unique_name, TXT), LOOPBACK, port=bind_pair.primary.port, timeout=1)
    assert udp.flags & dns.flags.TC  # so a complete answer below needed TCP
    expected = RRset.build(unique_name, TXT, 60, [v.strip('"') for v in values])
    assert querier.query(bind_pair.primary, unique_name, TXT).rrset == expected
    poll(bind_pair.secondary, unique_name, TXT, expected, timeout=5)


# --- a second pair: NOTIFY off (refresh only), listening on ::1 too, hmac-sha512 key -------------


@pytest.fixture(scope="module")
def slow_pair() -> Iterator[BindPair]:
    with BindPair([ZONE], notify=False, refresh_seconds=2, ipv6=True, tsig_algorithm="hmac-sha512") as pair:
        yield pair


@pytest.fixture
def slow_key(slow_pair: BindPair) -> TsigKey:
    return TsigKey(slow_pair.tsig_key_name, TsigAlgorithm(slow_pair.tsig_algorithm), Secret(slow_pair.tsig_secret))


def test_ipv6_servers_are_queried_and_updated(slow_pair: BindPair, slow_key: TsigKey) -> None:
    path = Rfc2136Path("bind-v6", slow_pair.primary_v6, ZONE)
    name = "v6.example.test."
    desired = RRset(name, A, 60, ("192.0.2.6",))
    path.apply([RRsetChange(name, A, None, desired)], slow_key)
    answer = querier.query(slow_pair.primary_v6, name, A)
    assert answer == ServerAnswer(ServerAddress("::1", slow_pair.primary.port), name, A, AnswerStatus.ANSWER, desired)
    poll(slow_pair.secondary_v6, name, A, desired, timeout=10)


def test_without_notify_the_secondary_learns_by_refresh(slow_pair: BindPair, slow_key: TsigKey) -> None:
    path = Rfc2136Path("bind-slow", slow_pair.primary, ZONE)
    name = "slow.example.test."
    desired = RRset(name, A, 60, ("192.0.2.7",))
    path.apply([RRsetChange(name, A, None, desired)], slow_key)
    assert serves(querier.query(slow_pair.primary, name, A), desired)
    poll(slow_pair.secondary, name, A, desired, timeout=2 + 5)  # refresh is 2 s
    assert "notify from" not in slow_pair.secondary_log.read_text()  # it polled; nobody told it


# --- the sandbox itself ---------------------------------------------------------------------


def test_bind_pair_that_cannot_load_its_zone_fails_loudly_with_the_log() -> None:
    broken = BindPair([ZONE], [("bad.example.test.", "A", 60, "not-an-address")])
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="could not load zone example.test.") as caught:
        broken.start()
    assert time.monotonic() - started < 5
    assert "bad dotted quad" in str(caught.value)  # named's own words, from its log
    with pytest.raises(RuntimeError, match="not started"):
        broken.run_dir  # stopped and cleaned up


def test_bind_pair_says_how_to_install_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sandbox.bind.NAMED", Path("/nonexistent/named"))
    with pytest.raises(RuntimeError, match="apt-get install bind9"):
        BindPair().start()
