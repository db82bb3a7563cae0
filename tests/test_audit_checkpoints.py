"""Every way a request or drill ends is sealed by a signed audit checkpoint, at once.

Without one, the last events of a denied or expired request or of a drill sit after the newest
checkpoint until some later request finishes, and someone who can write to the database could
cut them off the end of the chain without verification noticing. Each test ends a request or
drill the way people do in Slack and checks what a reviewer would: one new checkpoint in the
audit channel and in the checkpoint file, signing exactly the last event, and
`breakglass audit verify` passing (and failing once those events are cut off).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.localstack import AUDIT_CHANNEL, DEFAULT_RULES, LocalStack
from core.events import EventKind
from core.states import RequestState
from sandbox.net import wait_until
from sandbox.openbao import OpenBaoServer
from store.audit import AuditLog
from store.checkpoints import Checkpoint, read_checkpoints
from store.sql import SqlRequestStore
from tests.fixtures.bot import WAIT, SlackDriver
from tests.test_drills import DRILL_RULE

BREAKGLASS = str(Path(sys.executable).parent / "breakglass")
SHORT_RULE = """
  - name: short-lived
    zone: example.test
    names: [short.example.test]
    types: [A]
    requesters: [sre]
    approvals: {count: 2, approvers: [sre]}
    expires_after: 2s
