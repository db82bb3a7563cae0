"""The signed policy in real flows: every rule dimension and bypass, out of band, and under concurrency.

Each refusal must be clear to the person and leave an audit event; nothing is applied.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.localstack import LocalStack, ssh_keypair
from core.events import EventKind
from core.models import Principal, PrincipalSource
from core.states import RequestState
from sandbox.openbao import OpenBaoServer
from tests.fixtures.bot import SlackDriver

BREAKGLASS = str(Path(sys.executable).parent / "breakglass")
SET = 'set api.example.test A 203.0.113.10 ttl=60 reason="INC-42 fail over"'

SECURITY_RULE = """
  - name: guarded
    zone: example.test
    names: ["*"]
    types: [A, AAAA, CNAME, TXT]
    requesters: [sre]
    approvals: {count: 2, approvers: [sre, security], must_include: [security], rollback_count: 1}
    targets: {networks: [203.0.113.0/24]}
    ttl: {min: 30, max: 600}
    expires_after: 30m
    ticket: "INC-[0-9]+"
"""
EMERGENCY_RULE = """
  - name: web
    zone: example.test
    names: ["*"]
    types: [A]
    requesters: [sre]
    approvals: {count: 2, approvers: [sre]}
    expires_after: 30m
    emergency: {allowed: true, groups: [sre]}
"""
SHORT_RULE = """
  - name: short
    zone: example.test
    names: ["*"]
    types: [A]
    requesters: [sre]
    approvals: {count: 2, approvers: [sre]}
    expires_after: 5s
