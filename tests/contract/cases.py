"""The change paths the contract suite runs against, each on a real server (or moto for Route53).

A ``ContractCase`` holds one path and everything the suite needs around it: working and
wrong credentials, a way to change records behind the path's back (another operator), an
independent observer (the DNS server itself, where there is one), and a copy of the path
pointed at a port where nothing listens.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial

import pytest

from core.credentials import ApiKey, AwsCredentials, Credentials, TsigAlgorithm, TsigKey
from core.ports import ChangePath
from core.records import RecordType, RRset
from core.secrets import Secret
from core.verification import AnswerStatus, ServerAddress
from providers.authoritative import DnsAuthoritativeQuerier
from providers.dnswire import to_rdata
from providers.powerdns import PowerDnsApiPath
from providers.rfc2136 import Rfc2136Path
from providers.route53 import Route53Path
from sandbox.bind import BindPair
from sandbox.moto import MotoServer
from sandbox.net import LOOPBACK, free_port
from sandbox.powerdns import PowerDnsServer
from tests.fixtures.bind import ZONE as BIND_ZONE
from tests.fixtures.bind import out_of_band as bind_out_of_band
from tests.fixtures.moto import MOTO_CREDENTIALS, make_hosted_zone, moto_auth_enforced, route53_out_of_band
from tests.fixtures.powerdns import PDNS_ZONE, powerdns_api_key, powerdns_out_of_band, powerdns_tsig_key

OutOfBand = Callable[[str, RecordType, RRset | None], None]
Observer = Callable[[str, RecordType], RRset | None]
WRONG_SECRET = "d3JvbmctYnV0LXdlbGwtZm9ybWVkLXNlY3JldC0wMTIzNDU2Nzg5"  # base64, so a TSIG key can be built from it
_querier = DnsAuthoritativeQuerier(timeout_seconds=2.0)


@dataclass
class ContractCase:
    id: str
    path: ChangePath
    zone: str
    credentials: Credentials
    wrong_credentials: Credentials
    out_of_band: OutOfBand
    unreachable: ChangePath  # the same kind of path, pointed at a loopback port where nothing listens
    observe: Observer | None = None  # an independent view (the DNS server itself); None where there is none
    auth_checks: Callable[[], AbstractContextManager[None]] = nullcontext  # moto checks keys only when asked
    secrets: tuple[str, ...] = field(default=(), repr=False)  # every secret value messages must never show

    def name(self, label: str = "") -> str:
        """A fresh name in the case's zone that no other test touches."""
        return f"{label}t{uuid.uuid4().hex[:12]}.{self.zone}"

    def read(self, name: str, rtype: RecordType) -> RRset | None:
        return self.path.read(name, rtype, self.credentials)


CASE_IDS = ["rfc2136-bind", "rfc2136-powerdns", "powerdns-api", "route53-moto"]


def build_case(case_id: str, request: pytest.FixtureRequest) -> ContractCase:
    """Build one case from the session's servers (only the ones that case needs are started)."""
    if case_id == "rfc2136-bind":
        return _rfc2136_bind(request.getfixturevalue("bind_pair"))
    if case_id == "rfc2136-powerdns":
        return _rfc2136_powerdns(request.getfixturevalue("powerdns"))
    if case_id == "powerdns-api":
        return _powerdns_api(request.getfixturevalue("powerdns"))
    if case_id == "route53-moto":
        return _route53_moto(request.getfixturevalue("moto"))
    raise ValueError(case_id)


def _dead_port() -> ServerAddress:
    return ServerAddress(LOOPBACK, free_port())


def _observe_dns(server: ServerAddress, name: str, rtype: RecordType) -> RRset | None:
    answer = _querier.query(server, name, rtype)
    assert answer.status is AnswerStatus.ANSWER, f"{server} answered {answer.describe()} for {name} {rtype}"
    return answer.rrset


def _rfc2136_bind(pair: BindPair) -> ContractCase:
    key = TsigKey(pair.tsig_key_name, TsigAlgorithm(pair.tsig_algorithm), Secret(pair.tsig_secret))

    def out_of_band(name: str, rtype: RecordType, rrset: RRset | None) -> None:
        texts = [to_rdata(rtype, v).to_text() for v in rrset.values] if rrset else []
        bind_out_of_band(pair, (name, rtype.value, rrset.ttl if rrset else 0, texts))

    return ContractCase(
        id="rfc2136-bind",
        path=Rfc2136Path("bind-rfc2136", pair.primary, BIND_ZONE),
        zone=BIND_ZONE,
        credentials=key,
        wrong_credentials=TsigKey(key.name, key.algorithm, Secret(WRONG_SECRET)),
        out_of_band=out_of_band,
        unreachable=Rfc2136Path("dead-rfc2136", _dead_port(), BIND_ZONE, timeout_seconds=1.0),
        observe=partial(_observe_dns, pair.primary),
        secrets=(pair.tsig_secret, WRONG_SECRET),
    )


def _rfc2136_powerdns(server: PowerDnsServer) -> ContractCase:
    key = powerdns_tsig_key(server)
    return ContractCase(
        id="rfc2136-powerdns",
        path=Rfc2136Path("pdns-rfc2136", server.dns, PDNS_ZONE),
        zone=PDNS_ZONE,
        credentials=key,
        wrong_credentials=TsigKey(key.name, key.algorithm, Secret(WRONG_SECRET)),
        out_of_band=partial(powerdns_out_of_band, server),
        unreachable=Rfc2136Path("dead-rfc2136", _dead_port(), PDNS_ZONE, timeout_seconds=1.0),
        observe=partial(_observe_dns, server.dns),
        secrets=(server.tsig_secret, server.api_key, WRONG_SECRET),
    )


def _powerdns_api(server: PowerDnsServer) -> ContractCase:
    dead = _dead_port()
    return ContractCase(
        id="powerdns-api",
        path=PowerDnsApiPath("pdns-api", server.api_url, PDNS_ZONE),
        zone=PDNS_ZONE,
        credentials=powerdns_api_key(server),
        wrong_credentials=ApiKey(Secret(WRONG_SECRET)),
        out_of_band=partial(powerdns_out_of_band, server),
        unreachable=PowerDnsApiPath("dead-api", f"http://{dead.host}:{dead.port}", PDNS_ZONE, timeout_seconds=1.0),
        observe=partial(_observe_dns, server.dns),
        secrets=(server.api_key, server.tsig_secret, WRONG_SECRET),
    )


def _route53_moto(moto: MotoServer) -> ContractCase:
    zone, zone_id = make_hosted_zone(moto)  # a zone per test: nothing depends on another test's zone
    dead = _dead_port()
    wrong = AwsCredentials("AKIDWRONGBREAKGLASS0", Secret(WRONG_SECRET), Secret("wrong-session-token-0123456789"))
    return ContractCase(
        id="route53-moto",
        path=Route53Path("route53", zone, endpoint_url=moto.endpoint_url),
        zone=zone,
        credentials=MOTO_CREDENTIALS,
        wrong_credentials=wrong,
        out_of_band=partial(route53_out_of_band, moto, zone_id),
        unreachable=Route53Path(
            "dead-route53", zone, endpoint_url=f"http://{dead.host}:{dead.port}", timeout_seconds=1.0
        ),
        observe=None,  # moto serves no DNS
        auth_checks=partial(moto_auth_enforced, moto),
        secrets=(MOTO_CREDENTIALS.secret_access_key.reveal(), WRONG_SECRET, "wrong-session-token-0123456789"),
    )
