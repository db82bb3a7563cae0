"""Bulk failover: 1,000 records re-pointed in one request, applied and verified, against octoDNS.

Three change paths, each on a real local server: the PowerDNS HTTP API, RFC2136 on a BIND
primary (+ secondary), Route53 on moto. breakglass is driven through its service (the
ChangeService that ``bootstrap`` builds from a config file, as ``breakglass serve`` does):
plan (read every rrset), two approvals, lease credentials from Vault/OpenBao, re-read and
compare, apply, revoke, verify. The clock runs from the request to the verdict.

The baseline is octoDNS 1.22 (octodns-powerdns, octodns-bind, octodns-route53) syncing the
same change, from a YAML zone, to the same servers, in a process of its own (bench/_octodns_sync.py).
Runs alternate: breakglass re-points every record, then octoDNS re-points every record again.
octoDNS does NOT verify: it returns once the provider accepted the change.

Verification differs per path: PowerDNS and BIND are asked for every rrset on every
authoritative server (PowerDNS: 1 server; BIND: primary + secondary). moto serves no DNS, so
for Route53 "verified" is GetChange INSYNC (the path waits for it) plus a read-back of every
rrset through the Route53 API; the DNS verification the service then attempts is not timed.

Route53 counts an updated record twice (DELETE + CREATE), so 1,000 re-pointed records need
2,000 changes: two batches with ``allow_multi_batch`` (not atomic; reported), and octoDNS
needs ``max_changes: 500``. octodns-route53 1.3.1 fails against moto >= 5.2, so both sides
use a moto_server from ``moto[server]==5.1.22`` in bench/.venvs/ (created on first run).

    python -m bench.bulk_failover [--records 1000] [--runs 3] [--paths powerdns,bind,route53]
Target: breakglass <= 0.5 x octoDNS (median of the runs).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench._common import BULK_FAILOVER_RULES, console, percentile, save, show
from cli.localstack import SEED, LocalStack
from core.models import Principal, PrincipalSource, RecordEdit
from core.ports import StoredRequest
from core.records import RecordType, RRset
from core.verification import VerificationOutcome, VerificationReport
from sandbox.bind import SeedRecord
from sandbox.moto import MotoServer
from sandbox.openbao import OpenBaoServer, provision_breakglass
from sandbox.vault_identity_sts import aws_client, provision_identity_token, provision_web_identity_role

TARGET = 0.5
ZONE = "example.test."
TTL = 300
MOTO_VERSION = "5.1.22"
MOTO_VENV = Path(__file__).resolve().parent / ".venvs" / f"moto-{MOTO_VERSION}"
PATHS = ("powerdns", "bind", "route53")


def names(count: int) -> list[str]:
    return [f"h{i:04d}.{ZONE}" for i in range(count)]


def value(generation: int, i: int) -> str:
    """Record data only (never contacted): loopback addresses, unique per generation and record."""
    return f"127.{generation % 250 + 1}.{i // 256}.{i % 256}"


def seed(count: int) -> tuple[SeedRecord, ...]:
    return SEED + tuple((name, "A", TTL, value(0, i)) for i, name in enumerate(names(count)))


# --- breakglass -------------------------------------------------------------------------------------


@dataclass
class TimingNotifier:
    """A Notifier that only notes when the service said what (monotonic seconds)."""

    said: list[tuple[float, str]] = field(default_factory=list)

    def progress(self, stored: StoredRequest, text: str) -> None:
        self.said.append((time.perf_counter(), text))

    def verifying(self, stored: StoredRequest, report: VerificationReport) -> None:
        pass

    def finished(self, stored: StoredRequest, outcome: VerificationOutcome | None) -> None:
        self.said.append((time.perf_counter(), f"finished {stored.state.value}"))

    def checkpoint(self, text: str) -> None:
        pass

    def when(self, prefix: str) -> float:
        return next(t for t, text in self.said if text.startswith(prefix))


@dataclass(frozen=True)
class OurRun:
    seconds: float  # request -> verdict (Route53: -> INSYNC + read-back)
    plan: float
    approvals: float
    apply: float  # quorum -> "Applied through ..." (lease, re-read, apply, revoke)
    verify: float
    recording: float  # of verify: writing one audit event per server and rrset checked
    state: str
    batches: int = 1


def breakglass_run(stack: LocalStack, count: int, generation: int, read_back: Callable[[], float] | None) -> OurRun:
    service, people = stack.service, stack.people
    edits = [
        RecordEdit(name, RecordType.A, RRset(name, RecordType.A, TTL, (value(generation, i),)))
        for i, name in enumerate(names(count))
    ]
    notifier = TimingNotifier()
    recording = [0.0]
    record_outcome = service._record_outcome

    def timed_record_outcome(*args: Any, **kwargs: Any) -> None:  # the breakdown only: the work is unchanged
        began = time.perf_counter()
        record_outcome(*args, **kwargs)
        recording[0] += time.perf_counter() - began

    setattr(service, "_record_outcome", timed_record_outcome)  # noqa: B010
    started = time.perf_counter()
    stored = service.request_change(Principal(PrincipalSource.SLACK, people.alice), edits, f"bench {generation}")
    planned = time.perf_counter()
    request_id = stored.request.id
    service.approve(request_id, Principal(PrincipalSource.SLACK, people.bob))
    outcome = service.approve(request_id, Principal(PrincipalSource.SLACK, people.carol))
    assert outcome.ready_to_apply, outcome.missing
    approved = time.perf_counter()
    try:
        result = service.execute(request_id, notifier)
    finally:
        delattr(service, "_record_outcome")
    finished = time.perf_counter()
    applied = notifier.when("Applied through")
    state = result.stored.state.value
    if read_back is not None:  # Route53: the verdict is INSYNC + every rrset read back through the API
        finished = applied + read_back()
        state = "insync+read-back"
        recording[0] = 0.0  # the DNS verification that follows (and fails: moto serves no DNS) is not timed
    else:
        assert state == "verified", (state, notifier.said[-3:])
    report = getattr(service.zones.get(ZONE).paths[0].path, "last_apply", None)  # Route53: how many batches
    batches = len(report.batches) if report is not None else 1
    return OurRun(
        finished - started,
        planned - started,
        approved - planned,
        applied - approved,
        finished - applied,
        recording[0],
        state,
        batches,
    )


# --- the servers and the two tools' configurations ---------------------------------------------------


@dataclass
class Backend:
    """One change path: the stack breakglass runs in, and the octoDNS config that reaches the same server."""

    name: str
    stack: LocalStack
    octodns_provider: dict[str, object]
    octodns_env: dict[str, str] = field(default_factory=dict)
    read_back: Callable[[], float] | None = None
    root_ns: tuple[str, ...] = ()


def powerdns_backend(exit: ExitStack, vault: OpenBaoServer, count: int, work: Path) -> Backend:
    def configure(stack: LocalStack) -> tuple[str, str]:
        tag = secrets.token_hex(4)
        kv_path = f"pdns/api-{tag}"
        creds = provision_breakglass(
            stack.vault, tsig_path=kv_path, tsig=("unused.", "hmac-sha256", "eA=="), role_name=f"pdns-api-{tag}"
        )
        stack.vault.client().secrets.kv.v2.create_or_update_secret(
            path=kv_path, secret={"api_key": stack.pdns.api_key}, mount_point="secret"
        )
        (stack.workdir / "api-role-id").write_text(creds.role_id)
        (stack.workdir / "api-secret-id").write_text(creds.secret_id)
        path = f"""
