"""A local BIND 9 hidden primary + secondary with a TSIG key, for the demo and the tests.

The primary accepts RFC2136 updates signed with the generated key and NOTIFYs the
secondary, which transfers the zone by IXFR. That is the smallest setup in which
"applied on the primary" and "served by every authoritative server" can differ.

It imports ``core.verification.ServerAddress`` (pure, no I/O) so that callers can hand
the addresses straight to a querier or a change path.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from core.verification import ServerAddress
from sandbox.net import LOOPBACK, free_port, wait_until

NAMED = Path("/usr/sbin/named")
IPV6_LOOPBACK = "::1"
SeedRecord = tuple[str, str, int, str]  # (absolute name, type, ttl, value as in a zone file)

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_KEY_BYTES = {"hmac-sha256": 32, "hmac-sha384": 48, "hmac-sha512": 64}  # as tsig-keygen makes them
_PRIMARY = "primary"
_SECONDARY = "secondary"


class BindPair:
    """BIND primary + secondary on loopback; ``start()``/``stop()`` or use as a context manager.

    ``notify=False`` leaves the secondary to learn changes by SOA refresh (every
    ``refresh_seconds``), which lets tests observe slow propagation.
    ``ipv6=True`` makes both servers also listen on ``::1`` (same ports).
    """

    def __init__(
        self,
        zones: Sequence[str] = ("example.test.",),
        records: Sequence[SeedRecord] = (),
        *,
        notify: bool = True,
        refresh_seconds: int = 2,
        ipv6: bool = False,
        tsig_key_name: str = "breakglass-sandbox.",
        tsig_algorithm: str = "hmac-sha256",
    ) -> None:
        if not zones:
            raise ValueError("BindPair needs at least one zone")
        self.zones = [_absolute(z) for z in zones]
        self.records = list(records)
        self.notify = notify
        self.refresh_seconds = refresh_seconds
        self.ipv6 = ipv6
        self.tsig_key_name = _absolute(tsig_key_name)
        if tsig_algorithm not in _KEY_BYTES:
            raise ValueError(f"tsig_algorithm must be one of {', '.join(_KEY_BYTES)}")
        self.tsig_algorithm = tsig_algorithm
        self.tsig_secret = base64.b64encode(secrets.token_bytes(_KEY_BYTES[tsig_algorithm])).decode()
        self._run_dir: Path | None = None
        self._ports: dict[str, int] = {}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, Path] = {}
        self._generation = 0
        for record in self.records:
            self._zone_of(record[0])  # fail early on a record outside every zone

    # --- addresses and paths ---------------------------------------------------------

    @property
    def primary(self) -> ServerAddress:
        return ServerAddress(LOOPBACK, self._port(_PRIMARY))

    @property
    def secondary(self) -> ServerAddress:
        return ServerAddress(LOOPBACK, self._port(_SECONDARY))

    @property
    def primary_v6(self) -> ServerAddress:
        return ServerAddress(self._v6_host(), self._port(_PRIMARY))

    @property
    def secondary_v6(self) -> ServerAddress:
        return ServerAddress(self._v6_host(), self._port(_SECONDARY))

    @property
    def primary_log(self) -> Path:
        """named's stderr (it runs with ``-g``): read it when an update behaves oddly."""
        return self._logs[_PRIMARY]

    @property
    def secondary_log(self) -> Path:
        return self._logs[_SECONDARY]

    @property
    def run_dir(self) -> Path:
        if self._run_dir is None:
            raise RuntimeError("BindPair is not started")
        return self._run_dir

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> BindPair:
        if not NAMED.exists():
            raise RuntimeError(f"{NAMED} not found: install BIND with `apt-get install bind9`")
        if self._run_dir is not None:
            raise RuntimeError("BindPair is already started")
        self._run_dir = Path(tempfile.mkdtemp(prefix="breakglass-bind-"))
        try:
            (self._run_dir / "key.conf").write_text(
                f'key "{self.tsig_key_name}" {{ algorithm {self.tsig_algorithm}; secret "{self.tsig_secret}"; }};\n'
            )
            self._ports = {_PRIMARY: self._free_port(), _SECONDARY: self._free_port()}
            self._launch(_PRIMARY)
            self._wait_serving(_PRIMARY)
            self._launch(_SECONDARY)
            self._wait_transferred()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM both servers, wait, SIGKILL stragglers, remove the temporary directory."""
        for role in list(self._procs):
            self._procs[role].send_signal(signal.SIGTERM)
        for role in list(self._procs):
            self._reap(role)
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    def stop_secondary(self) -> None:
        """Stop only the secondary (tests use this to make verification fail)."""
        if _SECONDARY in self._procs:
            self._procs[_SECONDARY].send_signal(signal.SIGTERM)
            self._reap(_SECONDARY)

    def start_secondary(self) -> None:
        """Start the secondary again from an empty directory and wait until it has transferred every zone."""
        if _SECONDARY in self._procs:
            return
        self._launch(_SECONDARY)
        self._wait_transferred()

    def __enter__(self) -> BindPair:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- internals ---------------------------------------------------------------------

    def _port(self, role: str) -> int:
        if role not in self._ports:
            raise RuntimeError("BindPair is not started")
        return self._ports[role]

    def _v6_host(self) -> str:
        if not self.ipv6:
            raise RuntimeError("BindPair was started without ipv6=True")
        return IPV6_LOOPBACK

    def _free_port(self) -> int:
        """A port free on 127.0.0.1 (and on ::1 when IPv6 is on) and not already taken by the other server."""
        for _ in range(50):
            port = free_port()
            if port in self._ports.values():
                continue
            if not self.ipv6 or _free_on_v6(port):
                return port
        raise RuntimeError("no free loopback port found")

    def _zone_of(self, name: str) -> str:
        name = _absolute(name)
        matches = [z for z in self.zones if name == z or name.endswith("." + z)]
        if not matches:
            raise ValueError(f"seed record {name} is outside every zone of this BindPair")
        return max(matches, key=len)

    def _launch(self, role: str) -> None:
        self._generation += 1
        directory = self.run_dir / f"{role}-{self._generation}"
        directory.mkdir()
        if role == _PRIMARY:
            for zone in self.zones:
                (directory / _zone_file(zone)).write_text(self._zone_text(zone))
        conf = directory / "named.conf"
        conf.write_text(self._conf(role, directory))
        log = directory / "named.log"
        self._logs[role] = log
        with log.open("wb") as stderr:
            self._procs[role] = subprocess.Popen(
                [str(NAMED), "-g", "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,  # a Ctrl-C in the test runner must not half-kill named
            )

    def _conf(self, role: str, directory: Path) -> str:
        port = self._ports[role]
        v6 = f"listen-on-v6 port {port} {{ ::1; }};" if self.ipv6 else "listen-on-v6 { none; };"
        loopbacks = "127.0.0.1; ::1;" if self.ipv6 else "127.0.0.1;"
        notify = "notify explicit;" if role == _PRIMARY and self.notify else "notify no;"
        options = f"""options {{
  directory "{directory}";
  pid-file "{directory}/named.pid";
  session-keyfile "{directory}/session.key";
  listen-on port {port} {{ 127.0.0.1; }};
  {v6}
  recursion no;
  dnssec-validation no;
  {notify}
  notify-delay 0;
  max-ixfr-ratio unlimited;
  min-refresh-time 1;
  min-retry-time 1;
  allow-query {{ {loopbacks} }};
  allow-transfer {{ {loopbacks} }};
}};
controls {{ }};
include "{self.run_dir / "key.conf"}";
"""
        zones = [self._zone_conf(role, zone) for zone in self.zones]
        return options + "\n".join(zones) + "\n"

    def _zone_conf(self, role: str, zone: str) -> str:
        file = _zone_file(zone)
        if role == _PRIMARY:
            also_notify = f"also-notify {{ 127.0.0.1 port {self._ports[_SECONDARY]}; }};" if self.notify else ""
            return (
                f'zone "{zone}" {{ type primary; file "{file}"; '
                f"update-policy {{ grant {self.tsig_key_name} zonesub ANY; }}; {also_notify} }};"
            )
        return (
            f'zone "{zone}" {{ type secondary; file "{file}"; '
            f"primaries {{ 127.0.0.1 port {self._ports[_PRIMARY]}; }}; allow-notify {{ 127.0.0.1; }}; }};"
        )

    def _zone_text(self, zone: str) -> str:
        # With NOTIFY on, a long refresh proves that changes arrive by NOTIFY, not by polling.
        refresh = self.refresh_seconds if not self.notify else 3600
        lines = [
            "$TTL 300",
            f"@ IN SOA ns1.{zone} hostmaster.{zone} ( 1 {refresh} 1 86400 60 )",
            f"@ IN NS ns1.{zone}",
            "ns1 IN A 127.0.0.1",
        ]
        for name, rtype, ttl, value in self.records:
            if self._zone_of(name) == zone:
                lines.append(f"{_absolute(name)} {ttl} IN {rtype.upper()} {_zone_value(rtype, value)}")
        return "\n".join(lines) + "\n"

    def _check_alive(self, role: str) -> None:
        proc = self._procs[role]
        if proc.poll() is not None:
            raise RuntimeError(f"BIND {role} exited with status {proc.returncode}:\n{self._log_tail(role)}")

    def _log_tail(self, role: str) -> str:
        return f"{self._logs[role]}:\n" + self._logs[role].read_text(errors="replace")[-2000:]

    def _serial(self, role: str, zone: str) -> int | None:
        """The zone's SOA serial served authoritatively by ``role``, or None if not (yet) served."""
        self._check_alive(role)
        query = dns.message.make_query(zone, dns.rdatatype.SOA, flags=0)
        try:
            response = dns.query.udp(query, LOOPBACK, timeout=0.3, port=self._ports[role])
        except dns.exception.DNSException:
            return None
        if response.rcode() != dns.rcode.NOERROR or not response.flags & dns.flags.AA or not response.answer:
            return None
        return int(response.answer[0][0].serial)

    def _wait_serving(self, role: str) -> None:
        for zone in self.zones:
            self._wait(role, partial(self._serving, role, zone), f"BIND {role} serving {zone}")

    def _wait_transferred(self) -> None:
        """Wait until the secondary serves every zone at the primary's current serial."""
        for zone in self.zones:
            self._wait(_SECONDARY, partial(self._caught_up, zone), f"BIND secondary transferring {zone}")

    def _wait(self, role: str, check: Callable[[], bool], what: str) -> None:
        try:
            wait_until(check, _START_TIMEOUT, what)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; named's log {self._log_tail(role)}") from None

    def _serving(self, role: str, zone: str) -> bool:
        if f"zone {zone.rstrip('.')}/IN: not loaded due to errors" in self._logs[role].read_text(errors="replace"):
            raise RuntimeError(f"BIND {role} could not load zone {zone}; named's log {self._log_tail(role)}")
        return self._serial(role, zone) is not None

    def _caught_up(self, zone: str) -> bool:
        serial = self._serial(_SECONDARY, zone)
        return serial is not None and serial == self._serial(_PRIMARY, zone)

    def _reap(self, role: str) -> None:
        proc = self._procs.pop(role)
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _absolute(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def _zone_file(zone: str) -> str:
    return f"{zone.rstrip('.')}.db"


def _zone_value(rtype: str, value: str) -> str:
    """TXT values given as plain text are quoted and split into 255-byte strings; others go in verbatim."""
    if rtype.upper() != "TXT" or value.startswith('"'):
        return value
    data = value.encode()
    chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
    return " ".join('"' + _escape(chunk) + '"' for chunk in chunks)


def _escape(chunk: bytes) -> str:
    out = []
    for byte in chunk:
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def _free_on_v6(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET6, kind) as sock:
            try:
                sock.bind((IPV6_LOOPBACK, port))
            except OSError:
                return False
    return True


class BindServer:
    """One more named on loopback: a static zone server (e.g. a parent zone that delegates) or a caching resolver.

    ``zones`` maps a zone to its records; each zone gets a SOA and ``NS ns.<zone>`` (``A 127.0.0.1``)
    so that delegations (NS + glue) can be written as plain records. ``forwards`` maps a zone to
    the servers a recursive resolver forwards it to (``forward only``); with any forward the server
    does recursion and caches. Its root hints point at loopback, so it never asks the real root servers.
    """

    def __init__(
        self,
        zones: Mapping[str, Sequence[SeedRecord]] | None = None,
        *,
        forwards: Mapping[str, Sequence[ServerAddress]] | None = None,
        ipv6: bool = False,
    ) -> None:
        self.zones = {_absolute(z): list(records) for z, records in (zones or {}).items()}
        self.forwards = {_absolute(z): list(servers) for z, servers in (forwards or {}).items()}
        if not self.zones and not self.forwards:
            raise ValueError("BindServer needs at least one zone or forward")
        self.ipv6 = ipv6
        self._run_dir: Path | None = None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> ServerAddress:
        if self._port is None:
            raise RuntimeError("BindServer is not started")
        return ServerAddress(LOOPBACK, self._port)

    @property
    def address_v6(self) -> ServerAddress:
        if not self.ipv6:
            raise RuntimeError("BindServer was started without ipv6=True")
        return ServerAddress(IPV6_LOOPBACK, self.address.port)

    @property
    def log(self) -> Path:
        if self._run_dir is None:
            raise RuntimeError("BindServer is not started")
        return self._run_dir / "named.log"

    def start(self) -> BindServer:
        if not NAMED.exists():
            raise RuntimeError(f"{NAMED} not found: install BIND with `apt-get install bind9`")
        if self._run_dir is not None:
            raise RuntimeError("BindServer is already started")
        self._run_dir = Path(tempfile.mkdtemp(prefix="breakglass-named-"))
        try:
            self._port = self._pick_port()
            for zone, records in self.zones.items():
                (self._run_dir / _zone_file(zone)).write_text(_static_zone_text(zone, records))
            (self._run_dir / "root.hint").write_text(_LOOPBACK_ROOT_HINTS)
            conf = self._run_dir / "named.conf"
            conf.write_text(self._conf())
            with self.log.open("wb") as stderr:
                self._proc = subprocess.Popen(
                    [str(NAMED), "-g", "-c", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    start_new_session=True,
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None
        self._port = None

    def __enter__(self) -> BindServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _pick_port(self) -> int:
        for _ in range(50):
            port = free_port()
            if not self.ipv6 or _free_on_v6(port):
                return port
        raise RuntimeError("no free loopback port found")

    def _conf(self) -> str:
        directory = self._run_dir
        port = self.address.port
        v6 = f"listen-on-v6 port {port} {{ ::1; }};" if self.ipv6 else "listen-on-v6 { none; };"
        recursion = "yes" if self.forwards else "no"
        lines = [
            "options {",
            f'  directory "{directory}";',
            f'  pid-file "{directory}/named.pid";',
            f'  session-keyfile "{directory}/session.key";',
            f"  listen-on port {port} {{ 127.0.0.1; }};",
            f"  {v6}",
            f"  recursion {recursion};",
            "  allow-recursion { 127.0.0.1; ::1; };",
            "  allow-query { 127.0.0.1; ::1; };",
            "  dnssec-validation no;",
            "  notify no;",
            "  query-source address 127.0.0.1;",
            "  query-source-v6 address ::1;",
            "};",
            "controls { };",
        ]
        if self.forwards:
            lines.append('zone "." { type hint; file "root.hint"; };')
        for zone in self.zones:
            lines.append(f'zone "{zone}" {{ type primary; file "{_zone_file(zone)}"; }};')
        for zone, servers in self.forwards.items():
            targets = " ".join(f"{s.host} port {s.port};" for s in servers)
            lines.append(f'zone "{zone}" {{ type forward; forward only; forwarders {{ {targets} }}; }};')
        return "\n".join(lines) + "\n"

    def _wait_ready(self) -> None:
        def answering() -> bool:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"named exited with status {self._proc.returncode}:\n{self._log_tail()}")
            if self.zones:
                query = dns.message.make_query(next(iter(self.zones)), dns.rdatatype.SOA, flags=0)
            else:  # a resolver: ask about itself, which needs no recursion
                query = dns.message.make_query("version.bind.", dns.rdatatype.TXT, dns.rdataclass.CH, flags=0)
            try:
                response = dns.query.udp(query, LOOPBACK, timeout=0.3, port=self.address.port)
            except dns.exception.DNSException:
                return False
            return response.rcode() == dns.rcode.NOERROR and (not self.zones or bool(response.flags & dns.flags.AA))

        try:
            wait_until(answering, _START_TIMEOUT, "named answering")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; named's log {self._log_tail()}") from None

    def _log_tail(self) -> str:
        return f"{self.log}:\n" + self.log.read_text(errors="replace")[-2000:]


# Priming queries go to loopback port 53 (where nothing of ours listens) instead of the Internet's root servers.
_LOOPBACK_ROOT_HINTS = ". 3600000 NS a.root.invalid.\na.root.invalid. 3600000 A 127.0.0.1\n"


def _static_zone_text(zone: str, records: Sequence[SeedRecord]) -> str:
    lines = [
        "$TTL 300",
        f"@ IN SOA ns.{zone} hostmaster.{zone} ( 1 3600 600 86400 60 )",
        f"@ IN NS ns.{zone}",
        "ns IN A 127.0.0.1",
    ]
    lines += [
        f"{_absolute(name)} {ttl} IN {rtype.upper()} {_zone_value(rtype, value)}" for name, rtype, ttl, value in records
    ]
    return "\n".join(lines) + "\n"
