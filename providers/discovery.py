"""Which servers must agree, does the parent point at them, and what do resolvers still cache?

* ``discover_servers``: the zone's own NS set (asked authoritatively) and every A/AAAA
  address of every name server, so verification checks all of them, not a hand-kept list.
* ``check_delegation``: the NS set the parent zone hands out. If it differs from the zone's
  own, a correct change can stay invisible: resolvers follow the parent's delegation.
* ``check_resolvers``: what recursive resolvers cache now and for how many more seconds,
  so responders know when clients will follow.
* ``DnsAddressResolver``: a host's addresses (following CNAMEs), e.g. for liveness probes.

DNS-level failures of one server are reported, not raised; only "nothing could be learned
at all" raises ProviderError.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from core.errors import ProviderError
from core.records import RecordType, RRset, is_subdomain, normalize_name
from core.verification import AnswerStatus, ServerAddress
from providers.authoritative import DnsAuthoritativeQuerier
from providers.dnswire import EDNS_PAYLOAD, Unrepresentable, find_answer, from_rdataset, rdatatype

DNS_PORT = 53
MAX_CNAME_CHAIN = 8

# --- results -------------------------------------------------------------------------


@dataclass(frozen=True)
class NameServer:
    name: str
    addresses: tuple[ServerAddress, ...]
    problem: str = ""  # why no address was found

    def describe(self) -> str:
        found = ", ".join(map(str, self.addresses)) or "no address"
        return f"{self.name} -> {found}" + (f" ({self.problem})" if self.problem else "")


@dataclass(frozen=True)
class DiscoveredServers:
    zone: str
    source: ServerAddress  # the server whose NS set this is
    nameservers: tuple[NameServer, ...]

    @property
    def ns_names(self) -> frozenset[str]:
        return frozenset(ns.name for ns in self.nameservers)

    @property
    def servers(self) -> tuple[ServerAddress, ...]:
        """Every address of every name server, without repeats: what verification must ask."""
        return tuple(dict.fromkeys(a for ns in self.nameservers for a in ns.addresses))

    def problems(self) -> tuple[str, ...]:
        return tuple(f"`{ns.name}`: {ns.problem}" for ns in self.nameservers if ns.problem)


@dataclass(frozen=True)
class ParentAnswer:
    server: ServerAddress
    ns: frozenset[str] | None  # the delegated NS names; None when the parent gave none
    glue: tuple[tuple[str, str], ...] = ()  # (name server, address) from the referral
    error: str = ""


@dataclass(frozen=True)
class DelegationReport:
    zone: str
    expected_ns: frozenset[str]
    answers: tuple[ParentAnswer, ...]

    @property
    def consistent(self) -> bool:
        """Every parent server delegates to exactly the expected NS set."""
        return bool(self.answers) and all(a.ns == self.expected_ns for a in self.answers)

    def missing(self) -> frozenset[str]:
        """Expected name servers that some parent server does not delegate to."""
        return frozenset().union(*(self.expected_ns - a.ns for a in self.answers if a.ns is not None))

    def extra(self) -> frozenset[str]:
        """Name servers some parent server delegates to that the zone does not list."""
        return frozenset().union(*(a.ns - self.expected_ns for a in self.answers if a.ns is not None))

    def warnings(self) -> tuple[str, ...]:
        """One sentence per parent server that does not match, saying what to fix."""
        out: list[str] = []
        for answer in self.answers:
            if answer.ns is None:
                out.append(f"Parent server {answer.server} gave no delegation for `{self.zone}`: {answer.error}.")
            elif answer.ns != self.expected_ns:
                parts = [f"Parent server {answer.server} delegates `{self.zone}` to {_names(answer.ns)}"]
                if missing := self.expected_ns - answer.ns:
                    parts.append(f"not to {_names(missing)}")
                if extra := answer.ns - self.expected_ns:
                    parts.append(f"and to {_names(extra)}, which the zone does not list")
                out.append(
                    ", ".join(parts) + ". Resolvers follow the parent, so fix the delegation at the registrar "
                    "or in the parent zone."
                )
        if not self.answers:
            out.append(f"No parent server was asked about `{self.zone}`.")
        return tuple(out)


@dataclass(frozen=True)
class ResolverAnswer:
    """What one recursive resolver returns now; ``rrset.ttl`` is the remaining TTL of its cached copy."""

    resolver: ServerAddress
    name: str
    rtype: RecordType
    rrset: RRset | None = None
    remaining_ttl: int | None = None  # seconds until the cached answer (or cached "no record") expires
    detail: str = ""  # NXDOMAIN/NODATA, or what went wrong
    error: bool = False

    def follows(self, desired: RRset | None) -> bool:
        """The resolver already hands out ``desired``'s values (TTLs differ by nature)."""
        if self.error:
            return False
        if desired is None or self.rrset is None:
            return desired is None and self.rrset is None
        return self.rrset.values == desired.values

    def describe(self) -> str:
        if self.error:
            return f"{self.resolver}: {self.detail}"
        shown = ", ".join(self.rrset.values) if self.rrset else self.detail
        return f"{self.resolver}: {shown} (expires in {self.remaining_ttl}s)"


