"""Benchmark: `breakglass audit verify` over a million events, against sha256 alone.

Builds a temporary SQLite database through the real migrations, bulk-inserts N chained
events shaped like a real incident's (planned, approvals, lease, apply, per-server checks,
verified), then times:

* sha256 alone over exactly the bytes verification hashes (prev_hash + canonical line),
* ``AuditLog.verify`` in one process and in two,
* the ``breakglass audit verify`` command end to end (process start-up included).

Run: ``.venv/bin/python -m bench.audit_verify [--events 1000000]``. Not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from bench._common import save
from store.audit import GENESIS_HASH, AuditLog, at_text, canonical_event, event_hash
from store.migrate import upgrade
from store.sql import make_engine

BATCH = 50_000
START = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
SERVERS = ("127.0.0.1:5301", "127.0.0.1:5302", "127.0.0.1:5303")


def incident_events(request: int) -> list[tuple[str, str, dict[str, object]]]:
    """(actor, kind, details) of one request from plan to verified: 20 events."""
    digest = hashlib.sha256(str(request).encode()).hexdigest()
    lease = f"auth/approle/login/{digest[:24]}"
    events: list[tuple[str, str, dict[str, object]]] = [
        ("slack:U0ALICE", "planned", {"digest": digest, "kind": "change", "path": "bind-primary"}),
        ("slack:U0MALLORY", "approval_refused", {"reason": "not_an_approver"}),
        ("slack:U0BOB", "approved", {"digest": digest}),
        ("slack:U0CAROL", "approved", {"digest": digest}),
        ("system:breakglass", "quorum_reached", {"approvers": "slack:U0BOB,slack:U0CAROL"}),
        ("system:breakglass", "apply_started", {}),
        (
            "system:breakglass",
            "credentials_leased",
            {"lease_id": lease, "source": "vault-kv:secret/tsig", "ttl_seconds": 60},
        ),
        ("system:breakglass", "credentials_revoked", {"lease_id": lease}),
        ("system:breakglass", "applied", {"apply_ms": 2.4, "path": "bind-primary"}),
    ]
    for server in SERVERS:
        for name in ("api", "www", "mail"):
            events.append(
                (
                    "system:breakglass",
                    "server_checked",
                    {
                        "answer": "203.0.113.10 (ttl 60)",
                        "name": f"{name}.example.test.",
                        "seconds": 0.005,
                        "served": True,
                        "server": server,
                        "type": "A",
                    },
                )
            )
    events.append(("system:breakglass", "verified", {"elapsed_seconds": 0.031, "lagging": ""}))
    return events


def generate(count: int) -> Iterator[tuple[int, str, str, str, str, str]]:
    """(seq, request_id, actor, kind, details_json, at_text) for ``count`` events."""
    seq = 0
    request = 0
    while seq < count:
        request += 1
        request_id = f"BG-{request:06d}"
        for actor, kind, details in incident_events(request):
            seq += 1
            if seq > count:
                return
            at = at_text(START + timedelta(milliseconds=seq * 7))
            yield seq, request_id, actor, kind, json.dumps(details, sort_keys=True, separators=(",", ":")), at


def build(database: Path, count: int) -> list[bytes]:
    """Insert ``count`` chained events; returns the exact bytes verification hashes for each."""
    prev = GENESIS_HASH
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA synchronous = OFF")
    batch: list[tuple[object, ...]] = []
    payloads: list[bytes] = []
    insert = (
        "INSERT INTO events (seq, request_id, actor, kind, details_json, at, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    for seq, request_id, actor, kind, details, at in generate(count):
        line = canonical_event(seq, request_id, actor, kind, details, at)
        digest = event_hash(prev, line)
        payloads.append((prev + line).encode())
        batch.append((seq, request_id, actor, kind, details, at, prev, digest))
        prev = digest
        if len(batch) >= BATCH:
            connection.executemany(insert, batch)
            batch.clear()
    connection.executemany(insert, batch)
    connection.execute("UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1", (count, prev))
    connection.commit()
    connection.close()
    return payloads


def best_of(runs: int, measure: Callable[[], float]) -> float:
    """The fastest of ``runs`` timings: the least disturbed by whatever else the machine runs."""
    return min(measure() for _ in range(runs))


def time_sha256(payloads: list[bytes]) -> float:
    sha256 = hashlib.sha256
    started = time.perf_counter()
    for payload in payloads:
        sha256(payload).hexdigest()
    return time.perf_counter() - started


def time_verify(engine: Engine, workers: int, count: int) -> float:
    started = time.perf_counter()
    result = AuditLog(engine).verify(workers=workers)
    spent = time.perf_counter() - started
    assert result.ok and result.events == count, result.problems[:3]
    return spent


def time_cli(config: Path) -> float:
    breakglass = Path(sys.executable).with_name("breakglass")
    started = time.perf_counter()
    done = subprocess.run([str(breakglass), "audit", "verify", "--config", str(config)], capture_output=True, text=True)
    spent = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    return spent


def write_config(directory: Path, url: str) -> Path:
    config = directory / "breakglass.toml"
    config.write_text(f"""
[database]
url = "{url}"

[vault]
address = "http://127.0.0.1:1"

[approvals]
approvers = ["U0BOB", "U0CAROL"]
required = 2

[[zones]]
name = "example.test."
authoritative_servers = ["127.0.0.1:5301"]

[[zones.paths]]
kind = "rfc2136"
server = "127.0.0.1:5301"
credentials = {{ source = "vault-kv", path = "tsig" }}
""")
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="Take the best of this many timings.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bg-audit-bench-") as tmp:
        directory = Path(tmp)
        database = directory / "bench.sqlite3"
        url = f"sqlite:///{database}"
        upgrade(url)
        print(f"building {args.events:,} chained events in {database} ...", flush=True)
        started = time.perf_counter()
        payloads = build(database, args.events)
        built = time.perf_counter() - started
        size_mb = database.stat().st_size / 1e6
        hashing = best_of(args.runs, lambda: time_sha256(payloads))
        payloads.clear()
        engine = make_engine(url)
        try:
            one = best_of(args.runs, lambda: time_verify(engine, 1, args.events))
            two = best_of(args.runs, lambda: time_verify(engine, 2, args.events))
        finally:
            engine.dispose()
        cli = best_of(args.runs, lambda: time_cli(write_config(directory, url)))

    rows = [
        ("sha256 alone over the same bytes", hashing),
        ("AuditLog.verify, 1 process", one),
        ("AuditLog.verify, 2 processes", two),
        ("`breakglass audit verify` (auto, incl. start-up)", cli),
    ]
    load = os.getloadavg()[0]
    print()
    print(
        f"events: {args.events:,}   database: {size_mb:,.0f} MB   build: {built:.1f} s   "
        f"cores: {os.cpu_count()}   load average: {load:.2f}   best of {args.runs}"
    )
    print(f"{'what':<50} {'seconds':>8} {'µs/event':>9} {'x sha256':>9}")
    for what, seconds in rows:
        print(f"{what:<50} {seconds:8.2f} {seconds / args.events * 1e6:9.2f} {seconds / hashing:9.2f}")
    print()
    print(f"ratio verify/sha256: {one / hashing:.2f}x in one process, {two / hashing:.2f}x in two (target <= 3x)")
    timings = {"sha256": hashing, "verify_1_process": one, "verify_2_processes": two, "cli": cli}
    data = {"events": args.events, "runs": args.runs, "database_mb": size_mb, "load_average": load, "seconds": timings}
    print(f"saved {save('audit_verify', {**data, 'ratio_1': one / hashing, 'ratio_2': two / hashing})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
