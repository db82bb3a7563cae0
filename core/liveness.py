"""Liveness probes: is the new target actually up? Pure types, no sockets here.

A change can be served by every authoritative server and still send traffic to a dead
address. Probes check the targets of the new rrset (and only those) so that the thread
can say "verified, but not live" instead of declaring recovery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.errors import InvalidInput

# Looks up the IP addresses of a host name (a CNAME target); raises BreakglassError when it cannot.
AddressResolver = Callable[[str], Sequence[str]]


def _check_port(port: int) -> None:
    if not 1 <= port <= 65535:
        raise InvalidInput(f"Probe port {port} is out of range.", hint="Use 1 to 65535.")


def _check_timeout(timeout: float) -> None:
    if not timeout > 0:
        raise InvalidInput(f"Probe timeout {timeout} must be positive.", hint="Example: timeout = 3")


@dataclass(frozen=True)
class TcpProbe:
    """The target accepts a TCP connection on ``port``."""

    port: int
    timeout: float = 3.0

    def __post_init__(self) -> None:
        _check_port(self.port)
        _check_timeout(self.timeout)

    def describe(self) -> str:
        return f"tcp/{self.port}"


class HttpScheme(StrEnum):
    HTTP = "http"
    HTTPS = "https"


@dataclass(frozen=True)
class HttpProbe:
    """A GET of ``path`` on the target answers with a status in ``expect_status`` (inclusive).

    ``host`` (Host header, and TLS server name for https) defaults to the record's name, so
    the target is asked for the site the record serves. ``ca_file`` replaces the system trust
    store (an internal CA); ``verify_tls=False`` only checks that HTTPS answers at all.
    """

    scheme: HttpScheme = HttpScheme.HTTPS
    port: int | None = None  # 80 or 443 by scheme
    path: str = "/"
    expect_status: tuple[int, int] = (200, 399)
    host: str | None = None
    timeout: float = 5.0
    verify_tls: bool = True
    ca_file: str | None = None

    def __post_init__(self) -> None:
        _check_port(self.effective_port)
        _check_timeout(self.timeout)
        if not self.path.startswith("/") or not self.path.isprintable() or " " in self.path:
            raise InvalidInput(
                f"Probe path `{self.path}` must start with `/` and hold no spaces.", hint="Example: /healthz"
            )
        if self.host is not None and (not self.host.isprintable() or " " in self.host or not self.host):
            raise InvalidInput(f"Probe host `{self.host}` is not a host name.", hint="Example: www.example.com")
        low, high = self.expect_status
        if not 100 <= low <= high <= 599:
            raise InvalidInput(
                f"Expected status range {low}-{high} is not valid.", hint="Example: expect_status = [200, 299]"
            )

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 443 if self.scheme is HttpScheme.HTTPS else 80

    def describe(self) -> str:
        return f"{self.scheme.value}/{self.effective_port}{self.path}"


@dataclass(frozen=True)
class TlsNameProbe:
    """The target's certificate is trusted and valid for ``server_name`` (default: the record's name)."""

    port: int = 443
    server_name: str | None = None
    timeout: float = 5.0
    ca_file: str | None = None

    def __post_init__(self) -> None:
        _check_port(self.port)
        _check_timeout(self.timeout)

    def describe(self) -> str:
        return f"tls/{self.port}"


Probe = TcpProbe | HttpProbe | TlsNameProbe


@dataclass(frozen=True)
class ProbeResult:
    target: str  # the IP address probed
    probe: Probe
    ok: bool
    detail: str  # status code, error, certificate names: for people
    seconds: float

    def describe(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return f"{self.target} {self.probe.describe()}: {verdict}, {self.detail} ({self.seconds:.2f}s)"


@dataclass(frozen=True)
class LivenessReport:
    """What the probes found for one record; ``problem`` says why nothing (more) could be probed."""

    name: str
    targets: tuple[str, ...]
    results: tuple[ProbeResult, ...]
    problem: str = ""

    @property
    def live(self) -> bool:
        """Every probe passed on every target, and there was something to probe."""
        return not self.problem and bool(self.results) and all(r.ok for r in self.results)

    def failures(self) -> tuple[ProbeResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    def describe(self) -> str:
        lines = [f"{self.name}: {'live' if self.live else 'NOT live'}"]
        if self.problem:
            lines.append(f"  {self.problem}")
        lines += [f"  {r.describe()}" for r in self.results]
        return "\n".join(lines)