"""


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BREAKGLASS, *args], capture_output=True, text=True, timeout=90, input=stdin)


def events(stack: LocalStack, request_id: str) -> list[tuple[EventKind, str]]:
    return [(e.kind, str(e.details.get("reason", ""))) for e in stack.service.status(request_id).events]


@pytest.fixture
def guarded(openbao: OpenBaoServer) -> Iterator[LocalStack]:
    with LocalStack(vault=openbao, policy_rules=SECURITY_RULE) as running:
        yield running


def test_group_mix_targets_ttl_and_ticket_are_enforced(guarded: LocalStack) -> None:
    stack, slack, p = guarded, SlackDriver(guarded), guarded.people
    slack.command(p.alice, 'set api.example.test A 198.51.100.7 reason="INC-1 x"')
    assert "198.51.100.7" in slack.response_url_text() and "203.0.113.0/24" in slack.response_url_text()
    slack.command(p.alice, 'set api.example.test A 203.0.113.7 ttl=5 reason="INC-1 x"')
    assert "TTL" in slack.response_url_text()
    slack.command(p.alice, 'set api.example.test A 203.0.113.7 ttl=60 reason="no ticket here"')
    assert "INC-[0-9]+" in slack.response_url_text()
    refused = [e for r in stack.service.recent(10) for e in [r]]
    assert refused == []  # nothing was created by refused requests

    approve = slack.request(p.alice, 'set api.example.test A 203.0.113.7 ttl=60 reason="INC-1 fail over"')
    slack.click(p.bob, approve)
    slack.click(p.carol, approve)  # two sre approvals, but nobody from security yet
    stack.fake.wait_for(
        "chat.update", timeout=60, predicate=lambda c: "at least one from security" in json.dumps(c.args)
    )
    assert stack.service.status(approve.value or "").stored.state is RequestState.PENDING_APPROVAL
    slack.click(p.dave, approve)
    assert slack.verdict(approve).startswith("Verified")


def test_non_roster_requester_is_refused_and_audited(guarded: LocalStack) -> None:
    slack = SlackDriver(guarded)
    slack.command(guarded.people.mallory, SET)
    assert "not" in slack.response_url_text().lower()
    with guarded.engine.connect() as db:
        from sqlalchemy import text

        kinds = [row[0] for row in db.execute(text("SELECT kind FROM events"))]
    assert kinds == ["request_refused"]


def test_tampered_unsigned_and_untrusted_policies_are_refused(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao) as stack:
        slack, p = SlackDriver(stack), stack.people
        approve = slack.request(p.alice, SET)
        policy = stack.policy_path.read_text()

        stack.policy_path.write_text(policy.replace("count: 2", "count: 1"))  # edited after signing
        slack.command(p.alice, SET)
        assert "modified after it was signed" in slack.response_url_text()
        slack.click(p.bob, approve)
        assert "modified after it was signed" in slack.ephemeral_to(p.bob)
        slack.command(p.alice, "status")
        assert "refuses every request" in slack.response_url_text()

        (stack.workdir / "policy.yaml.sig").unlink()
        slack.command(p.alice, SET)
        assert "not signed" in slack.response_url_text()

        rogue, _ = ssh_keypair("rogue")
        signature = cli("policy", "sign", str(stack.policy_path), "--key", str(_write(stack.workdir / "rogue", rogue)))
        assert signature.returncode == 0, signature.stderr
        slack.command(p.alice, SET)
        assert "not a trusted policy key" in slack.response_url_text()
        refusals = [r for k, r in events(stack, approve.value or "") if k is EventKind.APPROVAL_REFUSED]
        assert refusals == ["policy_refused"]


def test_a_policy_change_voids_approvals_given_under_the_old_rules(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao) as stack:
        slack, p = SlackDriver(stack), stack.people
        approve = slack.request(p.alice, SET)
        slack.click(p.bob, approve)
        stack.fake.wait_for("chat.update", timeout=60, predicate=lambda c: "needs 1 more" in json.dumps(c.args))
        stack.write_policy(rules=EMERGENCY_RULE)  # properly re-signed, but different rules
        slack.click(p.carol, approve)
        assert "approvals under the old rules are void" in slack.ephemeral_to(p.carol)
        assert stack.service.status(approve.value or "").stored.state is RequestState.PENDING_APPROVAL


def test_requests_expire(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao, policy_rules=SHORT_RULE) as stack:
        slack, p = SlackDriver(stack), stack.people
        approve = slack.request(p.alice, SET)
        slack.click(p.bob, approve)
        stack.fake.wait_for("chat.update", timeout=60, predicate=lambda c: "needs 1 more" in json.dumps(c.args))
        expires_at = stack.service.status(approve.value or "").expires_at
        assert expires_at is not None
        time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 0.1)  # the rule's 5 s pass
        slack.click(p.carol, approve)
        assert "expired" in slack.ephemeral_to(p.carol)
        status = stack.service.status(approve.value or "")
        assert status.stored.state is RequestState.EXPIRED
        assert (EventKind.APPROVAL_REFUSED, "expired") in events(stack, approve.value or "")


def test_emergency_self_approval_notifies_every_approver_and_requires_review(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao, policy_rules=EMERGENCY_RULE) as stack:
        slack, p = SlackDriver(stack), stack.people
        slack.request(p.alice, SET)
        emergency = stack.fake.find_button(action_id="emergency_approve")
        slack.click(p.bob, emergency)  # only the requester may use it
        assert "Only the requester" in slack.ephemeral_to(p.bob)
        slack.click(p.alice, emergency)
        notice = stack.fake.wait_for(
            "chat.postMessage", timeout=60, predicate=lambda c: "emergency clause" in str(c.args.get("text"))
        )[0]
        assert f"<@{p.bob}>" in notice.args["text"] and f"<@{p.carol}>" in notice.args["text"]
        assert slack.verdict(emergency).startswith("Verified")
        status = stack.service.status(emergency.value or "")
        (event,) = [e for e in status.events if e.kind is EventKind.EMERGENCY_APPROVED]
        assert event.details["review_required"] is True


def test_no_emergency_button_or_clause_where_the_rule_does_not_allow_it(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao) as stack:
        slack, p = SlackDriver(stack), stack.people
        approve = slack.request(p.alice, SET)
        with pytest.raises(LookupError):
            stack.fake.find_button(action_id="emergency_approve")
        result = cli("approve", approve.value or "", "--config", str(stack.config_path),
                     "--key", str(stack.keys["alice"]), "--emergency")  # fmt: skip
        assert result.returncode == 2 and "does not allow emergency self-approval" in result.stderr


def test_out_of_band_request_and_approvals_with_ssh_keys(openbao: OpenBaoServer) -> None:
    """Slack is down: alice requests, bob approves with his key, carol signs on her laptop."""
    with LocalStack(vault=openbao) as stack:
        config = str(stack.config_path)
        requested = cli(
            "request", "set", "--config", config, "--key", str(stack.keys["alice"]),
            "api.example.test", "A", "203.0.113.10", "--ttl", "60", "--reason", "INC-42 Slack is down",
        )  # fmt: skip
        assert requested.returncode == 0, requested.stderr
        request_id = requested.stdout.split()[0]
        status = stack.service.status(request_id)
        assert status.stored.request.requester == Principal(PrincipalSource.KEY, "alice")

        by_bob = cli("approve", request_id, "--config", config, "--key", str(stack.keys["bob"]))
        assert by_bob.returncode == 0 and "1 more approver" in by_bob.stdout, by_bob.stderr

        printed = cli("approve", request_id, "--config", config, "--print-statement")
        command = next(line.split() for line in printed.stdout.splitlines() if "breakglass sign" in line)
        digest = command[command.index("--digest") + 1]
        signed = cli("sign", request_id, "--digest", digest, "--as", "carol", "--key", str(stack.keys["carol"]))
        assert signed.returncode == 0 and "BEGIN" in signed.stdout
        quoted = "\n".join("> " + line for line in signed.stdout.splitlines())  # as pasted into a chat
        submitted = cli("approve", request_id, "--config", config, "--submit-signature", "-", stdin=quoted)
        assert submitted.returncode == 0, submitted.stderr
        assert "is now verified" in submitted.stdout
        kinds = [k for k, _ in events(stack, request_id)]
        assert kinds.count(EventKind.APPROVED) == 2 and EventKind.VERIFIED in kinds


def test_signature_bypasses_are_refused_and_audited(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao) as stack:
        slack, p, config = SlackDriver(stack), stack.people, str(stack.config_path)
        first = slack.request(p.alice, SET).value or ""
        second = slack.request(p.alice, 'set www2.example.test A 203.0.113.11 reason="INC-43"').value or ""
        digest = stack.service.status(first).stored.plan.digest()

        unknown, _ = ssh_keypair("mallory")
        mallory_key = str(_write(stack.workdir / "m", unknown))
        forged = cli("sign", first, "--digest", digest, "--as", "bob", "--key", mallory_key)
        result = cli("approve", first, "--config", config, "--submit-signature", "-", stdin=forged.stdout)
        assert result.returncode == 2 and "not pinned to anyone" in result.stderr

        by_bob = cli("sign", first, "--digest", digest, "--as", "bob", "--key", str(stack.keys["bob"])).stdout
        replayed = cli("approve", second, "--config", config, "--submit-signature", "-",
                       stdin=by_bob.replace(first, second))  # fmt: skip
        assert replayed.returncode == 2 and "does not verify" in replayed.stderr

        stale = cli("sign", first, "--digest", "0" * 64, "--as", "bob", "--key", str(stack.keys["bob"])).stdout
        result = cli("approve", first, "--config", config, "--submit-signature", "-", stdin=stale)
        assert result.returncode == 2 and "plan is now" in result.stderr

        self_signed = cli("approve", first, "--config", config, "--key", str(stack.keys["alice"]))
        assert self_signed.returncode == 2 and "You requested this change" in self_signed.stderr

        assert [r for k, r in events(stack, first) if k is EventKind.APPROVAL_REFUSED] == [
            "unknown_key", "stale_plan", "self_approval",
        ]  # fmt: skip
        assert [r for k, r in events(stack, second) if k is EventKind.APPROVAL_REFUSED] == ["bad_signature"]

        # The same person through Slack and through their key counts once.
        slack.click(p.bob, stack.fake.find_button(action_id="approve", value=first))
        stack.fake.wait_for("chat.update", timeout=60, predicate=lambda c: "needs 1 more" in json.dumps(c.args))
        again = cli("approve", first, "--config", config, "--key", str(stack.keys["bob"]))
        assert again.returncode == 2 and "already approved" in again.stderr


def test_the_approval_path_never_leaves_this_machine(openbao: OpenBaoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """No identity provider is asked: every connection off loopback fails, and the flow still works."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def loopback_only(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else ""
        if host not in ("127.0.0.1", "::1", "localhost") and not str(address).startswith("/"):
            attempts.append(address)
            raise OSError(f"network unreachable in this test: {address}")
        real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    with LocalStack(vault=openbao) as stack:
        slack, p = SlackDriver(stack), stack.people
        approve = slack.request(p.alice, SET)
        slack.click(p.bob, approve)
        slack.click(p.carol, approve)
        assert slack.verdict(approve).startswith("Verified")
    assert attempts == []