def clients_follow_within(answers: Sequence[ResolverAnswer], desired: RRset | None) -> int:
    """Seconds until every answering resolver's stale copy has expired (0 when all follow already)."""
    return max((a.remaining_ttl or 0 for a in answers if not a.error and not a.follows(desired)), default=0)


# --- discovery -----------------------------------------------------------------------


def discover_servers(
    zone: str,
    *,
    via: Sequence[ServerAddress],
    timeout: float = 2.0,
    resolvers: Sequence[ServerAddress] = (),
    port: int = DNS_PORT,
    ports: Mapping[str, int] | None = None,
) -> DiscoveredServers:
    """The zone's NS set, asked authoritatively from ``via`` (first that answers), with every address.

    Name servers inside the zone are looked up on the same authoritative servers; others (and
    in-zone ones that fail) through ``resolvers`` with recursion (none by default). Addresses
    get ``port``, or ``ports[ns name]`` (servers on non-standard ports, as in tests).
    Raises ProviderError when no server in ``via`` answers authoritatively with an NS set.
    """
    zone = normalize_name(zone)
    querier = DnsAuthoritativeQuerier(timeout)
    failures = []
    for server in via:
        answer = querier.query(server, zone, RecordType.NS)
        if answer.status is AnswerStatus.ANSWER and answer.rrset is not None:
            names = answer.rrset.values
            authoritative = [server, *(s for s in via if s != server)]
            return DiscoveredServers(
                zone, server, tuple(_nameserver(n, zone, authoritative, resolvers, timeout, port, ports) for n in names)
            )
        failures.append(f"{server}: {answer.describe()}")
    raise ProviderError(
        f"Could not learn the name servers of `{zone}`: {'; '.join(failures) or 'no server to ask'}.",
        hint="Point discovery at a server that is authoritative for the zone, or list the zone's servers in config.",
    )


def find_parent_servers(
    zone: str,
    *,
    resolvers: Sequence[ServerAddress],
    timeout: float = 2.0,
    port: int = DNS_PORT,
    ports: Mapping[str, int] | None = None,
) -> DiscoveredServers:
    """The servers of the zone that delegates ``zone``, found through recursive ``resolvers``.

    The parent is the zone whose SOA covers the name one label up (``example.com.`` for
    ``shop.example.com.``, ``co.uk.`` for ``example.co.uk.``). Raises ProviderError.
    """
    zone = normalize_name(zone)
    above = zone.split(".", 1)[1] or "."
    failures = []
    for resolver in resolvers:
        try:
            response = _ask(resolver, above, dns.rdatatype.SOA, recursive=True, timeout=timeout)
            soa = [r for r in (*response.answer, *response.authority) if r.rdtype == dns.rdatatype.SOA]
            if not soa:
                raise _NoAnswer(f"no SOA for `{above}`")
            parent = soa[0].name.to_text().lower()
            ns = _ask(resolver, parent, dns.rdatatype.NS, recursive=True, timeout=timeout)
            rrset = ns.get_rrset(ns.answer, dns.name.from_text(parent), dns.rdataclass.IN, dns.rdatatype.NS)
            if rrset is None:
                raise _NoAnswer(f"no NS set for the parent zone `{parent}`")
        except _NoAnswer as exc:
            failures.append(f"{resolver}: {exc}")
            continue
        names = sorted({r.to_text().lower() for r in rrset})
        return DiscoveredServers(
            parent, resolver, tuple(_nameserver(n, parent, (), resolvers, timeout, port, ports) for n in names)
        )
    raise ProviderError(
        f"Could not find the parent zone's servers for `{zone}`: {'; '.join(failures) or 'no resolver configured'}.",
        hint="Configure a recursive resolver for the delegation check, or list the parent servers explicitly.",
    )


