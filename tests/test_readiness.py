"""The readiness report from a real config file, signed policy and drill history (no DNS server needed).

The main test builds a setup with four deliberate faults (a zone with a single path, two paths on one
Vault identity, a stale drill, a quorum that one absence breaks) and checks that the report finds
exactly those, each mapped to a control, and that --fail-on turns them into an exit code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from approvals.signing import generate_signing_key, sign_policy
from cli.main import app
from core.credentials import TsigAlgorithm, TsigKey
from core.events import EventKind, NewEvent
from core.ports import DrillOutcome, DrillRecord
from core.secrets import Secret
from credentials.sealed import generate_key, seal
from store.drills import SqlDrillStore
from store.migrate import upgrade
from store.sql import make_engine

cli = CliRunner()
NOW = datetime.now(UTC)
POLICY = """version: 1
people:
  - {name: alice, slack: U1}
  - {name: bob, slack: U2}
  - {name: carol, slack: U3}
  - {name: dave, slack: U4}
groups:
  sre: [alice, bob, carol]
  security: [dave]
rules:
  - name: a-zone
    zone: a.test
    requesters: [sre]
    approvals: {count: 1, approvers: [sre, security]}
  - name: b-zone
    zone: b.test
    requesters: [sre]
    approvals: {count: 2, approvers: [sre]}   # 3 approvers, the requester is one: one absence blocks it
"""
ZONES = """
[[zones]]
name = "a.test"
authoritative_servers = ["127.0.0.1:1"]
[[zones.paths]]
kind = "rfc2136"
name = "bind-a"
server = "127.0.0.1:1"
credentials = { source = "vault-kv", path = "tsig/a" }

[[zones]]
name = "b.test"
authoritative_servers = ["127.0.0.1:1"]
[[zones.paths]]
kind = "powerdns"
name = "pdns-api"
api_url = "http://127.0.0.1:1"
credentials = { source = "vault-kv", path = "pdns/api", kind = "api_key" }
[[zones.paths]]
kind = "rfc2136"
name = "pdns-rfc2136"
server = "127.0.0.1:2"
credentials = { source = "vault-kv", path = "tsig/b" }   # the same default Vault AppRole as pdns-api

[[inventory]]
record = "api.a.test"
service = "checkout"
rto_seconds = 300
leads_to = ["token service"]

[[inventory]]
record = "www.b.test"
service = "storefront"
rto_seconds = 120
"""


@dataclass
class Setup:
    config: Path
    database_url: str

    def drilled(self, zone: str, path: str, days_ago: float, routing: float, **kw: object) -> None:
        at = NOW - timedelta(days=days_ago)
        record = DrillRecord(
            f"DR-{zone[0].upper()}{path[-4:].upper()}", zone, path, "key:alice", at, DrillOutcome.PASSED, False,
            lease_seconds=0.05, apply_seconds=0.01, propagation_seconds=routing - 0.06, cleanup_seconds=0.1,
            routing_seconds=routing, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        engine = make_engine(self.database_url)
        try:
            SqlDrillStore(engine).record(record, NewEvent(record.drill_id, record.actor, EventKind.DRILL_PATH, {}))
        finally:
            engine.dispose()


def make_setup(tmp_path: Path, *, zones: str = ZONES, policy: str = POLICY, drills: str = "") -> Setup:
    key = generate_signing_key()
    (tmp_path / "policy.yaml").write_text(policy)
    (tmp_path / "policy.yaml.sig").write_bytes(sign_policy(policy.encode(), key.private_openssh))
    url = f"sqlite:///{tmp_path / 'bg.db'}"
    (tmp_path / "breakglass.toml").write_text(f"""
[database]
url = "{url}"

[vault]
address = "http://127.0.0.1:1"

[policy]
file = "policy.yaml"
trusted_keys = ["{key.public_openssh}"]

