"""Ask one authoritative server directly what it serves, as verification needs it.

Recursion is off and the AA flag is required, so a cache or a forwarder can never
make a change look served. DNS-level failures become ``ServerAnswer``s, not
exceptions, because verification keeps polling until its own deadline.
"""

from __future__ import annotations

import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode

from core.records import RecordType, normalize_name
from core.verification import AnswerStatus, ServerAddress, ServerAnswer
from providers.dnswire import Unrepresentable, find_answer, from_rdataset, make_query


class DnsAuthoritativeQuerier:
    """UDP with the RD flag cleared, TCP when the answer is truncated; ``timeout_seconds`` covers both."""

    def __init__(self, timeout_seconds: float = 2.0) -> None:
        self.timeout_seconds = timeout_seconds

    def query(self, server: ServerAddress, name: str, rtype: RecordType) -> ServerAnswer:
        name = normalize_name(name)

        def failed(detail: str) -> ServerAnswer:
            return ServerAnswer(server, name, rtype, AnswerStatus.ERROR, detail=detail)

        try:
            response = self._exchange(server, make_query(name, rtype))
        except dns.exception.Timeout:
            return failed(f"no answer within {self.timeout_seconds:g}s")
        except OSError as exc:
            return failed(f"unreachable ({exc.strerror or type(exc).__name__})")
        except EOFError:
            return failed("connection closed before an answer")
        except ValueError:
            return failed(f"`{server.host}` is not an IP address")
        except dns.exception.DNSException as exc:
            return failed(f"bad response: {type(exc).__name__}")

        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return failed(dns.rcode.to_text(rcode))
        if not response.flags & dns.flags.AA:
            return ServerAnswer(
                server, name, rtype, AnswerStatus.NOT_AUTHORITATIVE, detail="answer without the AA flag"
            )
        if rcode == dns.rcode.NXDOMAIN:
            return ServerAnswer(server, name, rtype, AnswerStatus.ANSWER, detail="NXDOMAIN")
        found = find_answer(response, name, rtype)
        if found is None:
            return ServerAnswer(server, name, rtype, AnswerStatus.ANSWER, detail="NODATA")
        try:
            rrset = from_rdataset(name, rtype, found)
        except Unrepresentable as exc:
            return failed(f"serves {exc}")
        return ServerAnswer(server, name, rtype, AnswerStatus.ANSWER, rrset=rrset)

    def _exchange(self, server: ServerAddress, query: dns.message.Message) -> dns.message.Message:
        deadline = time.monotonic() + self.timeout_seconds
        response = dns.query.udp(query, server.host, timeout=self.timeout_seconds, port=server.port)
        if response.flags & dns.flags.TC:
            remaining = max(deadline - time.monotonic(), 0.05)
            response = dns.query.tcp(query, server.host, timeout=remaining, port=server.port)
        return response
