"""DNS names, record types and rrsets, validated and normalised without any DNS library."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum

from core.errors import InvalidInput

MIN_TTL = 1
MAX_TTL = 2_147_483_647
MAX_TXT_LENGTH = 4000
_LABEL = re.compile(r"^(?!-)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


class RecordType(StrEnum):
    A = "A"
    AAAA = "AAAA"
    CNAME = "CNAME"
    TXT = "TXT"
    MX = "MX"
    SRV = "SRV"
    NS = "NS"

    @classmethod
    def parse(cls, text: str) -> RecordType:
        try:
            return cls(text.upper())
        except ValueError:
            supported = ", ".join(t.value for t in cls)
            raise InvalidInput(f"Record type `{text}` is not supported.", hint=f"Use one of: {supported}.") from None


def normalize_name(text: str) -> str:
    """Lower-case, absolute (trailing dot) form of a DNS name; raises InvalidInput."""
    name = text.strip().lower()
    if not name or name == ".":
        raise InvalidInput("A record name is required.", hint="Example: api.example.com")
    if not name.endswith("."):
        name += "."
    labels = name[:-1].split(".")
    if len(name) > 254 or any(not _LABEL.match(label) for label in labels):
        raise InvalidInput(
            f"`{text}` is not a valid DNS name.",
            hint="Use letters, digits, hyphens and dots, e.g. api.example.com",
        )
    return name


def is_subdomain(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


def normalize_value(rtype: RecordType, text: str) -> str:
    """Canonical presentation of one record value; TXT values are kept as plain text."""
    if rtype is RecordType.A:
        try:
            return str(ipaddress.IPv4Address(text.strip()))
        except ValueError:
            raise InvalidInput(f"`{text}` is not an IPv4 address.", hint="Example: 203.0.113.10") from None
    if rtype is RecordType.AAAA:
        try:
            return str(ipaddress.IPv6Address(text.strip()))
        except ValueError:
            raise InvalidInput(f"`{text}` is not an IPv6 address.", hint="Example: 2001:db8::10") from None
    if rtype in (RecordType.CNAME, RecordType.NS):
        return normalize_name(text)
    if rtype is RecordType.MX:
        return _numbers_then_host(text, 1, "MX", "10 mail.example.com")
    if rtype is RecordType.SRV:
        return _numbers_then_host(text, 3, "SRV", "10 5 443 svc.example.com")
    if len(text.encode()) > MAX_TXT_LENGTH:
        raise InvalidInput(f"TXT value is longer than {MAX_TXT_LENGTH} bytes.")
    if not text.isprintable():
        raise InvalidInput("TXT values may only hold printable characters.")
    return text


def _numbers_then_host(text: str, count: int, what: str, example: str) -> str:
    """MX/SRV: ``count`` 16-bit numbers then a host name, in canonical spacing."""
    parts = text.split()
    numbers, host = parts[:-1], parts[-1:] if parts else []
    if len(numbers) != count or not host or not all(n.isascii() and n.isdigit() and int(n) <= 65535 for n in numbers):
        raise InvalidInput(f"`{text}` is not a valid {what} value.", hint=f'Example: "{example}" (in quotes).')
    return " ".join([*(str(int(n)) for n in numbers), normalize_name(host[0])])


def target_host(rtype: RecordType, value: str) -> str | None:
    """The host name a record points at (CNAME/NS/MX/SRV), for target allow-lists."""
    if rtype in (RecordType.CNAME, RecordType.NS):
        return value
    if rtype in (RecordType.MX, RecordType.SRV):
        return value.split()[-1]
    return None


def check_ttl(ttl: int) -> int:
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidInput(f"TTL {ttl} is out of range.", hint=f"Use {MIN_TTL} to {MAX_TTL} seconds.")
    return ttl


@dataclass(frozen=True)
class RRset:
    """All records of one name and type, with values sorted so equal sets compare equal."""

    name: str
    rtype: RecordType
    ttl: int
    values: tuple[str, ...]

    @classmethod
    def build(cls, name: str, rtype: RecordType, ttl: int, values: list[str] | tuple[str, ...]) -> RRset:
        if not values:
            raise InvalidInput(f"No value given for {name} {rtype}.")
        normalized = tuple(sorted({normalize_value(rtype, v) for v in values}))
        if rtype is RecordType.CNAME and len(normalized) > 1:
            raise InvalidInput("A CNAME can have only one target.")
        return cls(normalize_name(name), rtype, check_ttl(ttl), normalized)

    def describe(self) -> str:
        shown = [f'"{v}"' if self.rtype is RecordType.TXT else v for v in self.values]
        return f"{' '.join(shown)} (ttl {self.ttl})"
