"""Deciding whether authoritative servers serve the desired rrset. Pure: no sockets here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.liveness import LivenessReport
from core.records import RecordType, RRset


@dataclass(frozen=True)
class ServerAddress:
    host: str
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> ServerAddress:
        """``host``, ``host:port`` or ``[v6]:port``."""
        text = text.strip()
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            return cls(host, int(rest.lstrip(":") or 53))
        if text.count(":") == 1:
            host, port = text.split(":")
            return cls(host, int(port))
        return cls(text)


class AnswerStatus(StrEnum):
    ANSWER = "answer"  # authoritative answer with the rrset (possibly none: NODATA/NXDOMAIN)
    NOT_AUTHORITATIVE = "not_authoritative"
    ERROR = "error"  # timeout, refused, servfail...


@dataclass(frozen=True)
class ServerAnswer:
    server: ServerAddress
    name: str
    rtype: RecordType
    status: AnswerStatus
    rrset: RRset | None = None
    detail: str = ""  # rcode or error text, for people

    def describe(self) -> str:
        if self.status is not AnswerStatus.ANSWER:
            return self.detail or self.status.value
        return self.rrset.describe() if self.rrset else "(no record)"


def serves(answer: ServerAnswer, desired: RRset | None, *, match_ttl: bool = True) -> bool:
    """True when the server authoritatively serves exactly ``desired`` (values, and TTL unless told not to)."""
    if answer.status is not AnswerStatus.ANSWER:
        return False
    if match_ttl or answer.rrset is None or desired is None:
        return answer.rrset == desired
    return answer.rrset.values == desired.values


@dataclass(frozen=True)
class ServerResult:
    server: ServerAddress
    name: str
    rtype: RecordType
    served: bool
    seconds_to_serve: float | None
    last_answer: ServerAnswer


@dataclass(frozen=True)
class VerificationReport:
    results: tuple[ServerResult, ...]
    elapsed_seconds: float
    timeout_seconds: float

    @property
    def verified(self) -> bool:
        return bool(self.results) and all(r.served for r in self.results)

    def lagging(self) -> tuple[ServerResult, ...]:
        return tuple(r for r in self.results if not r.served)


@dataclass(frozen=True)
class ServerSet:
    """The servers that must serve a change; ``problems`` name NS hosts that could not be checked."""

    servers: tuple[ServerAddress, ...]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolverView:
    """What one recursive resolver hands to clients now, so responders know when they follow."""

    resolver: ServerAddress
    follows: bool
    description: str
    remaining_ttl: int | None


@dataclass(frozen=True)
class VerificationOutcome:
    """Everything verification found; ``recovered`` is the only verdict that declares recovery."""

    report: VerificationReport
    server_problems: tuple[str, ...] = ()
    liveness: tuple[LivenessReport, ...] = ()
    delegation_warnings: tuple[str, ...] = ()
    resolver_views: tuple[ResolverView, ...] = ()

    @property
    def served_everywhere(self) -> bool:
        return self.report.verified and not self.server_problems

    @property
    def live(self) -> bool | None:
        """None when no probe was configured."""
        return all(r.live for r in self.liveness) if self.liveness else None
