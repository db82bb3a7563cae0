"""`breakglass audit verify|checkpoint|export` on a real SQLite database, as an auditor would run them."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cli.main import app
from core.events import EventKind, NewEvent
from core.models import RequestKind
from store.sql import SqlRequestStore, make_engine
from tests.test_store import ALICE, make_request

BREAKGLASS = Path(sys.executable).with_name("breakglass")
runner = CliRunner()


@dataclasses.dataclass
class Audit:
    config: Path
    url: str
    private_key: Path
    public_key: Path
    checkpoints: Path
    ids: dict[str, str]

    def run(self, *args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["audit", *args, "--config", str(self.config)])
        return result.exit_code, result.output

    def sql(self, statement: str) -> None:
        engine = make_engine(self.url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(statement)
        finally:
            engine.dispose()


def _request(store: SqlRequestStore, request_id: str, reason: str, **changes: object) -> str:
    request, plan = make_request(request_id)
    request = dataclasses.replace(request, reason=reason, **changes)  # type: ignore[arg-type]
    store.create(request, plan, NewEvent(request.id, str(ALICE), EventKind.PLANNED, {"digest": plan.digest()}))
    for n in range(3):
        store.append(NewEvent(request.id, "system:breakglass", EventKind.SERVER_CHECKED, {"n": n}))
    return request.id


@pytest.fixture
def audit(sqlite_url: str, tmp_path: Path) -> Audit:
    """Three requests (INC-42, its rollback, INC-420): 12 events. Only [database] is in the config."""
    engine = make_engine(sqlite_url)
    try:
        store = SqlRequestStore(engine)
        inc42 = _request(store, "BG-AAAAA2", "INC-42 primary LB down")
        rollback = _request(
            store, "BG-BBBBB3", "Rollback of something: undo", kind=RequestKind.ROLLBACK, rollback_of=inc42
        )
        inc420 = _request(store, "BG-CCCCC4", "inc-420: unrelated")
    finally:
        engine.dispose()
    config = tmp_path / "breakglass.toml"
    config.write_text(f'[database]\nurl = "{sqlite_url}"\n')
    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / "audit.pem", tmp_path / "audit.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    ids = {"inc42": inc42, "rollback": rollback, "inc420": inc420}
    return Audit(config, sqlite_url, private, public, tmp_path / "checkpoints.jsonl", ids)


# --- verify ---------------------------------------------------------------------------------------


def test_verify_passes_then_names_the_first_bad_sequence_number(audit: Audit) -> None:
    code, out = audit.run("verify")
    assert code == 0, out
    assert "12 events" in out and "OK" in out
    assert "no checkpoints given" in out  # says plainly what it cannot see

    audit.sql("UPDATE events SET details_json = '{\"n\":99}' WHERE seq = 6")
    audit.sql("DELETE FROM events WHERE seq = 9")
    code, out = audit.run("verify")

    assert code == 1
    assert "first bad sequence number: 6" in out
    assert "seq 6: event 6 does not match its hash" in out
    assert "seq 9: event 9 is missing" in out


def test_checkpoint_then_truncation_is_caught_only_with_it(audit: Audit) -> None:
    code, out = audit.run(
        "checkpoint", "--private-key", str(audit.private_key), "--checkpoints", str(audit.checkpoints)
    )
    assert code == 0, out
    assert out.startswith("breakglass-checkpoint v1 seq=12 ")
    assert len(audit.checkpoints.read_text().splitlines()) == 1

    audit.sql("DELETE FROM events WHERE seq > 10")
    audit.sql("UPDATE chain_head SET seq = 10, hash = (SELECT hash FROM events WHERE seq = 10)")
    alone_code, alone = audit.run("verify")
    code, out = audit.run("verify", "--checkpoints", str(audit.checkpoints), "--public-key", str(audit.public_key))

    assert alone_code == 0 and "OK" in alone  # the chain alone cannot show a clean cut
    assert code == 1
    assert "first bad sequence number: 11" in out
    assert "events 11-12 were removed (truncated)" in out


def test_checkpoint_pasted_from_slack_is_accepted_and_a_wrong_key_is_refused(audit: Audit, tmp_path: Path) -> None:
    _, line = audit.run("checkpoint", "--private-key", str(audit.private_key))
    pasted = tmp_path / "from-slack.txt"
    pasted.write_text(f"breakglass APP  09:41\nAudit checkpoint `{line.strip()}`\n")
    other = tmp_path / "other.pub.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    ok_code, ok = audit.run("verify", "--checkpoints", str(pasted), "--public-key", str(audit.public_key))
    bad_code, bad = audit.run("verify", "--checkpoints", str(pasted), "--public-key", str(other))

    assert ok_code == 0 and "events 1-12 match signed checkpoints" in ok, ok
    assert bad_code == 1 and "does not verify with this public key" in bad


def test_checkpoint_and_key_files_come_from_the_audit_section(audit: Audit) -> None:
    audit.config.write_text(
        audit.config.read_text()
        + '\n[audit]\nsigning_key_file = "audit.pem"\npublic_key_file = "audit.pub.pem"\n'
        + 'checkpoint_file = "checkpoints.jsonl"\n'
    )
    assert audit.run("checkpoint")[0] == 0
    audit.sql("UPDATE chain_head SET seq = 11, hash = (SELECT hash FROM events WHERE seq = 11)")
    audit.sql("DELETE FROM events WHERE seq = 12")

    code, out = audit.run("verify")

    assert code == 1 and "truncated" in out


def test_usage_errors_exit_2_and_say_what_to_do(audit: Audit, tmp_path: Path) -> None:
    code, out = audit.run("verify", "--checkpoints", str(audit.checkpoints))
    assert code == 2 and "go together" in out
    code, out = audit.run("checkpoint")
    assert code == 2 and "--private-key" in out
    code, out = audit.run("export", "--since", "yesterday")
    assert code == 2 and "ISO 8601" in out
    code, out = audit.run("export", "--incident", "not a tag")
    assert code == 2 and "INC-42" in out
    code, out = audit.run("report", "-o", str(tmp_path / "r.html"))
    assert code == 2 and "--request ID or --incident TAG" in out
    missing = runner.invoke(app, ["audit", "verify", "--config", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "Cannot read the config file" in missing.output


# --- export ---------------------------------------------------------------------------------------


def _jsonl(audit: Audit, *args: str) -> list[dict[str, object]]:
    code, out = audit.run("export", *args)
    assert code == 0, out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_export_selects_by_incident_request_and_time(audit: Audit) -> None:
    ids = audit.ids
    everything = _jsonl(audit)
    by_incident = _jsonl(audit, "--incident", "inc-42")
    by_request = _jsonl(audit, "--request", ids["inc420"].lower())
    middle = everything[5]["at"]
    late = _jsonl(audit, "--since", str(middle))
    early = _jsonl(audit, "--until", str(middle))

    assert [e["seq"] for e in everything] == list(range(1, 13))
    assert {e["request_id"] for e in by_incident} == {ids["inc42"], ids["rollback"]}  # not INC-420
    assert {e["request_id"] for e in by_request} == {ids["inc420"]}
    assert [e["seq"] for e in late] == list(range(6, 13)) and [e["seq"] for e in early] == list(range(1, 6))
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert _jsonl(audit, "--since", future) == []


def test_every_exported_line_can_be_rehashed_with_only_json_and_sha256(audit: Audit) -> None:
    previous = "0" * 64
    for event in _jsonl(audit):
        fields = {k: v for k, v in event.items() if k not in ("prev_hash", "hash")}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        assert event["prev_hash"] == previous
        assert hashlib.sha256((previous + canonical).encode()).hexdigest() == event["hash"]
        previous = str(event["hash"])


def test_export_csv_to_a_file(audit: Audit, tmp_path: Path) -> None:
    target = tmp_path / "events.csv"
    code, out = audit.run("export", "--incident", "INC-42", "--format", "csv", "-o", str(target))

    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert code == 0 and "wrote 8 events" in out
    assert list(rows[0]) == ["seq", "at", "request_id", "actor", "kind", "details", "prev_hash", "hash"]
    assert [r["kind"] for r in rows[:2]] == ["planned", "server_checked"]
    assert json.loads(rows[1]["details"]) == {"n": 0}
    assert rows[0]["at"].endswith("Z")


# --- the installed command ------------------------------------------------------------------------


def test_installed_command_verifies_in_several_processes(audit: Audit) -> None:
    done = subprocess.run(
        [str(BREAKGLASS), "audit", "verify", "--config", str(audit.config), "--workers", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 events" in done.stdout

    audit.sql("UPDATE events SET actor = 'slack:U0EVE' WHERE seq = 5")
    tampered = subprocess.run(
        [str(BREAKGLASS), "audit", "verify", "--config", str(audit.config), "--workers", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tampered.returncode == 1
    assert "first bad sequence number: 5" in tampered.stdout
