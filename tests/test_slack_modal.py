"""The request form, driven through the fake Slack exactly as Slack drives it.

`/dns` alone (or the global shortcut) opens a modal during the ack; people fill it in and submit; mistakes
come back inline next to the field while the modal stays open; a good submission closes it and the plan is
posted in the channel the form came from. A 60-value set is planned, approved, applied and verified with
every message inside Block Kit's limits (the fake records any breach in ``fake.violations``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bot.modal import CHANNEL, NAME, OPERATION, REASON, SHORTCUT_ID, TICKET, TTL, TYPE, VALUES, ZONE
from cli.localstack import LocalStack
from core.records import RecordType, RRset
from core.states import RequestState
from providers.authoritative import DnsAuthoritativeQuerier
from sandbox.fake_slack import SlackView
from sandbox.openbao import OpenBaoServer
from sandbox.slack_signing import DEFAULT_CHANNEL
from tests.fixtures.bot import WAIT, SlackDriver, is_plan_post

RULES = """
  - name: api-failover
    zone: example.test
    names: ["api.example.test", "*.v6.example.test"]
    types: [A, AAAA]
    requesters: [sre]
    approvals:
      count: 2
      approvers: [sre]
    targets:
      networks: ["192.0.2.0/24", "203.0.113.0/24", "2001:db8::/32"]
    ttl:
      min: 30
      max: 3600
    expires_after: 30m
  - name: verification-records
    zone: example.test
    names: ["*.example.test"]
    types: [TXT, CNAME]
    requesters: [sre]
    approvals:
      count: 2
      approvers: [sre]
    targets:
      hosts: ["*.example.test"]
