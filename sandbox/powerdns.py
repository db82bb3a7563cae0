"""A local PowerDNS Authoritative server (SQLite backend) with its HTTP API and RFC2136 both on.

One server gives two change paths with separate trust: the HTTP API (an API key) and
TSIG-signed dynamic updates (a TSIG key). That is what failover tests need: one path's
credentials can be refused while the other still works, against the same zone data.

It imports ``core.verification.ServerAddress`` (pure, no I/O) so that callers can hand the
DNS address straight to a querier or a change path.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT

from core.verification import ServerAddress
from sandbox.bind import SeedRecord
from sandbox.net import LOOPBACK, free_port, wait_until

PDNS_SERVER = Path("/usr/sbin/pdns_server")
SCHEMA = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql")
INSTALL_HINT = "install PowerDNS with `apt-get install pdns-server pdns-backend-sqlite3`"

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only: never via a proxy


class PowerDnsServer:
    """``pdns_server`` on loopback with the zones created through its API; ``start()``/``stop()`` or ``with``.

    Seed records are ``(absolute name, type, ttl, value)``; a TXT value is plain text (it is
    quoted and split into 255-byte strings here), any other value is PowerDNS content.
    """

    def __init__(
        self,
        zones: Sequence[str] = ("example.test.",),
        records: Sequence[SeedRecord] = (),
        *,
        tsig_key_name: str = "breakglass-pdns.",
        tsig_algorithm: str = "hmac-sha256",
    ) -> None:
        if not zones:
            raise ValueError("PowerDnsServer needs at least one zone")
        self.zones = [_absolute(z) for z in zones]
        self.records = list(records)
        self.api_key = secrets.token_urlsafe(24)
        self.tsig_key_name = _absolute(tsig_key_name)
        self.tsig_algorithm = tsig_algorithm
        self.tsig_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self._dns_port: int | None = None
        self._api_port: int | None = None
        self._run_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        for record in self.records:
            self._zone_of(record[0])  # fail early on a record outside every zone

    # --- addresses ----------------------------------------------------------------------

    @property
    def dns(self) -> ServerAddress:
        if self._dns_port is None:
            raise RuntimeError("PowerDnsServer is not started")
        return ServerAddress(LOOPBACK, self._dns_port)

    @property
    def api_url(self) -> str:
        """The webserver's base URL (the API lives under ``/api/v1``)."""
        if self._api_port is None:
            raise RuntimeError("PowerDnsServer is not started")
        return f"http://{LOOPBACK}:{self._api_port}"

    @property
    def log(self) -> Path:
        """pdns_server's output: read it when an update behaves oddly."""
        if self._run_dir is None:
            raise RuntimeError("PowerDnsServer is not started")
        return self._run_dir / "pdns.log"

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> PowerDnsServer:
        if not PDNS_SERVER.exists() or not SCHEMA.exists():
            raise RuntimeError(f"{PDNS_SERVER} or its SQLite schema not found: {INSTALL_HINT}")
        if self._proc is not None:
            raise RuntimeError("PowerDnsServer is already started")
        self._run_dir = Path(tempfile.mkdtemp(prefix="breakglass-pdns-"))
        try:
            self._dns_port = free_port()
            self._api_port = free_port()
            while self._api_port == self._dns_port:
                self._api_port = free_port()
            self._write_config(self._run_dir)
            self._launch(self._run_dir)
            self._wait(self._api_ready, "PowerDNS API")
            key = {"name": self.tsig_key_name, "algorithm": self.tsig_algorithm, "key": self.tsig_secret}
            self._api("POST", "/tsigkeys", key)
            for zone in self.zones:
                self._create_zone(zone)
                self._wait(partial(self._serving, zone), f"PowerDNS serving {zone}")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM by PID, wait, SIGKILL if needed, remove the temporary directory; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None
        self._dns_port = self._api_port = None

    def __enter__(self) -> PowerDnsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- API access for tests and the demo ------------------------------------------------

    def api(self, method: str, path: str, body: object | None = None) -> object:
        """Call ``/api/v1/servers/localhost<path>`` with the API key; returns the decoded JSON (or None)."""
        return self._api(method, path, body)

    def zone_path(self, zone: str) -> str:
        return f"/zones/{quote(_absolute(zone), safe='')}"

    # --- internals ------------------------------------------------------------------------

    def _write_config(self, run_dir: Path) -> None:
        database = run_dir / "pdns.sqlite3"
        db = sqlite3.connect(database)
        try:
            db.executescript(SCHEMA.read_text())
        finally:
            db.close()
        settings = {
            "launch": "gsqlite3",
            "gsqlite3-database": str(database),
            "local-address": LOOPBACK,
            "local-port": str(self._dns_port),
            "socket-dir": str(run_dir),
            "daemon": "no",
            "guardian": "no",
            "disable-syslog": "yes",
            "write-pid": "no",
            "webserver": "yes",
            "webserver-address": LOOPBACK,
            "webserver-port": str(self._api_port),
            "webserver-allow-from": "127.0.0.1",
            "api": "yes",
            "api-key": self.api_key,
            "dnsupdate": "yes",
            "allow-dnsupdate-from": "127.0.0.1/32",
            "security-poll-suffix": "",
        }
        text = "".join(f"{key}={value}\n" for key, value in settings.items())
        (run_dir / "pdns.conf").write_text(text)

    def _launch(self, run_dir: Path) -> None:
        with (run_dir / "pdns.log").open("wb") as log:
            self._proc = subprocess.Popen(
                [str(PDNS_SERVER), f"--config-dir={run_dir}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the test runner must not half-kill it
            )

    def _create_zone(self, zone: str) -> None:
        """Native zone (served from the database, no transfers) with SOA, NS, seeds and RFC2136 allowed."""
        rrsets = _rrsets(
            [
                (zone, "SOA", 300, f"ns1.{zone} hostmaster.{zone} 1 3600 600 86400 60"),
                (zone, "NS", 300, f"ns1.{zone}"),
                (f"ns1.{zone}", "A", 300, LOOPBACK),
                *(r for r in self.records if self._zone_of(r[0]) == zone),
            ]
        )
        body = {"name": zone, "kind": "Native", "soa_edit_api": "INCREASE", "nameservers": [], "rrsets": rrsets}
        self._api("POST", "/zones", body)
        metadata = self.zone_path(zone) + "/metadata"
        self._api("POST", metadata, {"kind": "TSIG-ALLOW-DNSUPDATE", "metadata": [self.tsig_key_name]})
        self._api("POST", metadata, {"kind": "SOA-EDIT-DNSUPDATE", "metadata": ["INCREASE"]})

    def _api(self, method: str, path: str, body: object | None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (always http://127.0.0.1)
            f"{self.api_url}/api/v1/servers/localhost{path}",
            data=data,
            method=method,
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
        )
        try:
            with _OPENER.open(request, timeout=5) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise RuntimeError(f"PowerDNS API {method} {path} answered HTTP {exc.code}: {detail}") from None
        return json.loads(payload) if payload else None

    def _api_ready(self) -> bool:
        self._check_alive()
        self._api("GET", "", None)
        return True

    def _serving(self, zone: str) -> bool:
        self._check_alive()
        query = dns.message.make_query(zone, dns.rdatatype.SOA, flags=0)
        try:
            response = dns.query.udp(query, LOOPBACK, timeout=0.3, port=self.dns.port)
        except dns.exception.DNSException:
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.flags & dns.flags.AA) and bool(response.answer)

    def _wait(self, check: Callable[[], bool], what: str) -> None:
        try:
            wait_until(check, _START_TIMEOUT, what)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}; pdns_server's log:\n{self._log_tail()}") from None

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"pdns_server exited with status {self._proc.returncode}")

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except (OSError, RuntimeError):
            return "(no log)"

    def _zone_of(self, name: str) -> str:
        name = _absolute(name)
        matches = [z for z in self.zones if name == z or name.endswith("." + z)]
        if not matches:
            raise ValueError(f"seed record {name} is outside every zone of this PowerDnsServer")
        return max(matches, key=len)


def _absolute(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def _rrsets(records: Sequence[SeedRecord]) -> list[dict[str, object]]:
    """Group seed records into API rrsets (one TTL per rrset: the first record's)."""
    grouped: dict[tuple[str, str], list[SeedRecord]] = defaultdict(list)
    for record in records:
        grouped[(_absolute(record[0]), record[1].upper())].append(record)
    return [
        {
            "name": name,
            "type": rtype,
            "ttl": members[0][2],
            "changetype": "REPLACE",
            "records": [{"content": _content(rtype, m[3]), "disabled": False} for m in members],
        }
        for (name, rtype), members in grouped.items()
    ]


def _content(rtype: str, value: str) -> str:
    """PowerDNS content: TXT plain text quoted and split at 255 bytes; anything else verbatim."""
    if rtype != "TXT" or value.startswith('"'):
        return value
    data = value.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return str(dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, chunks).to_text())