def _nameserver(
    name: str,
    zone: str,
    authoritative: Sequence[ServerAddress],
    resolvers: Sequence[ServerAddress],
    timeout: float,
    port: int,
    ports: Mapping[str, int] | None,
) -> NameServer:
    in_zone = authoritative if is_subdomain(name, zone) else ()
    if not in_zone and not resolvers:
        return NameServer(name, (), "outside the zone, and no resolver is configured to look it up")
    try:
        addresses = DnsAddressResolver(authoritative=in_zone, resolvers=resolvers, timeout=timeout)(name)
    except ProviderError as exc:
        return NameServer(name, (), exc.message)
    server_port = (ports or {}).get(name, port)
    return NameServer(name, tuple(ServerAddress(a, server_port) for a in addresses))


# --- delegation ----------------------------------------------------------------------


def check_delegation(
    zone: str, *, parent_servers: Sequence[ServerAddress], expected_ns: Iterable[str], timeout: float = 2.0
) -> DelegationReport:
    """Ask each parent server (recursion off) which name servers it delegates ``zone`` to."""
    zone = normalize_name(zone)
    expected = frozenset(normalize_name(n) for n in expected_ns)
    return DelegationReport(zone, expected, tuple(_delegation(s, zone, timeout) for s in parent_servers))


def _delegation(server: ServerAddress, zone: str, timeout: float) -> ParentAnswer:
    try:
        response = _ask(server, zone, dns.rdatatype.NS, recursive=False, timeout=timeout, require_aa=False)
    except _NoAnswer as exc:
        return ParentAnswer(server, None, error=str(exc))
    owner = dns.name.from_text(zone)
    # A referral carries the NS set in the authority section; a server that also hosts the zone answers it.
    section = response.answer if response.flags & dns.flags.AA else response.authority
    rrset = response.get_rrset(section, owner, dns.rdataclass.IN, dns.rdatatype.NS)
    if rrset is None:
        rcode = dns.rcode.to_text(response.rcode())
        found = ", ".join(sorted({r.name.to_text() for r in response.authority})) or "nothing"
        return ParentAnswer(server, None, error=f"no NS set for `{zone}` ({rcode}; authority section: {found})")
    names = frozenset(r.to_text().lower() for r in rrset)
    glue = tuple(
        sorted(
            (r.name.to_text().lower(), rd.to_text())
            for r in response.additional
            if r.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) and r.name.to_text().lower() in names
            for rd in r
        )
    )
    return ParentAnswer(server, names, glue)


# --- resolvers -----------------------------------------------------------------------


def check_resolvers(
    name: str, rtype: RecordType, resolvers: Sequence[ServerAddress], timeout: float = 2.0
) -> list[ResolverAnswer]:
    """Ask each recursive resolver (recursion desired) what it returns for ``name``/``rtype`` and for how long."""
    name = normalize_name(name)
    return [_resolver_answer(r, name, rtype, timeout) for r in resolvers]


def _resolver_answer(resolver: ServerAddress, name: str, rtype: RecordType, timeout: float) -> ResolverAnswer:
    try:
        response = _ask(resolver, name, rdatatype(rtype), recursive=True, timeout=timeout)
    except _NoAnswer as exc:
        return ResolverAnswer(resolver, name, rtype, detail=str(exc), error=True)
    if not response.flags & dns.flags.RA:  # e.g. an authoritative-only server handing out a referral
        return ResolverAnswer(
            resolver, name, rtype, detail="answer without the RA flag: not a recursive resolver", error=True
        )
    found = find_answer(response, name, rtype)
    if found is None:  # a cached "no such record": its lifetime is the SOA's TTL in the authority section
        soa = [r.ttl for r in response.authority if r.rdtype == dns.rdatatype.SOA]
        rcode = "NXDOMAIN" if response.rcode() == dns.rcode.NXDOMAIN else "NODATA"
        return ResolverAnswer(resolver, name, rtype, remaining_ttl=soa[0] if soa else None, detail=rcode)
    try:
        rrset = from_rdataset(name, rtype, found)
    except Unrepresentable as exc:
        return ResolverAnswer(resolver, name, rtype, detail=f"returns {exc}", error=True)
    return ResolverAnswer(resolver, name, rtype, rrset, remaining_ttl=rrset.ttl)