[[zones.paths]]
kind = "powerdns"
name = "pdns-api"
api_url = "{stack.pdns.api_url}"
credentials = {{ source = "vault-kv", vault = "api", path = "{kv_path}", kind = "api_key" }}
"""
        extra = f"""
[vaults.api]
address = "{stack.vault.address}"
role_id_file = "{stack.workdir / "api-role-id"}"
secret_id_file = "{stack.workdir / "api-secret-id"}"
"""
        return path, extra

    stack = exit.enter_context(
        LocalStack(
            vault=vault,
            powerdns=True,
            seed=seed(count),
            configure=configure,
            verify_timeout=60,
            policy_rules=BULK_FAILOVER_RULES,
        )
    )
    port = int(stack.pdns.api_url.rsplit(":", 1)[1])
    provider = {
        "class": "octodns_powerdns.PowerDnsProvider",
        "host": "127.0.0.1",
        "port": port,
        "api_key": stack.pdns.api_key,
        "timeout": 60,
    }
    return Backend("powerdns", stack, provider, root_ns=(f"ns1.{ZONE}",))


def bind_backend(exit: ExitStack, vault: OpenBaoServer, count: int, work: Path) -> Backend:
    stack = exit.enter_context(
        LocalStack(vault=vault, seed=seed(count), verify_timeout=60, policy_rules=BULK_FAILOVER_RULES)
    )
    provider = {
        "class": "octodns_bind.Rfc2136Provider",
        "host": "127.0.0.1",
        "port": stack.bind.primary.port,
        "key_name": stack.bind.tsig_key_name,
        "key_secret": stack.bind.tsig_secret,
        "key_algorithm": stack.bind.tsig_algorithm,
        "timeout": 60,
    }
    return Backend("bind", stack, provider, root_ns=(f"ns1.{ZONE}",))


def moto_server() -> str:
    """moto_server from moto[server]==5.1.22 in its own venv (octodns-route53 1.3.1 fails on moto >= 5.2)."""
    binary = MOTO_VENV / "bin" / "moto_server"
    if not binary.exists():
        console.print(f"creating {MOTO_VENV} with moto[server]=={MOTO_VERSION} (once)")
        subprocess.run([sys.executable, "-m", "venv", str(MOTO_VENV)], check=True)
        pip = [str(MOTO_VENV / "bin" / "python"), "-m", "pip", "install", "-q", f"moto[server]=={MOTO_VERSION}"]
        subprocess.run(pip, check=True)
    return str(binary)


class PinnedMoto(MotoServer):
    """sandbox.moto.MotoServer, but started from the pinned moto in bench/.venvs/."""

    def start(self) -> MotoServer:
        import sandbox.moto

        original = sandbox.moto.find_moto_server
        sandbox.moto.find_moto_server = moto_server
        try:
            return super().start()
        finally:
            sandbox.moto.find_moto_server = original


def route53_backend(exit: ExitStack, vault: OpenBaoServer, count: int, work: Path) -> Backend:
    moto = exit.enter_context(PinnedMoto())
    identity = provision_identity_token(vault, role_name=f"breakglass-aws-{secrets.token_hex(4)}")
    aws = provision_web_identity_role(
        moto.endpoint_url, identity, role_name=f"breakglass-dns-{secrets.token_hex(4)}", zone_name=ZONE
    )
    route53 = aws_client("route53", moto.endpoint_url)
    changes = [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": n, "Type": t, "TTL": ttl, "ResourceRecords": [{"Value": v}]}}
        for n, t, ttl, v in seed(count)
    ]
    for i in range(0, len(changes), 500):
        route53.change_resource_record_sets(
            HostedZoneId=aws.hosted_zone_id, ChangeBatch={"Changes": changes[i : i + 500]}
        )

    def configure(stack: LocalStack) -> tuple[str, str]:
        (stack.workdir / "aws-role-id").write_text(identity.role_id)
        (stack.workdir / "aws-secret-id").write_text(identity.secret_id)
        path = f"""