[drills]
stale_after_days = 30
{drills}
{zones}
""")
    upgrade(url)
    return Setup(tmp_path / "breakglass.toml", url)


def readiness(setup: Setup, *args: str) -> tuple[int, Any]:
    result = cli.invoke(app, ["readiness", "--config", str(setup.config), "--json", *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def findings(report: Any) -> set[tuple[str, str, str]]:
    """(kind, subject, severity) of every finding, general and per record."""
    found = {(f["kind"], f["subject"], f["severity"]) for f in report["findings"]}
    for record in report["records"]:
        found |= {(f["kind"], f["subject"], f["severity"]) for f in record["findings"]}
    return found


@pytest.fixture
def faulty(tmp_path: Path) -> Setup:
    setup = make_setup(tmp_path)
    setup.drilled("a.test.", "bind-a", days_ago=1, routing=0.5)
    setup.drilled("b.test.", "pdns-api", days_ago=2, routing=1.0)
    setup.drilled("b.test.", "pdns-rfc2136", days_ago=45, routing=0.8)  # stale
    return setup


def test_deliberate_faults_produce_exactly_those_findings(faulty: Setup) -> None:
    code, report = readiness(faulty)
    assert code == 0  # no --fail-on: report only
    assert findings(report) == {
        ("single_path", "api.a.test. A", "high"),
        ("shared_trust_path", "www.b.test. A", "high"),
        ("stale_drill", "path pdns-rfc2136 of b.test.", "medium"),
        ("quorum_fragile", "www.b.test. A", "high"),
    }
    a, b = report["records"]
    shared = next(f for f in b["findings"] if f["kind"] == "shared_trust_path")
    assert "identity vault approle default@http://127.0.0.1:1" in shared["message"]
    assert "OWASP NHI9:2025 NHI Reuse" in shared["controls"] and "NIST CSF 2.0 RC.RP-02" in shared["controls"]
    single = next(f for f in a["findings"] if f["kind"] == "single_path")
    assert "NIST CSF 2.0 RC.RP-02" in single["controls"] and "backup" in single["action"]
    quorum = next(f for f in b["findings"] if f["kind"] == "quorum_fragile")
    assert "one absence blocks it" in quorum["message"]
    assert b["approvers"] == {
        "rule": "b-zone", "needed": 2, "eligible": ["alice", "bob", "carol"], "available": 2, "spare": 0,
        "must_include": [], "emergency": False,
    }  # fmt: skip
    assert a["approvers"]["spare"] == 2
    paths = {p["path"]: p for p in b["paths"]}
    assert paths["pdns-api"]["last_drill"]["routing_seconds"] == 1.0
    assert paths["pdns-api"]["time_to_routing_seconds"] == 1.0
    assert a["leads_to"] == ["token service"] and a["service"] == "checkout"


def test_fail_on_sets_the_exit_code(faulty: Setup) -> None:
    assert readiness(faulty, "--fail-on", "high")[0] == 1
    assert readiness(faulty, "--fail-on", "critical")[0] == 0
    text = cli.invoke(app, ["readiness", "-c", str(faulty.config), "--fail-on", "medium"])
    assert text.exit_code == 1
    assert "4 finding(s) at or above medium" in text.stderr
    assert "[high] single_path" in text.stdout and "what to do:" in text.stdout
    bad = cli.invoke(app, ["readiness", "-c", str(faulty.config), "--fail-on", "severe"])
    assert bad.exit_code == 2 and "is not a severity" in bad.stderr


def test_rto_missed_and_never_drilled(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, drills="approval_estimate_seconds = 100")
    setup.drilled("a.test.", "bind-a", days_ago=1, routing=250.0)  # 250 s + 100 s of approvals > 300 s RTO
    setup.drilled("b.test.", "pdns-api", days_ago=1, routing=5.0)  # 105 s <= 120 s
    _, report = readiness(setup)
    found = findings(report)
    assert ("rto_missed", "path bind-a of a.test.", "high") in found
    assert ("stale_drill", "path pdns-rfc2136 of b.test.", "high") in found  # never drilled at all
    assert not any(kind == "rto_missed" and "pdns-api" in subject for kind, subject, _ in found)
    a = report["records"][0]
    missed = next(f for f in a["findings"] if f["kind"] == "rto_missed")
    assert "350.0s" in missed["message"] and "propagation" in missed["action"]


def test_unsigned_policy_is_a_critical_finding(faulty: Setup) -> None:
    policy = faulty.config.parent / "policy.yaml"
    policy.write_text(policy.read_text() + "# edited after signing\n")
    code, report = readiness(faulty, "--fail-on", "critical")
    assert code == 1
    assert report["policy_problem"] and "modified" in str(report["policy_problem"])
    (general,) = report["findings"]
    assert general["kind"] == "policy_unsigned" and general["severity"] == "critical"
    assert "breakglass policy sign" in general["action"]


def test_old_sealed_envelope_and_missing_rule(tmp_path: Path) -> None:
    envelope = tmp_path / "envelope.json"
    tsig = TsigKey("k.", TsigAlgorithm.HMAC_SHA256, Secret("c2VjcmV0"))
    envelope.write_bytes(seal(tsig, "c.test/rfc2136", generate_key(), created_at=NOW - timedelta(days=200)))
    zones = f"""
[[zones]]
name = "c.test"
authoritative_servers = ["127.0.0.1:1"]
[[zones.paths]]
kind = "powerdns"
name = "api"
api_url = "http://127.0.0.1:1"
credentials = {{ source = "vault-kv", path = "pdns/api", kind = "api_key" }}
[[zones.paths]]
kind = "rfc2136"
name = "sealed"
server = "127.0.0.1:2"
credentials = {{ source = "sealed", envelope_path = "{envelope}", envelope_name = "c.test/rfc2136", key_env = "K" }}

[[inventory]]
record = "mail.c.test"
type = "MX"
service = "mail"
rto_seconds = 600
"""
    setup = make_setup(tmp_path, zones=zones)
    setup.drilled("c.test.", "api", days_ago=1, routing=0.3)
    _, report = readiness(setup)
    assert findings(report) == {
        ("credential_age", "path sealed of c.test.", "medium"),
        ("no_policy_rule", "mail.c.test. MX", "critical"),
    }  # the sealed path is not expected to be drilled
    (record,) = report["records"]
    sealed = next(p for p in record["paths"] if p["path"] == "sealed")
    assert sealed["sealed"] and 199 < sealed["credential_age_days"] < 201
    age = next(f for f in record["findings"] if f["kind"] == "credential_age")
    assert age["controls"] == ["OWASP NHI7:2025 Long-Lived Secrets"]


def test_html_report_escapes_configured_text(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, zones=ZONES.replace('service = "checkout"', 'service = "<script>x</script>"'))
    result = cli.invoke(app, ["readiness", "-c", str(setup.config), "--html"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<!doctype html>") and "<script>" not in result.stdout
    assert "&lt;script&gt;" in result.stdout and "never drilled successfully" in result.stdout
    assert cli.invoke(app, ["readiness", "-c", str(setup.config), "--html", "--json"]).exit_code == 2


def test_inventory_outside_every_zone_is_a_config_error(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, zones=ZONES.replace('record = "api.a.test"', 'record = "api.elsewhere.test"'))
    result = cli.invoke(app, ["readiness", "-c", str(setup.config)])
    assert result.exit_code == 2
    assert "inventory record api.elsewhere.test. is not in any configured zone" in result.stderr
