"""Liveness probes against real listeners on loopback: TCP, HTTP, HTTPS with a throwaway CA, silence, refusal."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.errors import InvalidInput
from core.liveness import HttpProbe, HttpScheme, LivenessReport, TcpProbe, TlsNameProbe
from core.records import RecordType, RRset
from probes.liveness import probe_rrset, run_probes
from sandbox.net import LOOPBACK, free_port

NAME = "www.example.test."


# --- throwaway PKI and listeners ------------------------------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(directory: Path, leaf_names: list[str]) -> tuple[Path, Path, Path]:
    """A CA and a leaf certificate for ``leaf_names``; returns (ca.pem, leaf.pem, leaf.key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("breakglass test CA"))
        .issuer_name(_name("breakglass test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # key_cert_sign, crl_sign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(leaf_names[0]))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in leaf_names]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


class Handler(BaseHTTPRequestHandler):
    """``/ok`` answers 200, ``/broken`` 500, anything else 404; remembers the Host headers it saw."""

    hosts: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        Handler.hosts.append(self.headers.get("Host", ""))
        status = {"/ok": 200, "/broken": 500}.get(self.path, 404)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Listeners:
    http_port: int
    https_port: int
    silent_port: int  # accepts connections (kernel backlog) but never answers
    closed_port: int  # nothing listens
    ca_file: str


@pytest.fixture(scope="module")
def listeners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listeners]:
    ca_file, leaf, key = make_pki(tmp_path_factory.mktemp("pki"), ["www.example.test", "www-alt.example.test"])
    http = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    https = ThreadingHTTPServer((LOOPBACK, 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf, key)
    https.socket = context.wrap_socket(https.socket, server_side=True)
    silent = socket.create_server((LOOPBACK, 0), backlog=16)
    servers = [http, https]
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield Listeners(
            http.server_address[1], https.server_address[1], silent.getsockname()[1], free_port(), str(ca_file)
        )
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        silent.close()


def only(report: LivenessReport) -> str:
    """The single result's detail, after checking there is exactly one."""
    assert len(report.results) == 1, report.describe()
    return report.results[0].detail


# --- TCP -------------------------------------------------------------------------------


def test_open_port_is_live_and_closed_port_is_refused(listeners: Listeners) -> None:
    up = run_probes([LOOPBACK], [TcpProbe(listeners.http_port, timeout=2)], name=NAME)
    assert up.live, up.describe()
    down = run_probes([LOOPBACK], [TcpProbe(listeners.closed_port, timeout=2)], name=NAME)
    assert not down.live
    assert only(down) == "connection refused"


def test_ipv6_target() -> None:
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as listener:
        report = run_probes(["::1"], [TcpProbe(listener.getsockname()[1], timeout=2)], name=NAME)
    assert report.live, report.describe()
    assert report.results[0].target == "::1"


def test_every_target_is_probed_and_one_dead_target_makes_the_record_not_live(listeners: Listeners) -> None:
    probes = [TcpProbe(listeners.http_port, timeout=2), TcpProbe(listeners.closed_port, timeout=2)]
    report = run_probes([LOOPBACK, "::1"], probes, name=NAME)
    assert [(r.target, r.probe.port) for r in report.results] == [
        (LOOPBACK, listeners.http_port),
        (LOOPBACK, listeners.closed_port),
        ("::1", listeners.http_port),  # the listener is on 127.0.0.1 only
        ("::1", listeners.closed_port),
    ]
    assert [r.ok for r in report.results] == [True, False, False, False]
    assert not report.live
    assert len(report.failures()) == 3


# --- HTTP ------------------------------------------------------------------------------


def test_http_200_is_live_and_sends_the_record_name_as_host(listeners: Listeners) -> None:
    Handler.hosts.clear()
    probe = HttpProbe(HttpScheme.HTTP, listeners.http_port, "/ok", timeout=2)
    report = run_probes([LOOPBACK], [probe], name=NAME)
    assert report.live, report.describe()
    assert only(report) == "HTTP 200"
    assert Handler.hosts == [f"www.example.test:{listeners.http_port}"]


def test_http_500_is_not_live_and_names_the_status(listeners: Listeners) -> None:
    probe = HttpProbe(HttpScheme.HTTP, listeners.http_port, "/broken", timeout=2)
    report = run_probes([LOOPBACK], [probe], name=NAME)
    assert not report.live
    assert only(report).startswith("HTTP 500 (expected 200-399)")


def test_expected_status_range_is_configurable(listeners: Listeners) -> None:
    probe = HttpProbe(HttpScheme.HTTP, listeners.http_port, "/missing", expect_status=(404, 404), timeout=2)
    assert run_probes([LOOPBACK], [probe], name=NAME).live


def test_silent_server_times_out_within_the_probe_timeout(listeners: Listeners) -> None:
    http = HttpProbe(HttpScheme.HTTP, listeners.silent_port, "/ok", timeout=0.3)
    tls = TlsNameProbe(listeners.silent_port, timeout=0.3)  # stuck in the TLS handshake instead
    report = run_probes([LOOPBACK], [http, tls], name=NAME)
    assert not report.live
    for result in report.results:
        assert result.detail == "no answer within 0.3s"
        assert 0.3 <= result.seconds < 10  # gave up: bounded by the probe's own deadline


# --- HTTPS and certificate names -------------------------------------------------------


def test_https_with_a_certificate_for_the_record_name_is_live(listeners: Listeners) -> None:
    probe = HttpProbe(HttpScheme.HTTPS, listeners.https_port, "/ok", timeout=3, ca_file=listeners.ca_file)
    tls = TlsNameProbe(listeners.https_port, timeout=3, ca_file=listeners.ca_file)
    report = run_probes([LOOPBACK], [probe, tls], name=NAME)
    assert report.live, report.describe()
    assert report.results[0].detail == "HTTP 200"
    assert report.results[1].detail.startswith(
        "certificate valid for www.example.test (names: www.example.test, www-alt.example.test; expires in"
    )


def test_tls_name_mismatch_fails_and_names_the_certificate_names(listeners: Listeners) -> None:
    tls = TlsNameProbe(listeners.https_port, timeout=3, ca_file=listeners.ca_file)
    report = run_probes([LOOPBACK], [tls], name="api.example.test.")
    assert not report.live
    detail = only(report)
    assert detail.startswith("certificate rejected for api.example.test: Hostname mismatch")
    assert detail.endswith("it names www.example.test, www-alt.example.test")


def test_untrusted_certificate_fails_unless_verification_is_off(listeners: Listeners) -> None:
    untrusted = run_probes([LOOPBACK], [TlsNameProbe(listeners.https_port, timeout=3)], name=NAME)  # system CAs
    assert not untrusted.live
    assert "unable to get local issuer certificate" in only(untrusted)
    unverified = HttpProbe(HttpScheme.HTTPS, listeners.https_port, "/ok", timeout=3, verify_tls=False)
    assert run_probes([LOOPBACK], [unverified], name=NAME).live


def test_https_against_a_plain_http_port_fails_the_handshake(listeners: Listeners) -> None:
    probe = HttpProbe(HttpScheme.HTTPS, listeners.http_port, "/ok", timeout=2, ca_file=listeners.ca_file)
    assert only(run_probes([LOOPBACK], [probe], name=NAME)).startswith("TLS handshake failed")


# --- what gets probed ------------------------------------------------------------------


def test_cname_target_is_resolved_and_only_its_addresses_are_probed(listeners: Listeners) -> None:
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return {"lb.example.test.": [LOOPBACK]}.get(host, [])

    cname = RRset.build("api.example.test.", RecordType.CNAME, 60, ["lb.example.test."])
    report = probe_rrset(cname, [TcpProbe(listeners.http_port, timeout=2)], resolve=resolve)
    assert asked == ["lb.example.test."]
    assert (report.live, report.targets) == (True, (LOOPBACK,))

    dangling = RRset.build("api.example.test.", RecordType.CNAME, 60, ["gone.example.test."])
    report = probe_rrset(dangling, [TcpProbe(listeners.http_port, timeout=2)], resolve=resolve)
    assert (report.live, report.results) == (False, ())
    assert "has no A or AAAA record" in report.problem


def test_a_records_are_probed_as_given(listeners: Listeners) -> None:
    rrset = RRset.build(NAME, RecordType.A, 60, [LOOPBACK])
    report = probe_rrset(rrset, [TcpProbe(listeners.http_port, timeout=2)])
    assert report.live and report.targets == (LOOPBACK,)


def test_nothing_but_ip_addresses_is_probed_and_other_types_are_not_probed() -> None:
    report = run_probes(["localhost"], [TcpProbe(9, timeout=1)], name=NAME)
    assert only(report) == "`localhost` is not an IP address; only the record's own addresses are probed"
    txt = probe_rrset(RRset.build(NAME, RecordType.TXT, 60, ["v=spf1 -all"]), [TcpProbe(9)])
    assert not txt.live and "apply to A, AAAA and CNAME records" in txt.problem
    assert not run_probes([LOOPBACK], [], name=NAME).live  # no probe configured is no evidence of life


def test_probe_specs_reject_bad_config() -> None:
    with pytest.raises(InvalidInput):
        TcpProbe(70000)
    with pytest.raises(InvalidInput):
        HttpProbe(path="healthz")
    with pytest.raises(InvalidInput):
        HttpProbe(path="/ok HTTP/1.1\r\nX: y")
    with pytest.raises(InvalidInput):
        HttpProbe(expect_status=(500, 200))
    with pytest.raises(InvalidInput):
        TlsNameProbe(timeout=0)
    assert HttpProbe().effective_port == 443 and HttpProbe(HttpScheme.HTTP).effective_port == 80
