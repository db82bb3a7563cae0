"""The whole path over real sockets: signed Slack requests -> bot -> Vault -> BIND -> verification.

Each test drives the bot as Slack and people would (signed HTTP requests, clicking the
buttons the bot actually rendered) and checks what people would check: what Slack
shows, what the name servers answer, and what the audit trail says.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import hvac.exceptions
import pytest

from cli.localstack import LocalStack
from core.events import EventKind
from core.records import RecordType, RRset
from core.states import RequestState
from providers.authoritative import DnsAuthoritativeQuerier
from sandbox.slack_signing import slash_command_body
from tests.fixtures.bind import out_of_band
from tests.fixtures.bot import SlackDriver, assert_no_secret_leaked, is_plan_post, update_of

NAME = "api.example.test."
SET_NEW = f'set {NAME} A 203.0.113.10 ttl=60 reason="INC-42 primary LB down"'
OLD = RRset.build(NAME, RecordType.A, 300, ["192.0.2.10"])
NEW = RRset.build(NAME, RecordType.A, 60, ["203.0.113.10"])


def served(stack: LocalStack) -> list[RRset | None]:
    querier = DnsAuthoritativeQuerier(timeout_seconds=1.0)
    return [querier.query(s, NAME, RecordType.A).rrset for s in (stack.bind.primary, stack.bind.secondary)]


def kinds(stack: LocalStack, request_id: str) -> list[EventKind]:
    return [e.kind for e in stack.service.status(request_id).events]


def test_change_is_approved_applied_verified_then_rolled_back(stack: LocalStack, slack: SlackDriver) -> None:
    p = stack.people
    command = slack.command(p.alice, SET_NEW)
    assert "Planning your change" in json.loads(command.body)["text"]
    stack.fake.wait_for("chat.postMessage", timeout=60)
    approve = stack.fake.find_button(action_id="approve")
    shown = slack.message_json(approve)
    assert "192.0.2.10 (ttl 300)" in shown and "203.0.113.10 (ttl 60)" in shown and "INC-42 primary LB down" in shown
    request_id = approve.value
    assert request_id is not None
    assert stack.service.status(request_id).stored.state is RequestState.PENDING_APPROVAL
    assert served(stack) == [OLD, OLD]  # nothing changes before approval

    slack.click(p.bob, approve)
    stack.fake.wait_for("chat.update", timeout=60, predicate=update_of(approve, "needs 1 more approver"))
    assert served(stack) == [OLD, OLD]  # one approval is not enough
    slack.click(p.carol, approve)

    verdict = slack.verdict(approve)
    assert verdict.startswith("Verified on every authoritative server")
    assert str(stack.bind.primary) in verdict and str(stack.bind.secondary) in verdict
    assert served(stack) == [NEW, NEW]
    status = stack.service.status(request_id)
    assert status.stored.state is RequestState.VERIFIED
    assert {str(a.approver) for a in status.approvals} == {f"slack:{p.bob}", f"slack:{p.carol}"}
    events = kinds(stack, request_id)
    assert events[:4] == [EventKind.PLANNED, EventKind.APPROVED, EventKind.APPROVED, EventKind.QUORUM_REACHED]
    for expected in (
        EventKind.CREDENTIALS_LEASED,
        EventKind.CREDENTIALS_REVOKED,
        EventKind.APPLIED,
        EventKind.SERVER_CHECKED,
        EventKind.VERIFIED,
    ):
        assert expected in events
    assert events.index(EventKind.CREDENTIALS_REVOKED) < events.index(EventKind.VERIFIED)
    (leased,) = [e for e in status.events if e.kind is EventKind.CREDENTIALS_LEASED]
    accessor = str(leased.details["lease_id"])
    with pytest.raises(hvac.exceptions.VaultError):  # the Vault token really is gone, not just "marked"
        stack.vault.client().auth.token.lookup_accessor(accessor)
    message = slack.message_json(approve)
    assert '"approve"' not in message and "Roll back" in message  # decision removed the buttons

    rollback = stack.fake.find_button(action_id="rollback")
    slack.click(p.bob, rollback)
    stack.fake.wait_for("chat.postMessage", count=2, timeout=60, predicate=is_plan_post)
    approve_rollback = stack.fake.find_button(action_id="approve")
    assert approve_rollback.value != request_id
    slack.click(p.bob, approve_rollback)  # bob asked for the rollback: he cannot approve it
    assert "You requested this change" in slack.ephemeral_to(p.bob)
    slack.click(p.alice, approve_rollback)
    stack.fake.wait_for("chat.update", timeout=60, predicate=update_of(approve_rollback, "needs 1 more approver"))
    slack.click(p.carol, approve_rollback)
    assert slack.verdict(approve_rollback).startswith("Verified")
    assert served(stack) == [OLD, OLD]
    rolled_back = stack.service.status(approve_rollback.value or "")
    assert rolled_back.stored.request.rollback_of == request_id
    assert EventKind.ROLLBACK_REQUESTED in kinds(stack, request_id)
    assert stack.fake.violations == []


def test_bad_signature_and_stale_timestamp_get_401_and_change_nothing(stack: LocalStack, slack: SlackDriver) -> None:
    body = slash_command_body(
        "/dns",
        SET_NEW,
        user_id=stack.people.alice,
        user_name="alice",
        channel_id="C0OPS",
        channel_name="ops",
        response_url=stack.fake.hooks_url("forged"),
        trigger_id="t",
    )
    forged = stack.slack.post(body, signing_secret="not-the-secret")
    stale = stack.slack.post(body, timestamp=int(time.time()) - 310)
    assert (forged.status, stale.status) == (401, 401)
    time.sleep(0.3)  # give a (wrongly) started lazy listener time to act before asserting nothing happened
    assert stack.fake.calls("chat.postMessage") == []
    assert stack.service.recent(10) == []


def test_non_approver_and_requester_are_refused_and_recorded(stack: LocalStack, slack: SlackDriver) -> None:
    p = stack.people
    approve = slack.request(p.alice, SET_NEW)
    slack.click(p.mallory, approve)
    assert "You are not an approver for this change" in slack.ephemeral_to(p.mallory)
    slack.click(p.alice, approve)
    assert "You requested this change, so you cannot approve it" in slack.ephemeral_to(p.alice)
    status = stack.service.status(approve.value or "")
    assert status.approvals == () and status.stored.state is RequestState.PENDING_APPROVAL
    refusals = [e.details["reason"] for e in status.events if e.kind is EventKind.APPROVAL_REFUSED]
    assert refusals == ["not_an_approver", "self_approval"]


def test_double_click_counts_once(stack: LocalStack, slack: SlackDriver) -> None:
    p = stack.people
    approve = slack.request(p.alice, SET_NEW)
    clicks = [threading.Thread(target=slack.click, args=(p.bob, approve)) for _ in range(2)]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    assert "already approved" in slack.ephemeral_to(p.bob)
    status = stack.service.status(approve.value or "")
    assert len(status.approvals) == 1 and status.stored.state is RequestState.PENDING_APPROVAL
    assert served(stack) == [OLD, OLD]


def test_deny_ends_the_request(stack: LocalStack, slack: SlackDriver) -> None:
    p = stack.people
    approve = slack.request(p.alice, SET_NEW)
    deny = stack.fake.find_button(action_id="deny")
    slack.click(p.mallory, deny)
    assert "Only the approvers of this change" in slack.ephemeral_to(p.mallory)
    slack.click(p.bob, deny)
    stack.fake.wait_for("chat.update", timeout=60, predicate=lambda c: "Denied by" in json.dumps(c.args))
    slack.click(p.carol, approve)  # a stale button in someone's client
    assert "approvals are closed" in slack.ephemeral_to(p.carol)
    assert stack.service.status(approve.value or "").stored.state is RequestState.DENIED
    assert served(stack) == [OLD, OLD]


def test_malformed_command_and_unknown_zone_are_explained_privately(stack: LocalStack, slack: SlackDriver) -> None:
    p = stack.people
    reply = slack.command(p.alice, "set api.example.test A 999.1.1.1 reason=x")
    answer = json.loads(reply.body)
    assert answer["response_type"] == "ephemeral" and "not an IPv4 address" in answer["text"]
    slack.command(p.alice, 'set www.elsewhere.test A 203.0.113.10 reason="x"')
    said = slack.response_url_text()
    assert "not in any zone breakglass manages" in said and "example.test." in said
    assert slack.top_level_posts() == [] and stack.service.recent(10) == []


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ('set www.example.test A 203.0.113.10 reason="x"', "is a CNAME, so it cannot also have A records"),
        ('set api.example.test CNAME lb.example.test reason="x"', "already has A records"),
        ('set example.test NS ns9.example.test reason="x"', "apex NS records"),
        ('set api.example.test A 192.0.2.10 ttl=300 reason="x"', "Nothing to change"),
    ],
)
def test_unsafe_or_empty_plans_are_refused_before_approval(
    stack: LocalStack, slack: SlackDriver, command: str, says: str
) -> None:
    slack.command(stack.people.alice, command)
    assert says in slack.response_url_text()
    assert slack.top_level_posts() == [] and stack.service.recent(10) == []


def test_record_changed_after_plan_is_not_applied(stack: LocalStack, slack: SlackDriver) -> None:
    p = stack.people
    approve = slack.request(p.alice, SET_NEW)
    out_of_band(stack.bind, (NAME, "A", 120, ["198.51.100.7"]))  # another operator acts meanwhile
    slack.click(p.bob, approve)
    slack.click(p.carol, approve)
    verdict = slack.verdict(approve)
    assert verdict.startswith("Nothing was applied") and "changed after the plan was made" in verdict
    assert stack.service.status(approve.value or "").stored.state is RequestState.CONFLICT
    querier = DnsAuthoritativeQuerier(timeout_seconds=1.0)
    answer = querier.query(stack.bind.primary, NAME, RecordType.A)
    assert answer.rrset is not None and answer.rrset.values == ("198.51.100.7",)


def test_secondary_not_updating_fails_verification_naming_it(openbao: object) -> None:
    with LocalStack(verify_timeout=1.5) as stack:
        slack = SlackDriver(stack)
        p = stack.people
        approve = slack.request(p.alice, SET_NEW)
        stack.bind.stop_secondary()
        slack.click(p.bob, approve)
        slack.click(p.carol, approve)
        verdict = slack.verdict(approve)
        assert verdict.startswith("Verification failed")
        lagging = [line for line in verdict.splitlines() if str(stack.bind.secondary) in line]
        assert lagging and ":x:" in lagging[0]
        status = stack.service.status(approve.value or "")
        assert status.stored.state is RequestState.VERIFICATION_FAILED
        failed = [e for e in status.events if e.kind is EventKind.VERIFICATION_FAILED]
        assert failed[0].details["lagging"] == str(stack.bind.secondary)


def test_vault_unreachable_applies_nothing_and_says_so() -> None:
    with LocalStack() as stack:  # its own OpenBao, so stopping it disturbs no other test
        slack = SlackDriver(stack)
        p = stack.people
        approve = slack.request(p.alice, SET_NEW)
        stack.vault.stop()
        slack.click(p.bob, approve)
        slack.click(p.carol, approve)
        verdict = slack.verdict(approve)
        assert verdict.startswith("Nothing was applied") and "unreachable" in verdict
        assert stack.vault.address.split("//")[1] in verdict
        status = stack.service.status(approve.value or "")
        assert status.stored.state is RequestState.APPLY_FAILED
        assert EventKind.CREDENTIALS_FAILED in [e.kind for e in status.events]
        assert served(stack) == [OLD, OLD]


def test_no_secret_reaches_logs_slack_or_database(stack: LocalStack, slack: SlackDriver) -> None:
    p = stack.people
    approve = slack.request(p.alice, SET_NEW)
    slack.click(p.mallory, approve)
    slack.click(p.bob, approve)
    slack.click(p.carol, approve)
    assert slack.verdict(approve).startswith("Verified")
    slack.command(p.alice, f"status {approve.value}")
    slack.response_url_text()

    canaries = {
        "TSIG secret": stack.bind.tsig_secret,
        "AppRole secret_id": stack.secret_id,
        "AppRole role_id": stack.role_id,
        "Slack signing secret": stack.signing_secret,
        "Slack bot token": stack.bot_token,
        "OpenBao root token": stack.vault.root_token,
    }
    assert_no_secret_leaked(stack, canaries)


def test_each_finished_request_publishes_a_signed_checkpoint_that_verifies(
    stack: LocalStack, slack: SlackDriver
) -> None:
    p = stack.people
    approve = slack.request(p.alice, SET_NEW)
    slack.click(p.bob, approve)
    slack.click(p.carol, approve)
    assert slack.verdict(approve).startswith("Verified")
    (posted,) = stack.fake.wait_for(
        "chat.postMessage", timeout=60, predicate=lambda c: c.args.get("channel") == "C0AUDIT"
    )
    assert "breakglass-checkpoint v1" in posted.args["text"]
    assert (stack.workdir / "checkpoints.jsonl").read_text().count("\n") == 1
    result = subprocess.run(
        [str(Path(sys.executable).parent / "breakglass"), "audit", "verify", "--config", str(stack.config_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
