"""The "too much change" limit, after octoDNS: one request may not rewrite a large part of a zone at once.

In an emergency, a request that updates or deletes many of a zone's existing rrsets is far more
likely a mistake (a typo'd wildcard, a bulk paste) than an incident fix. The signed policy sets the
limit (``safety`` in docs/policy.md) and a rule may raise it for a pre-agreed bulk failover.
Creating records does not count: it rewrites nothing that is served.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

DEFAULT_MAX_CHANGE_FRACTION = Fraction(3, 10)  # octoDNS's MAX_SAFE_UPDATE_PCENT / MAX_SAFE_DELETE_PCENT
DEFAULT_MIN_ZONE_RRSETS = 10  # octoDNS's MIN_EXISTING_RECORDS
# Not counted among a zone's rrsets: its SOA, and the DNSSEC data a signer adds (octoDNS counts neither).
UNCOUNTED_TYPES = frozenset({"SOA", "RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "CDS", "CDNSKEY"})


def percent(fraction: Fraction) -> str:
    """``30%``, ``33.3%``: whole percents exactly, anything else to one decimal."""
    value = fraction * 100
    return f"{value.numerator}%" if value.denominator == 1 else f"{float(value):.1f}%"


@dataclass(frozen=True)
class ChangeLimit:
    """How much of a zone's existing rrsets one request may update or delete."""

    max_fraction: Fraction  # more than 0, at most 1 (1: no limit)
    min_zone_rrsets: int  # zones with fewer rrsets are not limited
    rules: tuple[str, ...]  # the policy rule(s) the limit comes from, for messages

    def needs_zone_size(self, changed: int) -> bool:
        """False when no zone could make ``changed`` updated or deleted rrsets too many: no need to count it."""
        return self.max_fraction < 1 and changed > self.max_fraction * self.min_zone_rrsets

    def enough(self, changed: int) -> int:
        """The zone size from which ``changed`` rrsets are within the limit: counting can stop there."""
        return max(self.min_zone_rrsets, math.ceil(changed / self.max_fraction))

    def allows(self, changed: int, zone_rrsets: int) -> bool:
        return zone_rrsets < self.min_zone_rrsets or changed <= self.max_fraction * zone_rrsets

    def most(self, zone_rrsets: int) -> int:
        """The most existing rrsets one request may update or delete in a zone of ``zone_rrsets``."""
        return zone_rrsets if zone_rrsets < self.min_zone_rrsets else math.floor(self.max_fraction * zone_rrsets)

    def always_allowed(self) -> int:
        """Requests updating or deleting at most this many rrsets pass in any zone, counted or not."""
        return math.floor(self.max_fraction * self.min_zone_rrsets)
