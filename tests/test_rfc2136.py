"""Rfc2136Path against a real BIND primary + secondary: reads, signed updates, compare-and-swap, failures."""

from __future__ import annotations

import socket
import time

import pytest

from core.credentials import TsigAlgorithm, TsigKey
from core.errors import ConflictError, ProviderError
from core.models import RRsetChange
from core.records import RecordType, RRset
from core.secrets import Secret
from core.verification import ServerAddress, serves
from providers.authoritative import DnsAuthoritativeQuerier
from providers.rfc2136 import Rfc2136Path
from sandbox.bind import BindPair
from sandbox.net import LOOPBACK, free_port
from tests.fixtures.bind import ZONE, new_name, out_of_band

A, AAAA, CNAME, TXT = RecordType.A, RecordType.AAAA, RecordType.CNAME, RecordType.TXT
querier = DnsAuthoritativeQuerier(timeout_seconds=1.0)


def rr(name: str, rtype: RecordType, ttl: int, *values: str) -> RRset:
    return RRset.build(name, rtype, ttl, list(values))


@pytest.fixture
def path(bind_pair: BindPair) -> Rfc2136Path:
    return Rfc2136Path("bind", bind_pair.primary, ZONE)


def served_everywhere(pair: BindPair, name: str, rtype: RecordType, desired: RRset | None, timeout: float = 5) -> None:
    """Poll the primary and the secondary until both serve ``desired``; fail with their last answers otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        answers = [querier.query(server, name, rtype) for server in (pair.primary, pair.secondary)]
        if all(serves(a, desired) for a in answers):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{name} {rtype} not served as {desired}: {[a.describe() for a in answers]}")
        time.sleep(0.02)


# --- read ---------------------------------------------------------------------------------


def test_read_returns_the_seeded_rrsets_in_canonical_form(path: Rfc2136Path) -> None:
    assert path.read("www.example.test", A) == rr("www.example.test.", A, 300, "192.0.2.10")
    assert path.read("WWW.example.test.", AAAA) == rr("www.example.test.", AAAA, 300, "2001:db8::10")
    assert path.read("alias.example.test.", CNAME) == RRset("alias.example.test.", CNAME, 300, ("www.example.test.",))
    assert path.read("txt.example.test.", TXT) == RRset("txt.example.test.", TXT, 120, ("hello world",))


def test_read_of_a_missing_name_or_type_is_none(path: Rfc2136Path, unique_name: str) -> None:
    assert path.read(unique_name, A) is None  # NXDOMAIN
    assert path.read("www.example.test.", TXT) is None  # NODATA
    assert path.read("alias.example.test.", A) is None  # a CNAME is not an A rrset


def test_read_joins_txt_strings_and_sorts_values(bind_pair: BindPair, path: Rfc2136Path, unique_name: str) -> None:
    out_of_band(bind_pair, (unique_name, "TXT", 60, ['"v=DKIM1; " "p=abc"', '"a"']))
    assert path.read(unique_name, TXT) == RRset(unique_name, TXT, 60, ("a", "v=DKIM1; p=abc"))


# --- apply --------------------------------------------------------------------------------


def test_create_update_delete_reach_primary_and_secondary(
    bind_pair: BindPair, path: Rfc2136Path, bind_tsig_key: TsigKey, unique_name: str
) -> None:
    created = rr(unique_name, A, 60, "192.0.2.1")
    path.apply([RRsetChange(unique_name, A, None, created)], bind_tsig_key)
    assert path.read(unique_name, A) == created
    served_everywhere(bind_pair, unique_name, A, created)

    updated = rr(unique_name, A, 30, "192.0.2.2", "192.0.2.3")
    path.apply([RRsetChange(unique_name, A, created, updated)], bind_tsig_key)
    assert path.read(unique_name, A) == updated
    served_everywhere(bind_pair, unique_name, A, updated)

    path.apply([RRsetChange(unique_name, A, updated, None)], bind_tsig_key)
    assert path.read(unique_name, A) is None
    served_everywhere(bind_pair, unique_name, A, None)


def test_cname_and_aaaa_changes(bind_pair: BindPair, path: Rfc2136Path, bind_tsig_key: TsigKey) -> None:
    alias, host = new_name(), new_name()
    cname = rr(alias, CNAME, 120, "WWW.Example.Test")
    aaaa = rr(host, AAAA, 120, "2001:0db8:0000::0001")
    path.apply([RRsetChange(alias, CNAME, None, cname), RRsetChange(host, AAAA, None, aaaa)], bind_tsig_key)
    assert path.read(alias, CNAME) == RRset(alias, CNAME, 120, ("www.example.test.",))
    assert path.read(host, AAAA) == RRset(host, AAAA, 120, ("2001:db8::1",))
    served_everywhere(bind_pair, alias, CNAME, cname)
    served_everywhere(bind_pair, host, AAAA, aaaa)


def test_txt_longer_than_255_bytes_round_trips(
    bind_pair: BindPair, path: Rfc2136Path, bind_tsig_key: TsigKey, unique_name: str
) -> None:
    long_value = "k=" + "é" * 200 + "x" * 400  # multi-byte characters straddle the 255-byte splits
    txt = rr(unique_name, TXT, 300, long_value, "short")
    path.apply([RRsetChange(unique_name, TXT, None, txt)], bind_tsig_key)
    assert path.read(unique_name, TXT) == txt
    served_everywhere(bind_pair, unique_name, TXT, txt)

    replaced = rr(unique_name, TXT, 300, "y" * 3000)
    path.apply([RRsetChange(unique_name, TXT, txt, replaced)], bind_tsig_key)
    assert path.read(unique_name, TXT) == replaced
    served_everywhere(bind_pair, unique_name, TXT, replaced)


def test_txt_split_elsewhere_by_another_tool_can_still_be_changed(
    bind_pair: BindPair, path: Rfc2136Path, bind_tsig_key: TsigKey, unique_name: str
) -> None:
    out_of_band(bind_pair, (unique_name, "TXT", 300, ['"v=DKIM1; k=rsa; " "p=OLD"']))
    before = path.read(unique_name, TXT)
    assert before == RRset(unique_name, TXT, 300, ("v=DKIM1; k=rsa; p=OLD",))
    after = rr(unique_name, TXT, 300, "v=DKIM1; k=rsa; p=NEW")
    path.apply([RRsetChange(unique_name, TXT, before, after)], bind_tsig_key)
    assert path.read(unique_name, TXT) == after


# --- compare-and-swap -----------------------------------------------------------------------


def test_change_made_after_the_plan_is_a_conflict_and_nothing_is_applied(
    bind_pair: BindPair, path: Rfc2136Path, bind_tsig_key: TsigKey, unique_name: str
) -> None:
    out_of_band(bind_pair, (unique_name, "A", 60, ["192.0.2.1"]))
    planned_before = path.read(unique_name, A)
    assert planned_before is not None
    out_of_band(bind_pair, (unique_name, "A", 60, ["192.0.2.99"]))  # someone else, after the plan

    with pytest.raises(ConflictError) as caught:
        path.apply([RRsetChange(unique_name, A, planned_before, rr(unique_name, A, 60, "192.0.2.2"))], bind_tsig_key)
    assert caught.value.user_text() == (
        f"{unique_name} A changed after the plan was made; nothing was applied. "
        "Re-run the request to plan against the current value."
    )
    assert path.read(unique_name, A) == rr(unique_name, A, 60, "192.0.2.99")


def test_create_of_an_rrset_that_appeared_meanwhile_is_a_conflict(
    bind_pair: BindPair, path: Rfc2136Path, bind_tsig_key: TsigKey, unique_name: str
) -> None:
    assert path.read(unique_name, A) is None  # the plan: create
    out_of_band(bind_pair, (unique_name, "A", 60, ["192.0.2.7"]))
    with pytest.raises(ConflictError, match=unique_name):
        path.apply([RRsetChange(unique_name, A, None, rr(unique_name, A, 60, "192.0.2.2"))], bind_tsig_key)
    assert path.read(unique_name, A) == rr(unique_name, A, 60, "192.0.2.7")


def test_delete_of_an_rrset_that_changed_meanwhile_is_a_conflict(
    bind_pair: BindPair, path: Rfc2136Path, bind_tsig_key: TsigKey, unique_name: str
) -> None:
    out_of_band(bind_pair, (unique_name, "TXT", 60, ['"one"']))
    planned_before = path.read(unique_name, TXT)
    assert planned_before is not None
    out_of_band(bind_pair, (unique_name, "TXT", 60, ['"two"']))
    with pytest.raises(ConflictError, match=unique_name):
        path.apply([RRsetChange(unique_name, TXT, planned_before, None)], bind_tsig_key)
    assert path.read(unique_name, TXT) == rr(unique_name, TXT, 60, "two")


def test_multi_change_plan_is_all_or_nothing(bind_pair: BindPair, path: Rfc2136Path, bind_tsig_key: TsigKey) -> None:
    fresh, stale = new_name(), new_name()
    out_of_band(bind_pair, (stale, "A", 60, ["192.0.2.50"]))
    wrong_before = rr(stale, A, 60, "192.0.2.49")  # the plan remembers another value
    changes = [
        RRsetChange(fresh, A, None, rr(fresh, A, 60, "192.0.2.1")),
        RRsetChange(stale, A, wrong_before, rr(stale, A, 60, "192.0.2.51")),
    ]
    with pytest.raises(ConflictError, match=stale):
        path.apply(changes, bind_tsig_key)
    assert path.read(fresh, A) is None
    assert path.read(stale, A) == rr(stale, A, 60, "192.0.2.50")

    changes[1] = RRsetChange(stale, A, rr(stale, A, 60, "192.0.2.50"), rr(stale, A, 60, "192.0.2.51"))
    path.apply(changes, bind_tsig_key)  # the same plan with the right before goes through whole
    assert path.read(fresh, A) == rr(fresh, A, 60, "192.0.2.1")
    assert path.read(stale, A) == rr(stale, A, 60, "192.0.2.51")


# --- refused, unreachable, misconfigured --------------------------------------------------


def _assert_no_secret(error: Exception, secret: str) -> None:
    assert isinstance(error, ProviderError)
    for text in (str(error), repr(error), error.user_text(), repr(error.args)):
        assert secret not in text


def test_wrong_tsig_secret_is_refused_without_revealing_it(
    bind_pair: BindPair, path: Rfc2136Path, bind_tsig_key: TsigKey, unique_name: str
) -> None:
    wrong_secret = "d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldCB3cm9uZyE="
    wrong = TsigKey(bind_tsig_key.name, TsigAlgorithm.HMAC_SHA256, Secret(wrong_secret))
    with pytest.raises(ProviderError, match="TSIG key .* was refused") as caught:
        path.apply([RRsetChange(unique_name, A, None, rr(unique_name, A, 60, "192.0.2.1"))], wrong)
    _assert_no_secret(caught.value, wrong_secret)
    _assert_no_secret(caught.value, bind_pair.tsig_secret)
    assert "BADSIG" in caught.value.message
    assert path.read(unique_name, A) is None


def test_unknown_tsig_key_is_refused(bind_pair: BindPair, path: Rfc2136Path, unique_name: str) -> None:
    stranger = TsigKey("stranger.", TsigAlgorithm.HMAC_SHA256, Secret(bind_pair.tsig_secret))
    with pytest.raises(ProviderError, match="BADKEY") as caught:
        path.apply([RRsetChange(unique_name, A, None, rr(unique_name, A, 60, "192.0.2.1"))], stranger)
    _assert_no_secret(caught.value, bind_pair.tsig_secret)
    assert path.read(unique_name, A) is None


def test_hmac_md5_is_refused_before_anything_is_sent(
    path: Rfc2136Path, bind_tsig_key: TsigKey, unique_name: str
) -> None:
    md5 = TsigKey(bind_tsig_key.name, "hmac-md5", bind_tsig_key.secret)  # type: ignore[arg-type]
    with pytest.raises(ProviderError, match="hmac-md5") as caught:
        path.apply([RRsetChange(unique_name, A, None, rr(unique_name, A, 60, "192.0.2.1"))], md5)
    _assert_no_secret(caught.value, bind_tsig_key.secret.reveal())
    assert path.read(unique_name, A) is None


def test_zone_not_served_by_the_server_is_notauth(bind_pair: BindPair, bind_tsig_key: TsigKey) -> None:
    other = Rfc2136Path("bind-other", bind_pair.primary, "other.test.")
    with pytest.raises(ProviderError, match="NOTAUTH"):
        other.apply([RRsetChange("x.other.test.", A, None, rr("x.other.test.", A, 60, "192.0.2.1"))], bind_tsig_key)
    with pytest.raises(ProviderError, match="REFUSED"):
        other.read("x.other.test.", A)


def test_names_outside_the_zone_are_refused(path: Rfc2136Path, bind_tsig_key: TsigKey) -> None:
    with pytest.raises(ProviderError, match="outside zone example.test."):
        path.apply([RRsetChange("x.other.test.", A, None, rr("x.other.test.", A, 60, "192.0.2.1"))], bind_tsig_key)


def test_server_down_fails_fast(bind_tsig_key: TsigKey, unique_name: str) -> None:
    down = Rfc2136Path("bind-down", ServerAddress(LOOPBACK, free_port()), ZONE)
    started = time.monotonic()
    with pytest.raises(ProviderError, match="unreachable.*nothing was applied"):
        down.apply([RRsetChange(unique_name, A, None, rr(unique_name, A, 60, "192.0.2.1"))], bind_tsig_key)
    with pytest.raises(ProviderError, match="unreachable"):
        down.read(unique_name, A)
    assert time.monotonic() - started < 1.0


def test_server_that_never_answers_times_out(bind_tsig_key: TsigKey, unique_name: str) -> None:
    with socket.create_server((LOOPBACK, 0)) as silent:  # accepts connections, never answers
        port = silent.getsockname()[1]
        hung = Rfc2136Path("bind-hung", ServerAddress(LOOPBACK, port), ZONE, timeout_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(ProviderError, match="did not answer within 0.5s") as caught:
            hung.apply([RRsetChange(unique_name, A, None, rr(unique_name, A, 60, "192.0.2.1"))], bind_tsig_key)
        assert time.monotonic() - started < 1.5
        assert "may or may not have been applied" in caught.value.user_text()