def _approve_in_process(config: str, request_id: str, user: str, results: multiprocessing.Queue[str]) -> None:
    import bootstrap
    from config import load_config
    from core.errors import ApprovalRefused

    settings = load_config(Path(config))
    service = bootstrap.build_service(settings, bootstrap.build_engine(settings))
    try:
        outcome = service.approve(request_id, Principal(PrincipalSource.SLACK, user))
        results.put("ready" if outcome.ready_to_apply else "counted")
    except ApprovalRefused as refusal:
        results.put(refusal.reason.value)


@pytest.mark.postgres
def test_concurrent_approvals_from_several_processes_on_postgres(openbao: OpenBaoServer, postgres_url: str) -> None:
    with LocalStack(vault=openbao, database_url=postgres_url, policy_rules=SECURITY_RULE) as stack:
        slack, p = SlackDriver(stack), stack.people
        request_id = slack.request(p.alice, 'set api.example.test A 203.0.113.7 ttl=60 reason="INC-7 race"').value
        context = multiprocessing.get_context("spawn")
        results: multiprocessing.Queue[str] = context.Queue()
        voters = [p.bob, p.carol, p.dave, p.bob, p.carol, p.dave]
        workers = [context.Process(target=_approve_in_process, args=(str(stack.config_path), request_id, u, results))
                   for u in voters]  # fmt: skip
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        outcomes = sorted(results.get(timeout=5) for _ in voters)
        status = stack.service.status(request_id or "")
        assert outcomes.count("ready") == 1  # exactly one process saw the transition to approved
        # The others were counted, refused as repeats, or came after approval closed: never anything else.
        assert set(outcomes) <= {"ready", "counted", "already_approved", "not_pending"}
        approvers = [str(a.approver) for a in status.approvals]
        assert len(approvers) == len(set(approvers)) >= 2
        assert [e.kind for e in status.events].count(EventKind.QUORUM_REACHED) == 1
        assert status.stored.state is RequestState.APPROVED


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path