[[zones.paths]]
kind = "route53"
name = "route53"
endpoint_url = "{moto.endpoint_url}"
hosted_zone_id = "{aws.hosted_zone_id}"
allow_multi_batch = true
credentials = {{ source = "vault-identity-sts", vault = "aws", oidc_role = "{identity.oidc_role}", \
role_arn = "{aws.role_arn}", hosted_zone_id = "{aws.hosted_zone_id}", sts_endpoint_url = "{moto.endpoint_url}" }}
"""
        extra = f"""
[vaults.aws]
address = "{vault.address}"
role_id_file = "{stack.workdir / "aws-role-id"}"
secret_id_file = "{stack.workdir / "aws-secret-id"}"
"""
        return path, extra

    # moto serves no DNS: the stack's BIND pair stands in as "authoritative servers" and never
    # serves these records, so the service's own DNS verification fails fast and is not timed.
    stack = exit.enter_context(
        LocalStack(vault=vault, configure=configure, verify_timeout=0.05, policy_rules=BULK_FAILOVER_RULES)
    )
    zone_id = aws.hosted_zone_id

    def read_back() -> float:
        """Lease credentials as the service does, then read every rrset back through the API."""
        started = time.perf_counter()
        route = stack.service.zones.get(ZONE).paths[0]
        lease = route.credentials.lease()
        creds = lease.credentials
        client = _client_with(creds, moto.endpoint_url)
        found: dict[str, tuple[str, ...]] = {}
        start: dict[str, str] = {}
        while True:
            page = client.list_resource_record_sets(HostedZoneId=zone_id, MaxItems="300", **start)
            for item in page["ResourceRecordSets"]:
                found[item["Name"]] = tuple(r["Value"] for r in item.get("ResourceRecords", []))
            if not page.get("IsTruncated"):
                break
            start = {"StartRecordName": page["NextRecordName"], "StartRecordType": page["NextRecordType"]}
        lease.revoke()
        wanted = _last_generation.get("route53", 0)
        missing = [n for i, n in enumerate(names(count)) if found.get(n) != (value(wanted, i),)]
        assert not missing, f"{len(missing)} rrsets not re-pointed, e.g. {missing[:3]}"
        return time.perf_counter() - started

    provider = {
        "class": "octodns_route53.Route53Provider",
        "access_key_id": "sandbox",
        "secret_access_key": "sandbox",
        "max_changes": 500,
    }
    env = {"AWS_ENDPOINT_URL_ROUTE_53": moto.endpoint_url, "AWS_DEFAULT_REGION": "us-east-1"}
    ns = route53.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=ZONE, StartRecordType="NS", MaxItems="1"
    )
    root_ns = tuple(r["Value"] for r in ns["ResourceRecordSets"][0]["ResourceRecords"])
    return Backend("route53", stack, provider, env, read_back, root_ns)


_last_generation: dict[str, int] = {}


def _client_with(creds: object, endpoint_url: str) -> Any:
    import boto3.session

    from core.credentials import AwsCredentials

    assert isinstance(creds, AwsCredentials)
    session = boto3.session.Session(
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key.reveal(),
        aws_session_token=creds.session_token.reveal() if creds.session_token else None,
        region_name=creds.region,
    )
    return session.client("route53", endpoint_url=endpoint_url)


# --- octoDNS ------------------------------------------------------------------------------------------


def octodns_config(backend: Backend, count: int, generation: int, work: Path) -> Path:
    """The whole desired zone as octoDNS YAML (octoDNS deletes what its source lacks) and a config file."""
    zone_dir = work / f"{backend.name}-zones"
    zone_dir.mkdir(exist_ok=True)
    records: dict[str, object] = {
        "": {"type": "NS", "ttl": TTL, "values": list(backend.root_ns)},
        "api": {"type": "A", "ttl": 300, "value": "192.0.2.10"},
        "www": {"type": "CNAME", "ttl": 300, "value": "api.example.test."},
    }
    if backend.name != "route53":
        records["ns1"] = {"type": "A", "ttl": 300, "value": "127.0.0.1"}
    for i, name in enumerate(names(count)):
        records[name.removesuffix("." + ZONE)] = {"type": "A", "ttl": TTL, "value": value(generation, i)}
    (zone_dir / f"{ZONE}yaml").write_text(yaml.safe_dump(records, sort_keys=True))
    config = {
        "providers": {
            "config": {
                "class": "octodns.provider.yaml.YamlProvider",
                "directory": str(zone_dir),
                "enforce_order": False,
            },
            "target": backend.octodns_provider,
        },
        "zones": {ZONE: {"sources": ["config"], "targets": ["target"]}},
    }
    path = work / f"{backend.name}-octodns.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass(frozen=True)
class OctoRun:
    seconds: float
    setup_seconds: float
    changes: int


def octodns_run(backend: Backend, count: int, generation: int, work: Path) -> OctoRun:
    config = octodns_config(backend, count, generation, work)
    env = {**os.environ, **backend.octodns_env}
    done = subprocess.run(
        [sys.executable, "-m", "bench._octodns_sync", str(config), ZONE], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"octoDNS sync to {backend.name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["changes"] >= count, f"octoDNS planned {result['changes']} changes, expected {count}"
    return OctoRun(result["seconds"], result["setup_seconds"], result["changes"])


def summarise(ours: list[OurRun], octo: list[OctoRun]) -> dict[str, float]:
    """Medians of the runs, and breakglass's ratios to octoDNS: to the verdict, and to "applied" alone."""

    def median(values: list[float]) -> float:
        return percentile(values, 50)

    summary = {
        "breakglass_p50": median([r.seconds for r in ours]),
        "plan_p50": median([r.plan for r in ours]),
        "approvals_p50": median([r.approvals for r in ours]),
        "apply_p50": median([r.apply for r in ours]),
        "verify_p50": median([r.verify for r in ours]),
        "recording_p50": median([r.recording for r in ours]),
        "batches": max(r.batches for r in ours),
        "to_applied_p50": median([r.plan + r.approvals + r.apply for r in ours]),
        "octodns_p50": median([r.seconds for r in octo]),
    }
    summary["ratio"] = summary["breakglass_p50"] / summary["octodns_p50"]
    summary["ratio_to_applied"] = summary["to_applied_p50"] / summary["octodns_p50"]
    return summary


