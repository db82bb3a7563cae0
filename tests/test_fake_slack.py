"""FakeSlack and the Slack request signer, driven by the real slack_sdk WebClient and a real Bolt app over HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from sandbox.fake_slack import HOOK, FakeSlack, render_text
from sandbox.slack_signing import SlackClientSimulator, block_action_body, sign, slash_command_body
from tests.fixtures.slack import SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET

CHANNEL = "C0OPS"


def _client(fake: FakeSlack, token: str = SLACK_BOT_TOKEN) -> WebClient:
    return WebClient(token=token, base_url=fake.api_url)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(text: str, action_id: str, value: str = "v", style: str | None = None) -> dict[str, Any]:
    button = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id, "value": value}
    if style:
        button["style"] = style
    return button


def _approval_blocks() -> list[dict[str, Any]]:
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Break-glass request #7"}},
        _section("*alice* wants to change `www.example.test` A 192.0.2.1 &amp; more"),
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "requested by <@U0ALICE>"}]},
        {
            "type": "actions",
            "block_id": "decision",
            "elements": [
                _button("Approve", "approve", "req-7", "primary"),
                _button("Deny", "deny", "req-7", "danger"),
            ],
        },
    ]


def test_post_then_update_shows_the_updated_message(fake_slack: FakeSlack) -> None:
    client = _client(fake_slack)
    posted = client.chat_postMessage(channel=CHANNEL, text="Request #7 waits", blocks=_approval_blocks())
    assert posted["ok"] and posted["channel"] == CHANNEL
    assert posted["ts"] == "1700000000.000100"
    assert posted["message"]["blocks"][3]["block_id"] == "decision"

    client.chat_update(channel=CHANNEL, ts=posted["ts"], text="Approved", blocks=[_section("Approved by *bob*")])

    shown = fake_slack.channel_messages(CHANNEL)
    assert len(shown) == 1
    assert shown[0].ts == posted["ts"] and shown[0].text == "Approved" and shown[0].edits == 1
    assert render_text(shown[0]) == "Approved by *bob*"
    assert [c.method for c in fake_slack.calls()] == ["chat.postMessage", "chat.update"]
    assert fake_slack.calls("chat.update")[0].token == SLACK_BOT_TOKEN
    assert fake_slack.violations == []


def test_update_of_an_unknown_message_is_refused(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as refused:
        _client(fake_slack).chat_update(channel=CHANNEL, ts="1.000000", text="nope")
    assert refused.value.response["error"] == "message_not_found"


def test_thread_replies_are_kept_per_thread_and_ts_increase(fake_slack: FakeSlack) -> None:
    client = _client(fake_slack)
    parent = client.chat_postMessage(channel=CHANNEL, text="Request #7")["ts"]
    other = client.chat_postMessage(channel=CHANNEL, text="Request #8")["ts"]
    first = client.chat_postMessage(channel=CHANNEL, text="Vault lease issued", thread_ts=parent)["ts"]
    second = client.chat_postMessage(channel=CHANNEL, text="Applied on ns1", thread_ts=first)["ts"]

    assert [m.text for m in fake_slack.channel_messages(CHANNEL)] == ["Request #7", "Request #8"]
    assert [m.text for m in fake_slack.thread(CHANNEL, parent)] == ["Vault lease issued", "Applied on ns1"]
    assert fake_slack.thread(CHANNEL, other) == []
    assert float(parent) < float(other) < float(first) < float(second)


def test_ephemeral_message_is_recorded_for_its_user_only(fake_slack: FakeSlack) -> None:
    answer = _client(fake_slack).chat_postEphemeral(channel=CHANNEL, user="U0BOB", text="You already approved #7")
    assert answer["message_ts"]

    (shown,) = fake_slack.ephemerals("U0BOB")
    assert shown.text == "You already approved #7" and shown.channel == CHANNEL and shown.ts == answer["message_ts"]
    assert fake_slack.ephemerals("U0ALICE") == []
    assert fake_slack.channel_messages(CHANNEL) == []


def test_wrong_or_missing_token_is_refused(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as wrong:
        _client(fake_slack, token="xoxb-someone-else").chat_postMessage(channel=CHANNEL, text="hi")
    assert wrong.value.response["error"] == "invalid_auth"

    request = urllib.request.Request(fake_slack.api_url + "auth.test", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response) == {"ok": False, "error": "not_authed"}

    assert fake_slack.channel_messages(CHANNEL) == []
    assert [(c.method, c.ok, c.error) for c in fake_slack.calls()] == [
        ("chat.postMessage", False, "invalid_auth"),
        ("auth.test", False, "not_authed"),
    ]


def test_unknown_method_answers_unknown_method(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as refused:
        _client(fake_slack).api_call("chat.teleport", json={"channel": CHANNEL})
    assert refused.value.response["error"] == "unknown_method"


def test_auth_users_and_dm_answers(fake_slack: FakeSlack) -> None:
    client = _client(fake_slack)
    auth = client.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("U0BOT", "B0BOT", "T0BREAKGLASS")
    assert client.users_info(user="U0ALICE")["user"]["name"] == "alice"
    dm = client.conversations_open(users=["U0ALICE"])["channel"]["id"]
    assert dm == fake_slack.dm_channel("U0ALICE")
    assert client.chat_postMessage(channel="U0ALICE", text="your credentials expire in 15 min")["channel"] == dm
    assert [m.text for m in fake_slack.channel_messages(dm)] == ["your credentials expire in 15 min"]


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        ([_section(f"line {i}") for i in range(51)], "no more than 50 items"),
        ([{"type": "actions", "elements": [_button("A", "same"), _button("B", "same")]}], "duplicate action_id"),
        ([{"type": "actions", "elements": [_button("x" * 76, "long")]}], "no more than 75 characters"),
        ([{"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}], "no more than 2000"),
        ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "no more than 150"),
        ([_section("a") | {"block_id": "b"}, _section("c") | {"block_id": "b"}], "duplicate block_id"),
        ([{"type": "no_such_block"}], "unsupported block type"),
    ],
    ids=["51-blocks", "duplicate-action-id", "long-button-text", "long-field", "long-header", "dup-block-id", "bad"],
)
def test_block_kit_violations_are_refused_and_recorded(
    fake_slack: FakeSlack, blocks: list[dict[str, Any]], expected: str
) -> None:
    with pytest.raises(SlackApiError) as refused:
        _client(fake_slack).chat_postMessage(channel=CHANNEL, text="fallback", blocks=blocks)

    assert refused.value.response["error"] == "invalid_blocks"
    assert any(expected in e for e in refused.value.response["errors"]), refused.value.response["errors"]
    (violation,) = fake_slack.violations
    assert violation.method == "chat.postMessage" and any(expected in e for e in violation.errors)
    assert fake_slack.channel_messages(CHANNEL) == []


def test_blocks_without_fallback_text_are_a_violation(fake_slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError), pytest.warns(UserWarning, match="`text` argument is missing"):
        _client(fake_slack).chat_postMessage(channel=CHANNEL, blocks=[_section("no fallback")])
    assert "fallback `text`" in fake_slack.violations[0].errors[0]


def test_form_encoded_call_with_blocks_as_json_string_is_parsed(fake_slack: FakeSlack) -> None:
    blocks = json.dumps([_section("sent as a form")])
    _client(fake_slack).api_call("chat.postMessage", data={"channel": CHANNEL, "text": "form", "blocks": blocks})

    (call,) = fake_slack.calls("chat.postMessage")
    assert call.args["blocks"][0]["text"]["text"] == "sent as a form"
    assert render_text(fake_slack.channel_messages(CHANNEL)[0]) == "sent as a form"


def test_find_button_returns_the_rendered_button_until_it_is_removed(fake_slack: FakeSlack) -> None:
    client = _client(fake_slack)
    ts = client.chat_postMessage(channel=CHANNEL, text="Request #7", blocks=_approval_blocks())["ts"]

    button = fake_slack.find_button(action_id="approve", channel=CHANNEL)
    assert (button.channel, button.message_ts, button.block_id) == (CHANNEL, ts, "decision")
    assert (button.value, button.text, button.style) == ("req-7", "Approve", "primary")
    assert fake_slack.find_button(text="Deny").action_id == "deny"
    assert render_text(button.message) == (
        "Break-glass request #7\n"
        "*alice* wants to change `www.example.test` A 192.0.2.1 & more\n"
        "requested by @U0ALICE\n"
        "[Approve] [Deny]"
    )

    client.chat_update(channel=CHANNEL, ts=ts, text="Approved", blocks=[_section("Approved")])
    with pytest.raises(LookupError, match="no button"):
        fake_slack.find_button(action_id="approve")


def test_wait_for_returns_calls_made_from_another_thread(fake_slack: FakeSlack) -> None:
    client = _client(fake_slack)
    poster = threading.Thread(target=lambda: [client.chat_postMessage(channel=CHANNEL, text=str(i)) for i in range(3)])
    poster.start()
    calls = fake_slack.wait_for("chat.postMessage", count=3, timeout=10)
    poster.join()
    assert [c.args["text"] for c in calls] == ["0", "1", "2"]
    assert fake_slack.wait_for("chat.postMessage", predicate=lambda c: c.args["text"] == "1")[0].ok


def test_wait_for_times_out_cleanly(fake_slack: FakeSlack) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"1 chat.update call\(s\), saw 0"):
        fake_slack.wait_for("chat.update", timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 2


def test_concurrent_posts_all_land_with_unique_ts(fake_slack: FakeSlack) -> None:
    client = _client(fake_slack)
    answers: list[str] = []
    threads = [
        threading.Thread(target=lambda i=i: answers.append(client.chat_postMessage(channel=CHANNEL, text=f"{i}")["ts"]))
        for i in range(50)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(answers)) == 50
    assert len(fake_slack.channel_messages(CHANNEL)) == 50


def test_views_need_a_fresh_trigger_and_valid_blocks(fake_slack: FakeSlack) -> None:
    client = _client(fake_slack)
    modal = {
        "type": "modal",
        "callback_id": "reason",
        "title": {"type": "plain_text", "text": "Why break glass?"},
        "submit": {"type": "plain_text", "text": "Request"},
        "blocks": [
            {
                "type": "input",
                "block_id": "why",
                "label": {"type": "plain_text", "text": "Reason"},
                "element": {"type": "plain_text_input", "action_id": "value"},
            }
        ],
    }
    trigger = fake_slack.issue_trigger_id("U0ALICE")
    opened = client.views_open(trigger_id=trigger, view=modal)["view"]
    assert opened["id"].startswith("V") and opened["callback_id"] == "reason"

    with pytest.raises(SlackApiError) as reused:
        client.views_open(trigger_id=trigger, view=modal)
    assert reused.value.response["error"] == "exchanged_trigger_id"

    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal | {"private_metadata": "7"})
    assert updated["view"]["id"] == opened["id"]
    (view,) = fake_slack.views()
    assert (view.user, view.private_metadata, view.title) == ("U0ALICE", "7", "Why break glass?")

    with pytest.raises(SlackApiError):
        too_long_title = modal | {"title": {"type": "plain_text", "text": "t" * 25}}
        client.views_open(trigger_id=fake_slack.issue_trigger_id("U0ALICE"), view=too_long_title)
    assert [v.errors[0] for v in fake_slack.violations][0] == "exchanged_trigger_id"
    assert "no more than 24 characters" in fake_slack.violations[1].errors[0]


def test_response_url_posts_follow_slack_semantics(fake_slack: FakeSlack) -> None:
    ts = _client(fake_slack).chat_postMessage(channel=CHANNEL, text="Request #7", blocks=_approval_blocks())["ts"]
    url = fake_slack.hooks_url("click-1", channel=CHANNEL, user="U0BOB", message_ts=ts)
    assert url == fake_slack.hooks_url("click-1")

    def post(body: dict[str, Any]) -> tuple[int, str]:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    assert post({"replace_original": True, "text": "Approved", "blocks": [_section("Approved by bob")]}) == (200, "ok")
    assert post({"text": "Only you can see this"}) == (200, "ok")
    assert post({"response_type": "in_channel", "text": "Applied", "thread_ts": ts}) == (200, "ok")
    assert post({"text": "x", "blocks": [_section("x" * 3001)]})[0] == 400

    assert [render_text(m) for m in fake_slack.channel_messages(CHANNEL)] == ["Approved by bob"]
    assert [m.text for m in fake_slack.ephemerals("U0BOB")] == ["Only you can see this"]
    assert [m.text for m in fake_slack.thread(CHANNEL, ts)] == ["Applied"]
    assert post({"text": "fifth use"}) == (200, "ok")
    assert post({"text": "sixth use"}) == (404, "used_url")
    assert [(c.hook, c.ok) for c in fake_slack.calls(HOOK)] == [("click-1", True)] * 3 + [("click-1", False)] + [
        ("click-1", True),
        ("click-1", False),
    ]
    assert [v.errors[0] for v in fake_slack.violations][-1] == "used_url"


def test_fault_injection_rate_limit_and_outage(fake_slack: FakeSlack) -> None:
    client = _client(fake_slack)
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        client.chat_postMessage(channel=CHANNEL, text="lost")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    assert client.chat_postMessage(channel=CHANNEL, text="kept")["ok"]

    fake_slack.set_down(True)
    with pytest.raises(urllib.error.HTTPError) as down:
        urllib.request.urlopen(fake_slack.api_url + "auth.test", timeout=5)
    assert down.value.code == 503
    fake_slack.set_down(False)
    assert [m.text for m in fake_slack.channel_messages(CHANNEL)] == ["kept"]


def test_signature_matches_slack_sdk_verifier() -> None:
    verifier = SignatureVerifier(SLACK_SIGNING_SECRET)
    body = slash_command_body(text="A www.example.test 192.0.2.1", response_url="http://127.0.0.1:1/hooks/x")
    now = int(time.time())
    headers = sign(SLACK_SIGNING_SECRET, body, now)

    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body.replace(b"192.0.2.1", b"192.0.2.66"), headers)
    assert not verifier.is_valid_request(body, sign("another-secret", body, now))
    assert not verifier.is_valid_request(body, sign(SLACK_SIGNING_SECRET, body, now - 310))


# ----- the simulator against a real Bolt app, over HTTP -----


class _ThreadedWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def bolt_app_url(fake_slack: FakeSlack) -> Iterator[str]:
    """A minimal Bolt app wired to the fake: /dns posts an approval card, Approve replaces it via response_url."""
    app = App(
        client=WebClient(token=SLACK_BOT_TOKEN, base_url=fake_slack.api_url),
        signing_secret=SLACK_SIGNING_SECRET,
        process_before_response=True,
    )

    def post_card(body: dict[str, Any], client: WebClient) -> None:
        client.chat_postMessage(channel=body["channel_id"], text="Request #7", blocks=_approval_blocks())

    def replace_card(body: dict[str, Any], respond: Any) -> None:
        respond(replace_original=True, text="Approved", blocks=[_section(f"Approved by <@{body['user']['id']}>")])

    app.command("/dns")(ack=lambda ack: ack("Planning…"), lazy=[post_card])
    app.action("approve")(ack=lambda ack: ack(), lazy=[replace_card])

    server = make_server("127.0.0.1", 0, SlackRequestHandler(app), _ThreadedWSGIServer, _QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/slack/events"
    server.shutdown()
    server.server_close()


def test_simulator_drives_a_real_bolt_app(fake_slack: FakeSlack, bolt_app_url: str) -> None:
    people = SlackClientSimulator(bolt_app_url, SLACK_SIGNING_SECRET, fake_slack)

    status, body, seconds = people.command("A www.example.test 192.0.2.1", user="U0ALICE")
    assert (status, body) == (200, "Planning…")
    assert 0 < seconds < 3

    fake_slack.wait_for("chat.postMessage")
    status, _, seconds = people.click(fake_slack.find_button(action_id="approve"), user="U0BOB")
    assert status == 200 and seconds < 3
    fake_slack.wait_for(HOOK, predicate=lambda c: c.hook == people.last_hook)

    (card,) = fake_slack.channel_messages(CHANNEL)
    assert render_text(card) == "Approved by @U0BOB"
    assert fake_slack.violations == []


def test_bolt_rejects_bad_signatures_sent_by_the_simulator(fake_slack: FakeSlack, bolt_app_url: str) -> None:
    people = SlackClientSimulator(bolt_app_url, SLACK_SIGNING_SECRET, fake_slack)
    body = slash_command_body(text="A www.example.test 192.0.2.1")
    assert people.post(body, signing_secret="wrong-secret").status == 401
    assert people.post(body, timestamp=int(time.time()) - 310).status == 401
    assert fake_slack.calls("chat.postMessage") == []


def test_block_action_body_is_shaped_like_slack(fake_slack: FakeSlack) -> None:
    _client(fake_slack).chat_postMessage(channel=CHANNEL, text="Request #7", blocks=_approval_blocks())
    button = fake_slack.find_button(action_id="deny")
    form = urllib.parse.parse_qs(block_action_body(button, "U0BOB", "http://127.0.0.1:1/hooks/y").decode())
    payload = json.loads(form["payload"][0])

    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0BOB"
    assert payload["container"] == {
        "type": "message",
        "message_ts": button.message_ts,
        "channel_id": CHANNEL,
        "is_ephemeral": False,
    }
    assert payload["message"]["ts"] == button.message_ts
    (action,) = payload["actions"]
    assert (action["action_id"], action["block_id"], action["value"]) == ("deny", "decision", "req-7")
