"""The floor every DNS change is measured against: BIND's own tools, run as people would run them.

``nsupdate`` sends one TSIG-signed update to the primary; ``dig`` then polls each authoritative
server until it serves the new value. No approvals, no Vault, no audit: the least any tool can do.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.verification import ServerAddress

POLL_TIMEOUT = 30.0


def require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise RuntimeError(f"`{tool}` not found: install it with `apt-get install bind9-dnsutils`")
    return found


@dataclass(frozen=True)
class FloorResult:
    seconds: float  # nsupdate started -> the last server serves the new value
    update_seconds: float  # the nsupdate process alone
    digs: int  # dig processes it took


def nsupdate(key_file: Path, primary: ServerAddress, zone: str, records: Sequence[tuple[str, int, str, str]]) -> None:
    """Replace each (name, ttl, type, value) rrset in one signed update (``nsupdate -k``)."""
    lines = [f"server {primary.host} {primary.port}", f"zone {zone}"]
    for name, ttl, rtype, value in records:
        lines += [f"update delete {name} {rtype}", f"update add {name} {ttl} {rtype} {value}"]
    lines.append("send")
    done = subprocess.run(
        [require("nsupdate"), "-k", str(key_file)], input="\n".join(lines) + "\n", capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"nsupdate failed: {done.stderr.strip()}")


def dig_short(server: ServerAddress, name: str, rtype: str) -> str:
    done = subprocess.run(
        [require("dig"), "+short", "+norecurse", "+time=1", "+tries=1", f"@{server.host}", "-p", str(server.port),
         name, rtype],
        capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def wait_served(servers: Sequence[ServerAddress], name: str, rtype: str, value: str) -> int:
    """Poll each server in turn with dig until it answers ``value``; returns how many digs it took."""
    digs = 0
    deadline = time.monotonic() + POLL_TIMEOUT
    for server in servers:
        while True:
            digs += 1
            if dig_short(server, name, rtype) == value:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{server} did not serve {name} {rtype} {value} within {POLL_TIMEOUT:g} s")
    return digs


def floor_change(
    key_file: Path,
    primary: ServerAddress,
    servers: Sequence[ServerAddress],
    zone: str,
    records: Sequence[tuple[str, int, str, str]],
) -> FloorResult:
    """nsupdate ``records``, then dig each server until it serves the last of them.

    BIND applies an update as one transaction and the secondary takes it by one IXFR, so once
    a server serves the last record of the update it serves all of them.
    """
    started = time.perf_counter()
    nsupdate(key_file, primary, zone, records)
    updated = time.perf_counter()
    name, _, rtype, value = records[-1]
    digs = wait_served(servers, name, rtype, value)
    return FloorResult(time.perf_counter() - started, updated - started, digs)