# --- main ------------------------------------------------------------------------------------------------

BUILDERS = {"powerdns": powerdns_backend, "bind": bind_backend, "route53": route53_backend}


@contextmanager
def backends(wanted: list[str], count: int, work: Path) -> Iterator[list[Backend]]:
    with ExitStack() as exit:
        vault = exit.enter_context(OpenBaoServer())
        yield [BUILDERS[name](exit, vault, count, work) for name in wanted]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated subset of " + ", ".join(PATHS))
    args = parser.parse_args()
    wanted = [p for p in args.paths.split(",") if p]
    results: dict[str, dict[str, float]] = {}
    raw: dict[str, dict[str, list[dict[str, object]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bg-bulk-bench-") as tmp, backends(wanted, args.records, Path(tmp)) as all_:
        for backend in all_:
            ours: list[OurRun] = []
            octo: list[OctoRun] = []
            for run in range(args.runs):
                generation = 2 * run + 1
                _last_generation[backend.name] = generation
                ours.append(breakglass_run(backend.stack, args.records, generation, backend.read_back))
                octo.append(octodns_run(backend, args.records, generation + 1, Path(tmp)))
                console.print(
                    f"{backend.name} run {run + 1}: breakglass {ours[-1].seconds:.2f} s "
                    f"(plan {ours[-1].plan:.2f}, apply {ours[-1].apply:.2f}, verify {ours[-1].verify:.2f}, "
                    f"of which audit events {ours[-1].recording:.2f}; {ours[-1].batches} batch(es)), "
                    f"octoDNS {octo[-1].seconds:.2f} s"
                )
            results[backend.name] = summarise(ours, octo)
            raw[backend.name] = {"breakglass": [vars(r) for r in ours], "octodns": [vars(r) for r in octo]}
    rows = []
    for name, r in results.items():
        rows.append(
            [
                name,
                f"{r['breakglass_p50']:.2f}",
                f"{r['plan_p50']:.2f} / {r['approvals_p50']:.2f} / {r['apply_p50']:.2f} / {r['verify_p50']:.2f}"
                f" ({r['recording_p50']:.2f})",
                f"{r['to_applied_p50']:.2f}",
                f"{r['octodns_p50']:.2f}",
                f"{r['ratio']:.2f}x / {r['ratio_to_applied']:.2f}x",
                "yes" if r["ratio"] <= TARGET else "NO",
            ]
        )
    show(
        f"Bulk failover: {args.records} records re-pointed in one request, median of {args.runs} runs (s)",
        [
            "path",
            "breakglass (to verdict)",
            "plan / approvals / apply / verify (of which audit events)",
            "breakglass to applied",
            "octoDNS (no verify)",
            "ratio (verdict / applied)",
            f"<= {TARGET}x",
        ],
        rows,
    )
    runs = {"records": args.records, "runs": args.runs, "paths": results, "raw": raw}
    console.print(f"saved {save('bulk_failover', runs)}")


if __name__ == "__main__":
    main()