"""


@pytest.fixture(scope="module")
def stack(openbao: OpenBaoServer) -> Iterator[LocalStack]:
    # First match wins: the short-lived name and the drill canary before the catch-all rule.
    with LocalStack(vault=openbao, verify_timeout=5.0, policy_rules=SHORT_RULE + DRILL_RULE + DEFAULT_RULES) as running:
        yield running


def audit_posts(stack: LocalStack) -> list[str]:
    return [m.text for m in stack.fake.channel_messages(AUDIT_CHANNEL)]


def checkpoint_file(stack: LocalStack) -> Path:
    return stack.workdir / "checkpoints.jsonl"


def filed(stack: LocalStack) -> list[Checkpoint]:
    path = checkpoint_file(stack)
    return read_checkpoints(path) if path.exists() else []


def new_checkpoint(stack: LocalStack, posts_before: int, filed_before: int) -> Checkpoint:
    """The one checkpoint made since then: posted to the audit channel and appended to the file, the same."""
    wait_until(lambda: len(audit_posts(stack)) > posts_before, WAIT, "a checkpoint in the audit channel")
    (posted,) = audit_posts(stack)[posts_before:]
    checkpoint = Checkpoint.from_text(posted)
    assert filed(stack)[filed_before:] == [checkpoint]
    return checkpoint


def last_seq(stack: LocalStack, subject: str) -> int:
    return SqlRequestStore(stack.engine).events(subject)[-1].seq


def audit_verify(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BREAKGLASS, "audit", "verify", "--config", str(config)], capture_output=True, text=True, timeout=60
    )


def assert_verifies(stack: LocalStack, through: int) -> None:
    result = audit_verify(stack.config_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"events 1-{through} match signed checkpoints" in result.stdout


def test_a_denied_request_is_sealed_by_a_checkpoint_and_cutting_it_off_is_detected(
    stack: LocalStack, tmp_path: Path
) -> None:
    slack, p = SlackDriver(stack), stack.people
    approve = slack.request(p.alice, 'set api.example.test A 203.0.113.10 ttl=60 reason="INC-42 LB down"')
    request_id = approve.value or ""
    posts, lines = len(audit_posts(stack)), len(filed(stack))

    slack.click(p.bob, stack.fake.find_button(action_id="deny", value=request_id))

    checkpoint = new_checkpoint(stack, posts, lines)
    assert stack.service.status(request_id).stored.state is RequestState.DENIED
    assert SqlRequestStore(stack.engine).events(request_id)[-1].kind is EventKind.DENIED
    assert checkpoint.seq == last_seq(stack, request_id)  # it signs the denial itself
    assert checkpoint.head == AuditLog(stack.engine).head()
    stack.fake.wait_for("chat.update", timeout=WAIT, predicate=lambda c: "Denied" in json.dumps(c.args))
    assert_verifies(stack, checkpoint.seq)

    # A database admin cuts the denied request off the end of the chain (head moved back too): a copy of it.
    copy = tmp_path / "tampered.db"
    with sqlite3.connect(stack.workdir / "breakglass.db") as source, sqlite3.connect(copy) as target:
        source.backup(target)
    with sqlite3.connect(copy) as db:
        first = db.execute("SELECT min(seq) FROM events WHERE request_id = ?", (request_id,)).fetchone()[0]
        (prev,) = db.execute("SELECT prev_hash FROM events WHERE seq = ?", (first,)).fetchone()
        db.execute("DELETE FROM events WHERE seq >= ?", (first,))
        db.execute("UPDATE chain_head SET seq = ?, hash = ?", (first - 1, prev))
    config = tmp_path / "tampered.toml"
    config.write_text(
        stack.config_path.read_text()
        .replace(str(stack.workdir / "breakglass.db"), str(copy))
        .replace('checkpoint_file = "checkpoints.jsonl"', f'checkpoint_file = "{checkpoint_file(stack)}"')
        .replace('"audit-key', f'"{stack.workdir}/audit-key')
    )
    result = audit_verify(config)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"events {first}-{checkpoint.seq} were removed (truncated)" in result.stdout


def test_an_expired_request_is_sealed_by_a_checkpoint(stack: LocalStack) -> None:
    slack, p = SlackDriver(stack), stack.people
    approve = slack.request(p.alice, 'set short.example.test A 203.0.113.7 ttl=60 reason="INC-7 short"')
    request_id = approve.value or ""
    expires_at = stack.service.status(request_id).expires_at
    assert expires_at is not None
    wait_until(lambda: datetime.now(UTC) > expires_at, WAIT, "the rule's 2 s to pass", interval=0.1)
    posts, lines = len(audit_posts(stack)), len(filed(stack))

    slack.click(p.bob, approve)

    assert "expired" in slack.ephemeral_to(p.bob)
    checkpoint = new_checkpoint(stack, posts, lines)
    assert stack.service.status(request_id).stored.state is RequestState.EXPIRED
    assert checkpoint.seq == last_seq(stack, request_id)  # the expiry and the refused click after it
    stack.fake.wait_for("chat.update", timeout=WAIT, predicate=lambda c: "Expired" in json.dumps(c.args))
    assert_verifies(stack, checkpoint.seq)


def test_a_drill_is_sealed_by_a_checkpoint_and_a_refused_one_posts_none(stack: LocalStack) -> None:
    slack, p = SlackDriver(stack), stack.people
    posts, lines = len(audit_posts(stack)), len(filed(stack))

    slack.command(p.alice, "drill example.test")

    posted = stack.fake.wait_for("chat.postMessage", timeout=WAIT, predicate=lambda c: "ran a drill" in str(c.args))
    assert str(posted[-1].args["text"]).startswith(":white_check_mark:")
    drill_id = str(posted[-1].args["text"]).split("Drill ", 1)[1].split(" ", 1)[0]
    checkpoint = new_checkpoint(stack, posts, lines)
    assert SqlRequestStore(stack.engine).events(drill_id)[-1].kind is EventKind.DRILL_FINISHED
    assert checkpoint.seq == last_seq(stack, drill_id)
    assert_verifies(stack, checkpoint.seq)

    # dave is not in the drill rule: refused, nothing written to DNS, and no audit channel message for it
    # (anyone in Slack can cause a refusal); its event waits for the next checkpoint.
    posts, lines = len(audit_posts(stack)), len(filed(stack))
    slack.command(p.dave, "drill example.test")
    stack.fake.wait_for(
        "chat.postMessage", timeout=WAIT, predicate=lambda c: "ran a drill" in str(c.args) and p.dave in str(c.args)
    )  # queued after any checkpoint would have been, and the outbox delivers in order
    assert (len(audit_posts(stack)), len(filed(stack))) == (posts, lines)