"""
SIXTY = [f"2001:db8:ffff:ffff:ffff:ffff:ffff:ff{i:02x}" for i in range(60)]


@pytest.fixture(scope="module")
def stack(openbao: OpenBaoServer) -> Iterator[LocalStack]:
    with LocalStack(vault=openbao, verify_timeout=5.0, policy_rules=RULES) as running:
        yield running


@pytest.fixture
def slack(stack: LocalStack) -> SlackDriver:
    return SlackDriver(stack)


def open_form(stack: LocalStack, user: str) -> SlackView:
    """``user`` types `/dns` alone; returns the modal that opened for them."""
    before = {v.id for v in stack.fake.open_modals(user)}
    reply = stack.slack.command("", user)
    assert reply.status == 200 and reply.body == "", reply  # an empty ack: the modal is the answer
    opened = [v for v in stack.fake.open_modals(user) if v.id not in before]
    assert len(opened) == 1, "views.open must happen during the ack, before the HTTP answer"
    return opened[0]


def good_values(**overrides: str | None) -> dict[str, str | None]:
    values: dict[str, str | None] = {
        ZONE: "example.test.",
        NAME: "api",
        TYPE: "A",
        VALUES: "203.0.113.10",
        TTL: "60",
        REASON: "primary LB down, fail over to standby",
        TICKET: "INC-9",
    }
    return values | overrides


def told(stack: LocalStack, user: str, says: str) -> str:
    """Wait for an ephemeral message to ``user`` containing ``says`` (the stack is shared by this module)."""
    calls = stack.fake.wait_for(
        "chat.postEphemeral", timeout=WAIT, predicate=lambda c: c.args.get("user") == user and says in c.args["text"]
    )
    return str(calls[-1].args["text"])


def plan_posts(stack: LocalStack, channel: str = DEFAULT_CHANNEL) -> list[str]:
    return [
        json.dumps(c.args)
        for c in stack.fake.calls("chat.postMessage")
        if c.args.get("channel") == channel and not c.args.get("thread_ts")
    ]


def test_empty_command_opens_the_form_and_help_still_answers(stack: LocalStack) -> None:
    view = open_form(stack, stack.people.alice)

    assert view.callback_id == "breakglass_request" and view.title == "Break-glass DNS change"
    assert json.loads(view.private_metadata) == {"channel": DEFAULT_CHANNEL}
    inputs = {b["block_id"]: b for b in view.blocks if b["type"] == "input"}
    assert list(inputs) == [ZONE, NAME, TYPE, OPERATION, VALUES, TTL, REASON, TICKET]  # no channel picker
    assert [o["value"] for o in inputs[ZONE]["element"]["options"]] == ["example.test."]
    assert not inputs[REASON].get("optional") and not inputs[NAME].get("optional")
    with pytest.raises(ValueError, match="'Reason' is required"):  # Slack's client refuses an empty reason
        stack.fake.submission_payload(view, stack.people.alice, good_values(**{REASON: ""}))

    help_reply = stack.slack.command("help", stack.people.alice)
    assert "/dns set <name> <type>" in json.loads(help_reply.body)["text"]
    assert stack.fake.violations == []


def test_mistakes_come_back_next_to_the_field_until_the_form_is_right(stack: LocalStack) -> None:
    p = stack.people
    view = open_form(stack, p.alice)
    posts_before = len(plan_posts(stack))
    requests_before = len(stack.service.recent(100))
    mistakes: list[tuple[dict[str, str | None], str, str]] = [
        ({NAME: "bad name!"}, NAME, "is not a valid DNS name"),
        ({NAME: "api.example.org"}, NAME, "is not in zone example.test"),
        ({TYPE: "MX", VALUES: "10 mx.example.test"}, NAME, "No policy rule covers api.example.test. MX"),
        ({VALUES: "300.1.1.1"}, VALUES, "is not an IPv4 address"),
        ({VALUES: "203.0.113.10\n198.51.100.7"}, VALUES, "198.51.100.7 is outside the networks policy rule"),
        ({TTL: "5"}, TTL, "TTL 5 for api.example.test. A is outside policy rule api-failover"),
        ({REASON: "   "}, REASON, "A reason is required"),
        ({OPERATION: "delete"}, VALUES, "Leave the values empty to delete"),
        ({VALUES: ""}, VALUES, "Give at least one value"),
    ]
    for overrides, field, says in mistakes:
        submitted = stack.slack.submit_view(view, p.alice, good_values(**overrides))

        assert submitted.reply.status == 200, submitted
        assert list(submitted.errors) == [field], (overrides, submitted.errors)
        assert says in submitted.errors[field], (overrides, submitted.errors)
        assert not submitted.closed  # the person fixes the field in the same modal

    stranger = open_form(stack, p.mallory)
    refused = stack.slack.submit_view(stranger, p.mallory, good_values())
    assert "not in the breakglass policy" in refused.errors[ZONE] and not refused.closed

    assert len(plan_posts(stack)) == posts_before and len(stack.service.recent(100)) == requests_before
    assert stack.fake.violations == []  # every error key was an input block of the modal

    fixed = stack.slack.submit_view(view, p.alice, good_values())
    assert fixed.errors == {} and fixed.closed
    stack.fake.wait_for("chat.postMessage", count=posts_before + 1, timeout=WAIT, predicate=is_plan_post)


def test_a_good_form_is_planned_in_its_channel_and_the_requester_hears_each_decision(
    stack: LocalStack, slack: SlackDriver
) -> None:
    p = stack.people
    view = open_form(stack, p.alice)
    posts = len(plan_posts(stack))

    submitted = stack.slack.submit_view(view, p.alice, good_values(**{NAME: "api.example.test"}))

    assert submitted.closed and submitted.errors == {}
    stack.fake.wait_for("chat.postMessage", count=posts + 1, timeout=WAIT, predicate=is_plan_post)
    told(stack, p.alice, "Planning your change to api.example.test. A")
    approve = stack.fake.find_button(action_id="approve", channel=DEFAULT_CHANNEL)
    request_id = approve.value or ""
    shown = slack.message_json(approve)
    assert "203.0.113.10 (ttl 60)" in shown and "INC-9 primary LB down, fail over to standby" in shown
    assert "Policy api-failover: 2 approvers" in shown and "<@U0BOB>" in shown and "expires" in shown
    stored = stack.service.status(request_id).stored
    assert str(stored.request.requester) == f"slack:{p.alice}" and stored.request.reason.startswith("INC-9 ")

    slack.click(p.bob, approve)
    told(stack, p.alice, f"<@{p.bob}> approved {request_id}; still needed: 1 more approver")
    slack.click(p.carol, approve)
    told(stack, p.alice, f"<@{p.carol}> approved {request_id}; the approvals are complete: applying it now")
    assert slack.verdict(approve).startswith("Verified on every authoritative server")
    assert stack.fake.find_button(action_id="rollback", value=request_id)
    assert stack.fake.violations == []


def test_sixty_values_are_summarised_within_block_kit_limits(stack: LocalStack, slack: SlackDriver) -> None:
    p = stack.people
    view = open_form(stack, p.alice)
    posts = len(plan_posts(stack))
    values = good_values(**{NAME: "big.v6.example.test", TYPE: "AAAA", VALUES: "\n".join(reversed(SIXTY)), TTL: "300"})

    assert stack.slack.submit_view(view, p.alice, values).closed
    stack.fake.wait_for("chat.postMessage", count=posts + 1, timeout=WAIT, predicate=is_plan_post)
    approve = stack.fake.find_button(action_id="approve", channel=DEFAULT_CHANNEL)
    request_id = approve.value or ""
    message = next(m for m in stack.fake.channel_messages(DEFAULT_CHANNEL) if m.ts == approve.message_ts)
    new_field = next(
        f["text"] for b in message.blocks if b["type"] == "section" for f in b.get("fields", []) if "*New*" in f["text"]
    )
    assert SIXTY[0] in new_field and SIXTY[19] in new_field and SIXTY[20] not in new_field
    assert f"…and 40 more values: `/dns status {request_id}` lists them all." in new_field
    assert len(new_field) <= 2000

    slack.click(p.bob, approve)
    slack.click(p.carol, approve)
    assert slack.verdict(approve).startswith("Verified on every authoritative server")
    expected = RRset.build("big.v6.example.test.", RecordType.AAAA, 300, SIXTY)
    querier = DnsAuthoritativeQuerier(timeout_seconds=2.0)
    assert [querier.query(s, "big.v6.example.test.", RecordType.AAAA).rrset for s in stack.servers] == [expected] * 2
    assert stack.service.status(request_id).stored.state is RequestState.VERIFIED

    slack.command(p.alice, f"status {request_id}")
    listed = slack.response_url_text()
    assert all(value in listed for value in SIXTY)  # where the summary points, every value is listed
    assert stack.fake.violations == []


def test_the_global_shortcut_asks_where_to_post_the_plan(stack: LocalStack, slack: SlackDriver) -> None:
    p = stack.people
    incident = "C0INCIDENT"
    reply = stack.slack.shortcut(SHORTCUT_ID, p.bob)
    assert reply.status == 200
    view = stack.fake.open_modals(p.bob)[-1]
    assert view.private_metadata == "" and any(b.get("block_id") == CHANNEL for b in view.blocks)

    values = good_values(**{NAME: "www", TYPE: "CNAME", VALUES: "api.example.test", TICKET: None})
    submitted = stack.slack.submit_view(view, p.bob, values | {CHANNEL: incident})

    assert submitted.closed
    stack.fake.wait_for("chat.postMessage", timeout=WAIT, predicate=lambda c: c.args.get("channel") == incident)
    plan = stack.fake.find_button(action_id="approve", channel=incident)
    stored = stack.service.status(plan.value or "").stored
    assert stored.plan.changes[0].after == RRset.build("www.example.test.", RecordType.CNAME, 60, ["api.example.test"])
    assert stack.fake.violations == []
