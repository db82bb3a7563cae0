"""Conversions between dnspython and the core's canonical rrsets, shared by the DNS adapters.

One place decides how a TXT record's character-strings map to the core's single
plain-text value, so that what the querier sees and what the change path writes agree.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

from core.errors import InvalidInput
from core.records import RecordType, RRset

TXT_STRING_MAX = 255  # bytes in one DNS character-string
EDNS_PAYLOAD = 1232  # avoids IP fragmentation; larger answers come back truncated and go to TCP


class Unrepresentable(ValueError):
    """The server holds a value the core cannot express (e.g. a TXT with control characters)."""


def rdatatype(rtype: RecordType) -> dns.rdatatype.RdataType:
    return dns.rdatatype.RdataType.make(rtype.value)


def txt_strings(value: str) -> list[bytes]:
    """Split a TXT value into 255-byte character-strings (bytes, so multi-byte characters survive)."""
    data = value.encode()
    return [data[i : i + TXT_STRING_MAX] for i in range(0, len(data), TXT_STRING_MAX)] or [b""]


def to_rdata(rtype: RecordType, value: str) -> dns.rdata.Rdata:
    if rtype is RecordType.TXT:
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, txt_strings(value))
    return dns.rdata.from_text(dns.rdataclass.IN, rdatatype(rtype), value)


def to_rdataset(rrset: RRset) -> dns.rdataset.Rdataset:
    """The core rrset as dnspython rdata, with its TTL."""
    return dns.rdataset.from_rdata_list(rrset.ttl, [to_rdata(rrset.rtype, v) for v in rrset.values])


def value_of(rtype: RecordType, rdata: dns.rdata.Rdata) -> str:
    """One record's value in presentation form; TXT strings are joined into one text."""
    if rtype is RecordType.TXT:
        assert isinstance(rdata, dns.rdtypes.ANY.TXT.TXT)
        try:
            return b"".join(rdata.strings).decode()
        except UnicodeDecodeError:
            raise Unrepresentable("a TXT value that is not UTF-8 text") from None
    return str(rdata.to_text())


def from_rdataset(name: str, rtype: RecordType, rdataset: dns.rdataset.Rdataset) -> RRset:
    """The core's canonical rrset for what a server returned (sorted values, lower-case names)."""
    try:
        return RRset.build(name, rtype, rdataset.ttl, [value_of(rtype, r) for r in rdataset])
    except InvalidInput as exc:
        raise Unrepresentable(exc.message) from None


def make_query(name: str, rtype: RecordType) -> dns.message.QueryMessage:
    """A query with recursion-desired cleared: we ask the authoritative server itself."""
    return dns.message.make_query(name, rdatatype(rtype), use_edns=0, payload=EDNS_PAYLOAD, flags=0)


def find_answer(response: dns.message.Message, name: str, rtype: RecordType) -> dns.rrset.RRset | None:
    """The answer rrset for exactly ``name``/``rtype`` (a CNAME at ``name`` is not an A answer)."""
    return response.get_rrset(response.answer, dns.name.from_text(name), dns.rdataclass.IN, rdatatype(rtype))