# --- addresses -----------------------------------------------------------------------


class DnsAddressResolver:
    """A host's IPv4 and IPv6 addresses, following CNAMEs: authoritative servers first (AA required), then resolvers.

    Callable as ``resolve(name) -> tuple[str, ...]`` (the liveness probes' ``AddressResolver``);
    raises ProviderError when no server can say.
    """

    def __init__(
        self,
        *,
        authoritative: Sequence[ServerAddress] = (),
        resolvers: Sequence[ServerAddress] = (),
        timeout: float = 2.0,
    ) -> None:
        self.authoritative = tuple(authoritative)
        self.resolvers = tuple(resolvers)
        self.timeout = timeout

    def __call__(self, name: str) -> tuple[str, ...]:
        name = normalize_name(name)
        failures = []
        for servers, recursive in ((self.authoritative, False), (self.resolvers, True)):
            for server in servers:
                try:
                    return self._addresses(server, name, recursive)
                except _NoAnswer as exc:
                    failures.append(f"{server}: {exc}")
        raise ProviderError(
            f"Could not find the addresses of `{name}`: {'; '.join(failures) or 'no server to ask'}.",
            hint="Check the name, or configure a resolver that can look it up.",
        )

    def _addresses(self, server: ServerAddress, name: str, recursive: bool) -> tuple[str, ...]:
        current = name
        for _ in range(MAX_CNAME_CHAIN):
            addresses: list[str] = []
            follow: str | None = None
            for rtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                response = _ask(server, current, rtype, recursive=recursive, timeout=self.timeout)
                values, end = _chase(response, current, rtype)
                addresses += values
                if not values and end != current and response.rcode() == dns.rcode.NOERROR:
                    follow = end
            if addresses:
                return tuple(addresses)
            if follow is None:
                raise _NoAnswer(f"`{current}` has no A or AAAA record")
            current = follow
        raise _NoAnswer(f"more than {MAX_CNAME_CHAIN} CNAMEs from `{name}`")


def _chase(response: dns.message.Message, name: str, rtype: dns.rdatatype.RdataType) -> tuple[list[str], str]:
    """Values of ``rtype`` at the end of the CNAME chain starting at ``name`` within one response, and that end."""
    current = dns.name.from_text(name)
    for _ in range(MAX_CNAME_CHAIN):
        found = response.get_rrset(response.answer, current, dns.rdataclass.IN, rtype)
        if found is not None:
            return [r.to_text() for r in found], current.to_text().lower()
        alias = response.get_rrset(response.answer, current, dns.rdataclass.IN, dns.rdatatype.CNAME)
        if alias is None:
            break
        current = alias[0].target
    return [], current.to_text().lower()


# --- the wire ------------------------------------------------------------------------


class _NoAnswer(Exception):
    """One server gave no usable answer; the text says why, for people."""


def _ask(
    server: ServerAddress,
    name: str,
    rtype: dns.rdatatype.RdataType,
    *,
    recursive: bool,
    timeout: float,
    require_aa: bool = True,
) -> dns.message.Message:
    """One query, UDP then TCP when truncated. Without ``recursive`` the answer must carry AA (if required)."""
    query = dns.message.make_query(name, rtype, use_edns=0, payload=EDNS_PAYLOAD, flags=0)
    if recursive:
        query.flags |= dns.flags.RD
    deadline = time.monotonic() + timeout
    try:
        response = dns.query.udp(query, server.host, timeout=timeout, port=server.port)
        if response.flags & dns.flags.TC:
            remaining = max(deadline - time.monotonic(), 0.05)
            response = dns.query.tcp(query, server.host, timeout=remaining, port=server.port)
    except dns.exception.Timeout:
        raise _NoAnswer(f"no answer within {timeout:g}s") from None
    except OSError as exc:
        raise _NoAnswer(f"unreachable ({exc.strerror or type(exc).__name__})") from None
    except EOFError:
        raise _NoAnswer("connection closed before an answer") from None
    except ValueError:
        raise _NoAnswer(f"`{server.host}` is not an IP address") from None
    except dns.exception.DNSException as exc:
        raise _NoAnswer(f"bad response: {type(exc).__name__}") from None
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        raise _NoAnswer(dns.rcode.to_text(rcode))
    if not recursive and require_aa and not response.flags & dns.flags.AA:
        raise _NoAnswer("answer without the AA flag")
    return response


def _names(names: frozenset[str]) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names))
