"""DnsZoneInspector: the ZoneInspector port over direct DNS queries (discovery, delegation, resolvers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from core.errors import ProviderError
from core.models import RRsetChange
from core.verification import ResolverView, ServerAddress, ServerSet
from providers.discovery import check_delegation, check_resolvers, discover_servers

DNS_PORT = 53


@dataclass(frozen=True)
class InspectionSettings:
    """Per zone: a fixed server list, or discovery from the zone's NS set; optional outside checks."""

    servers: tuple[ServerAddress, ...] = ()  # fixed list (hidden primaries, tests); used unless discover
    discover: bool = False
    discover_via: tuple[ServerAddress, ...] = ()  # authoritative servers to ask for the NS set
    ns_port: int = DNS_PORT
    ns_ports: Mapping[str, int] = field(default_factory=dict)  # NS name -> port, for non-standard ports
    parent_servers: tuple[ServerAddress, ...] = ()  # ask these for the delegation (empty: no check)
    resolvers: tuple[ServerAddress, ...] = ()  # recursive resolvers whose cache responders care about
    timeout: float = 2.0


class DnsZoneInspector:
    def __init__(self, zones: Mapping[str, InspectionSettings]) -> None:
        self._zones = dict(zones)

    def authoritative_servers(self, zone: str) -> ServerSet:
        settings = self._zones[zone]
        if not settings.discover:
            return ServerSet(settings.servers)
        try:
            found = discover_servers(
                zone,
                via=settings.discover_via or settings.servers,
                timeout=settings.timeout,
                resolvers=settings.resolvers,
                port=settings.ns_port,
                ports=settings.ns_ports,
            )
        except ProviderError as error:
            return ServerSet(settings.servers, (error.user_text(),))
        return ServerSet(found.servers, found.problems())

    def delegation_warnings(self, zone: str) -> tuple[str, ...]:
        settings = self._zones[zone]
        if not settings.parent_servers:
            return ()
        try:
            own = discover_servers(
                zone, via=settings.discover_via or settings.servers, timeout=settings.timeout, ports=settings.ns_ports
            )
        except ProviderError as error:
            return (error.user_text(),)
        report = check_delegation(
            zone, parent_servers=settings.parent_servers, expected_ns=own.ns_names, timeout=settings.timeout
        )
        return report.warnings()

    def resolver_views(self, change: RRsetChange) -> tuple[ResolverView, ...]:
        settings = self._zones[self._zone_of(change.name)]
        answers = check_resolvers(change.name, change.rtype, settings.resolvers, settings.timeout)
        return tuple(ResolverView(a.resolver, a.follows(change.after), a.describe(), a.remaining_ttl) for a in answers)

    def _zone_of(self, name: str) -> str:
        matches = [z for z in self._zones if name == z or name.endswith("." + z)]
        return max(matches, key=len)


def servers_of(texts: Sequence[str]) -> tuple[ServerAddress, ...]:
    return tuple(ServerAddress.parse(t) for t in texts)
