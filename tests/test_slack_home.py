"""App Home, `/dns show` and notifications, driven through the fake Slack exactly as Slack drives them.

The bot runs with ``[slack] notify = "dm"`` and two change paths (the BIND primary, and a read path on the
secondary), so `/dns show` has every server and every path to report on. People open their Home tab
(an ``app_home_opened`` event), read what the bot published there and click its buttons; approvers get
direct messages, and the requester hears of every decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from bot.home import HOME_APPROVE, HOME_REFRESH
from cli.localstack import LocalStack
from core.records import RecordType, RRset
from core.states import RequestState
from providers.authoritative import DnsAuthoritativeQuerier
from sandbox.fake_slack import Message, SlackCall, SlackView, render_text
from sandbox.net import wait_until
from sandbox.openbao import OpenBaoServer
from sandbox.slack_signing import DEFAULT_CHANNEL
from tests.fixtures.bind import out_of_band, secondary_stopped
from tests.fixtures.bot import WAIT, SlackDriver
from tests.test_failover import rfc2136_backup, with_backup

NAME = "api.example.test."
SHOWN = "shown.example.test."
SERVED = RRset.build(SHOWN, RecordType.A, 120, ["192.0.2.77"])


def two_paths_and_dms(stack: LocalStack) -> tuple[str, str]:
    read_path = f"""
[[zones.paths]]
kind = "rfc2136"
name = "secondary-read"
server = "{stack.bind.secondary}"
timeout_seconds = 1
credentials = {{ source = "vault-kv", path = "{stack.tsig_path}" }}
"""
    return stack.default_path() + read_path, '[slack]\nnotify = "dm"\n'


@pytest.fixture(scope="module")
def stack(openbao: OpenBaoServer) -> Iterator[LocalStack]:
    with LocalStack(vault=openbao, verify_timeout=5.0, configure=two_paths_and_dms) as running:
        yield running


@pytest.fixture
def slack(stack: LocalStack) -> SlackDriver:
    return SlackDriver(stack)


def dms(stack: LocalStack, user: str) -> list[str]:
    return [render_text(m) for m in stack.fake.channel_messages(stack.fake.dm_channel(user))]


def wait_dm(stack: LocalStack, user: str, says: str) -> str:
    def sent(call: SlackCall) -> bool:
        return call.args.get("channel") == user and says in str(call.args.get("text"))

    return str(stack.fake.wait_for("chat.postMessage", timeout=WAIT, predicate=sent)[-1].args["text"])


def publishes(stack: LocalStack, user: str) -> int:
    return len([c for c in stack.fake.calls("views.publish") if c.args.get("user_id") == user])


def open_home(stack: LocalStack, user: str) -> SlackView:
    """``user`` opens the Home tab; returns the view the bot published in answer."""
    before = publishes(stack, user)
    assert stack.slack.open_home(user).status == 200
    return wait_for_home(stack, user, before)


def wait_for_home(stack: LocalStack, user: str, before: int) -> SlackView:
    """The Home the bot publishes for ``user`` after ``before`` earlier publishes."""
    stack.fake.wait_for(
        "views.publish", count=before + 1, timeout=WAIT, predicate=lambda c: c.args.get("user_id") == user
    )
    home = stack.fake.home_view(user)
    assert home is not None
    return home


def home_text(view: SlackView) -> str:
    return render_text(Message("", "", "", view.blocks))


def section(text: str, title: str) -> str:
    """The part of a rendered Home under the header ``title`` (up to the next header)."""
    headers = ["Awaiting your approval", "Recent changes"]
    start = text.index(title) + len(title)
    ends = [text.index(h, start) for h in headers if h != title and h in text[start:]]
    return text[start : min(ends, default=len(text))]


def request(slack: SlackDriver, user: str, value: str) -> str:
    approve = slack.request(user, f'set {NAME} A {value} ttl=60 reason="INC-5 move api to {value}"')
    return approve.value or ""


def test_approvers_get_a_direct_message_and_the_requester_hears_a_denial(stack: LocalStack, slack: SlackDriver) -> None:
    p = stack.people
    request_id = request(slack, p.alice, "203.0.113.20")

    for approver in (p.bob, p.carol):
        dm = wait_dm(stack, approver, f"asks for your approval of {request_id}")
        assert f"<@{p.alice}>" in dm and "api.example.test. A" in dm and "INC-5 move api" in dm
        assert "/archives/C0OPS/p" in dm  # a link to the plan message itself
    assert not any(request_id in t for user in (p.alice, p.dave, p.mallory) for t in dms(stack, user))

    slack.click(p.bob, stack.fake.find_button(action_id="deny", value=request_id))

    assert "nothing will be applied" in wait_dm(stack, p.alice, f"<@{p.bob}> denied {request_id}")
    assert stack.service.status(request_id).stored.state is RequestState.DENIED
    assert stack.fake.violations == []


def test_app_home_shows_what_awaits_the_viewer_and_approves_from_there(stack: LocalStack, slack: SlackDriver) -> None:
    p = stack.people
    request_id = request(slack, p.alice, "203.0.113.30")

    bob_home = open_home(stack, p.bob)
    awaiting = section(home_text(bob_home), "Awaiting your approval")
    assert request_id in awaiting and "203.0.113.30 (ttl 60)" in awaiting and "INC-5 move api" in awaiting
    assert "*Needs:* 2 more approvers (incident-failover: 2 approvers)" in awaiting
    for outsider in (p.alice, p.dave):  # the requester never approves; dave is not in the rule's groups
        assert request_id not in section(home_text(open_home(stack, outsider)), "Awaiting your approval")

    published = publishes(stack, p.bob)
    click = stack.slack.click_in_view(stack.fake.find_view_button(bob_home, HOME_APPROVE, request_id), p.bob)
    assert click.status == 200
    bob_after = wait_for_home(stack, p.bob, published)
    assert request_id not in section(home_text(bob_after), "Awaiting your approval")
    assert "still needed: 1 more approver" in wait_dm(stack, p.alice, f"<@{p.bob}> approved {request_id}")
    plan = stack.fake.find_button(action_id="approve", value=request_id, channel=DEFAULT_CHANNEL)

    def channel_message_follows() -> bool:  # delivered through the outbox, so maybe just after the DM
        shown = stack.fake.find_button(action_id="approve", value=request_id, channel=DEFAULT_CHANNEL)
        return f"Approved by <@{p.bob}>" in json.dumps(shown.message.blocks)

    wait_until(channel_message_follows, WAIT, "the channel message to show bob's approval")

    carol_home = open_home(stack, p.carol)
    stack.slack.click_in_view(stack.fake.find_view_button(carol_home, HOME_APPROVE, request_id), p.carol)
    assert slack.verdict(plan).startswith("Verified on every authoritative server")
    assert stack.service.status(request_id).stored.state is RequestState.VERIFIED

    published = publishes(stack, p.carol)
    stack.slack.click_in_view(stack.fake.find_view_button(carol_home, HOME_REFRESH), p.carol)
    recent = section(home_text(wait_for_home(stack, p.carol, published)), "Recent changes")
    line = recent[recent.index(request_id) :]
    assert line.split("\n")[0].endswith("Verified on every authoritative server")
    assert "2 of 2 authoritative answers serve it" in line
    assert stack.fake.violations == []


def shown(stack: LocalStack, slack: SlackDriver, text: str) -> tuple[str, str]:
    """Run `/dns <text>`; returns the ephemeral answer's fallback text and its rendered blocks."""
    reply = slack.command(stack.people.bob, text)
    assert "Asking every authoritative server" in json.loads(reply.body)["text"]
    hook = stack.slack.last_hook
    call = stack.fake.wait_for("response_url", timeout=WAIT, predicate=lambda c: c.hook == hook)[-1]
    assert call.args["response_type"] == "ephemeral"
    return str(call.args["text"]), render_text(Message("", "", "", call.args["blocks"]))


