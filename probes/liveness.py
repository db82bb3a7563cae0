"""Liveness probes over real sockets: TCP connect, HTTP(S) status, TLS certificate name.

Only the addresses given are ever contacted: the new rrset's A/AAAA values, or the
addresses a CNAME target resolves to (through an injected resolver). Every probe has its
own deadline, and each network step gets only what is left of it, so a slow or silent
target cannot hold verification up for longer than the probe's timeout (plus one TLS
handshake step at worst). Failures become results that name the cause, never exceptions.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from cryptography import x509

from core.errors import BreakglassError
from core.liveness import (
    AddressResolver,
    HttpProbe,
    HttpScheme,
    LivenessReport,
    Probe,
    ProbeResult,
    TcpProbe,
    TlsNameProbe,
)
from core.records import RecordType, RRset

MAX_WORKERS = 8
_STATUS_LINE_MAX = 8192
_PROBED_TYPES = (RecordType.A, RecordType.AAAA, RecordType.CNAME)


class _Failed(Exception):
    """A probe failed for a reason already worded for people."""


class _NotProbed(BreakglassError):
    """The rrset gives nothing to probe (wrong type, CNAME target without addresses)."""


def probe_rrset(rrset: RRset, probes: Sequence[Probe], *, resolve: AddressResolver | None = None) -> LivenessReport:
    """Probe the targets of a new rrset: its A/AAAA addresses, or what its CNAME target resolves to."""
    try:
        targets = probe_targets(rrset, resolve)
    except BreakglassError as exc:
        return LivenessReport(rrset.name, (), (), problem=exc.user_text())
    return run_probes(targets, probes, name=rrset.name)


def probe_targets(rrset: RRset, resolve: AddressResolver | None = None) -> tuple[str, ...]:
    """The addresses a client following ``rrset`` would connect to; raises BreakglassError if unknown."""
    if rrset.rtype not in _PROBED_TYPES:
        raise _NotProbed(f"Liveness probes apply to A, AAAA and CNAME records, not {rrset.rtype.value}.")
    if rrset.rtype is not RecordType.CNAME:
        return rrset.values
    target = rrset.values[0]
    if resolve is None:
        raise _NotProbed(f"No resolver is configured to find the addresses of the CNAME target `{target}`.")
    addresses = tuple(dict.fromkeys(resolve(target)))
    if not addresses:
        raise _NotProbed(f"The CNAME target `{target}` has no A or AAAA record, so nothing can be probed.")
    return addresses


def run_probes(targets: Sequence[str], probes: Sequence[Probe], *, name: str) -> LivenessReport:
    """Run every probe against every target, concurrently; ``name`` is the record (Host header, TLS name)."""
    if not targets:
        return LivenessReport(name, (), (), problem="No target address to probe.")
    if not probes:
        return LivenessReport(name, tuple(targets), (), problem="No liveness probe is configured.")
    jobs = [(target, probe) for target in targets for probe in probes]
    with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(jobs)), thread_name_prefix="probe") as pool:
        results = tuple(pool.map(lambda job: probe_one(job[0], job[1], name=name), jobs))
    return LivenessReport(name, tuple(targets), results)


def probe_one(target: str, probe: Probe, *, name: str) -> ProbeResult:
    """One probe against one IP address; never raises for network failures."""
    started = time.monotonic()
    deadline = started + probe.timeout
    try:
        _require_ip(target)
        if isinstance(probe, TcpProbe):
            detail = _tcp(target, probe, deadline)
        elif isinstance(probe, HttpProbe):
            detail = _http(target, probe, _host_name(probe.host or name), deadline)
        else:
            detail = _tls_name(target, probe, _host_name(probe.server_name or name), deadline)
        ok = True
    except _Failed as exc:
        ok, detail = False, str(exc)
    except TimeoutError:
        ok, detail = False, f"no answer within {probe.timeout:g}s"
    except OSError as exc:
        ok, detail = False, _os_error_text(exc)
    return ProbeResult(target, probe, ok, detail, time.monotonic() - started)


# --- the probes ----------------------------------------------------------------------


def _tcp(target: str, probe: TcpProbe, deadline: float) -> str:
    with _connect(target, probe.port, deadline):
        return "connected"


def _http(target: str, probe: HttpProbe, host: str, deadline: float) -> str:
    port = probe.effective_port
    default_port = 443 if probe.scheme is HttpScheme.HTTPS else 80
    host_header = host if port == default_port else f"{host}:{port}"
    sock = _connect(target, port, deadline)
    try:
        if probe.scheme is HttpScheme.HTTPS:
            sock = _tls_wrap(sock, target, port, host, probe.verify_tls, probe.ca_file, deadline)
        status, line = _http_status(sock, host_header, probe.path, deadline)
    finally:
        sock.close()
    low, high = probe.expect_status
    if not low <= status <= high:
        raise _Failed(f"HTTP {status} (expected {low}-{high}): {line}")
    return f"HTTP {status}"


def _tls_name(target: str, probe: TlsNameProbe, server_name: str, deadline: float) -> str:
    raw = _connect(target, probe.port, deadline)
    try:
        with _tls_wrap(raw, target, probe.port, server_name, True, probe.ca_file, deadline) as tls:
            cert = tls.getpeercert()
    finally:
        raw.close()
    san = (cert or {}).get("subjectAltName", ())
    names = [str(entry[1]) for entry in san if isinstance(entry, tuple) and entry[0] in ("DNS", "IP Address")]
    detail = f"certificate valid for {server_name} (names: {', '.join(names) or 'none'}"
    not_after = (cert or {}).get("notAfter")
    if isinstance(not_after, str):
        days = (ssl.cert_time_to_seconds(not_after) - time.time()) / 86400
        detail += f"; expires in {days:.0f} days"
    return detail + ")"


# --- sockets -------------------------------------------------------------------------


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _connect(target: str, port: int, deadline: float) -> socket.socket:
    return socket.create_connection((target, port), timeout=_remaining(deadline))


def _tls_wrap(
    sock: socket.socket,
    target: str,
    port: int,
    server_name: str,
    verify: bool,
    ca_file: str | None,
    deadline: float,
) -> ssl.SSLSocket:
    """TLS with SNI = ``server_name``; when verifying, the chain must be trusted and name ``server_name``."""
    context = _context(verify, ca_file)
    sock.settimeout(_remaining(deadline))
    try:
        return context.wrap_socket(sock, server_hostname=server_name)
    except ssl.SSLCertVerificationError as exc:
        names = _certificate_names(target, port, server_name, deadline)
        raise _Failed(
            f"certificate rejected for {server_name}: {exc.verify_message or exc.reason}; it names {names}"
        ) from None
    except ssl.SSLError as exc:
        raise _Failed(f"TLS handshake failed: {exc.reason or exc}") from None


def _context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise _Failed(f"cannot load the CA file `{ca_file}`: {exc}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _certificate_names(target: str, port: int, server_name: str, deadline: float) -> str:
    """The names on the certificate the target presents, fetched without verification, for the message."""
    context = _context(False, None)
    try:
        with _connect(target, port, deadline) as raw:
            raw.settimeout(_remaining(deadline))
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return "(could not read the certificate)"
    if not der:
        return "(no certificate)"
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.DNSName), *map(str, san.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return ", ".join(names) or "(no names)"


def _http_status(sock: socket.socket, host: str, path: str, deadline: float) -> tuple[int, str]:
    """Send a GET and read only the status line, each step bounded by the deadline."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: breakglass-liveness-probe\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    )
    sock.settimeout(_remaining(deadline))
    sock.sendall(request.encode("ascii", errors="replace"))
    data = b""
    while b"\r\n" not in data:
        sock.settimeout(_remaining(deadline))
        chunk = sock.recv(1024)
        if not chunk:
            raise _Failed("connection closed before an HTTP response")
        data += chunk
        if len(data) > _STATUS_LINE_MAX:
            raise _Failed("no HTTP status line in the first 8 KiB")
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise _Failed(f"not an HTTP response: {line[:80]!r}")
    return int(parts[1]), line


# --- small helpers -------------------------------------------------------------------


def _require_ip(target: str) -> None:
    try:
        ipaddress.ip_address(target)
    except ValueError:
        raise _Failed(f"`{target}` is not an IP address; only the record's own addresses are probed") from None


def _host_name(name: str) -> str:
    """DNS names end with a dot; Host headers and TLS server names do not."""
    return name.rstrip(".")


def _os_error_text(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the target"
    return exc.strerror or type(exc).__name__


class RecordProber:
    """The LivenessProber port: probes a record's new targets, resolving CNAMEs with ``resolve``."""

    def __init__(self, resolve: AddressResolver | None = None) -> None:
        self._resolve = resolve

    def probe(self, rrset: RRset, probes: Sequence[Probe]) -> LivenessReport:
        return probe_rrset(rrset, probes, resolve=self._resolve)