def test_show_gives_every_server_and_every_path(stack: LocalStack, slack: SlackDriver) -> None:
    primary, secondary = str(stack.bind.primary), str(stack.bind.secondary)
    out_of_band(stack.bind, (SHOWN, "A", 120, ["192.0.2.77"]))
    wait_until(lambda: all(r == SERVED for r in served_everywhere(stack)), timeout=WAIT, what="the secondary to follow")
    value = "192.0.2.77 (ttl 120)"

    fallback, blocks = shown(stack, slack, f"show {SHOWN} A")

    assert f"*{SHOWN} A*: every server gives the same answer" in blocks
    assert f":white_check_mark: `{primary}` {value}" in blocks and f":white_check_mark: `{secondary}` {value}" in blocks
    assert f"bind-primary: {value} (same as the servers)" in blocks
    assert f"secondary-read: {value} (same as the servers)" in blocks
    assert f"bind-primary: {value}" in fallback

    _, all_types = shown(stack, slack, "show shown.example.test")
    assert f"*{SHOWN} A*:" in all_types
    assert f"No server has AAAA, CNAME, TXT, MX records for {SHOWN}" in all_types

    with secondary_stopped(stack.bind):
        _, lagging = shown(stack, slack, f"show {SHOWN} A")
    assert "the servers do not all agree" in lagging
    assert f":white_check_mark: `{primary}` {value}" in lagging and f":x: `{secondary}` " in lagging
    assert f"secondary-read: _not read: DNS server {secondary} is unreachable" in lagging
    assert f"bind-primary: {value} (same as the majority answer)" in lagging
    assert stack.fake.violations == []


def served_everywhere(stack: LocalStack) -> list[RRset | None]:
    querier = DnsAuthoritativeQuerier(timeout_seconds=1.0)
    return [querier.query(s, SHOWN, RecordType.A).rrset for s in stack.servers]


def test_show_leases_for_an_api_path_only_for_people_in_the_policy(openbao: OpenBaoServer) -> None:
    """A PowerDNS API path needs its key even to read: leased (and audited) for policy people only."""
    with LocalStack(vault=openbao, powerdns=True, configure=with_backup(rfc2136_backup)) as pdns_stack:
        slack = SlackDriver(pdns_stack)
        p = pdns_stack.people

        slack.command(p.bob, "show api.example.test A")
        bob_sees = slack.response_url_text()
        slack.command(p.mallory, "show api.example.test A")
        mallory_sees = slack.response_url_text()

        assert "pdns-api: 192.0.2.10 (ttl 300) (same as the servers)" in bob_sees
        assert "pdns-rfc2136: 192.0.2.10 (ttl 300) (same as the servers)" in bob_sees
        assert "pdns-api: _not read: it needs a credential lease, for people in the policy only_" in mallory_sees
        assert "pdns-rfc2136: 192.0.2.10 (ttl 300)" in mallory_sees  # a plain DNS read needs no credential
        with pdns_stack.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT request_id, actor, kind, details_json FROM events WHERE kind LIKE 'credentials_%'")
            ).all()
        assert [(r.actor, r.kind) for r in rows] == [
            (f"slack:{p.bob}", "credentials_leased"),
            ("system:breakglass", "credentials_revoked"),
        ]
        assert json.loads(rows[0].details_json)["purpose"] == "show" and rows[0].request_id == rows[1].request_id
        assert pdns_stack.fake.violations == []
