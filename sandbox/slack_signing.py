"""Slack-signed requests to the app, built exactly as Slack builds them, and a client that plays the people.

Why: the app must be driven over real HTTP through the same adapter as production, with the signature Bolt
checks. ``SlackClientSimulator`` types slash commands and clicks buttons the app really rendered in FakeSlack,
and measures the time to the HTTP answer (the ack latency Slack allows 3 s for). Stdlib only.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.error
import urllib.request
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

from sandbox.fake_slack import APP_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, Button, FakeSlack, SlackView, ViewButton

DEFAULT_CHANNEL = "C0OPS"
DEFAULT_CHANNEL_NAME = "ops"
# Slack still sends the legacy verification token; Bolt ignores it and checks the signature.
LEGACY_TOKEN = "legacy-verification-token"  # noqa: S105 - not a secret, a documented placeholder  # nosec B105
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# One count for every simulator: several of them (one per bot replica) share one FakeSlack, whose
# response_url hooks are keyed by name, so names must not repeat across simulators.
_HOOK_NUMBERS = itertools.count(1)


def sign(signing_secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The two headers Slack adds: ``v0=hex(HMAC_SHA256(secret, "v0:{ts}:{body}"))`` and the timestamp."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Signature": f"v0={digest}", "X-Slack-Request-Timestamp": str(timestamp)}


def slash_command_body(
    command: str = "/dns",
    text: str = "",
    *,
    user_id: str = "U0ALICE",
    user_name: str | None = None,
    channel_id: str = DEFAULT_CHANNEL,
    channel_name: str = DEFAULT_CHANNEL_NAME,
    response_url: str = "",
    trigger_id: str = "",
) -> bytes:
    """A slash command as Slack POSTs it: form-encoded, with the usual fields."""
    fields = {
        "token": LEGACY_TOKEN,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }
    return urlencode(fields).encode()


def _button_action(button: Button | ViewButton) -> dict[str, Any]:
    """The ``actions[0]`` entry Slack sends for a click on ``button``."""
    action: dict[str, Any] = {
        "action_id": button.action_id,
        "block_id": button.block_id,
        "text": {"type": "plain_text", "text": button.text, "emoji": True},
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    if button.value is not None:
        action["value"] = button.value
    if button.style is not None:
        action["style"] = button.style
    return action


def block_action_body(
    button: Button,
    user_id: str,
    response_url: str,
    *,
    user_name: str | None = None,
    trigger_id: str = "",
    channel_name: str = DEFAULT_CHANNEL_NAME,
) -> bytes:
    """A button click as Slack POSTs it: form field ``payload`` holding a block_actions JSON document."""
    name = user_name or user_id.lower()
    action = _button_action(button)
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": name, "name": name, "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": LEGACY_TOKEN,
        "container": {
            "type": "message",
            "message_ts": button.message_ts,
            "channel_id": button.channel,
            "is_ephemeral": button.is_ephemeral,
        },
        "trigger_id": trigger_id,
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": button.channel, "name": channel_name},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
    if not button.is_ephemeral:  # Slack does not echo an ephemeral message back
        message = button.message
        payload["message"] = {
            "type": "message",
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "blocks": message.blocks,
            **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
        }
    return urlencode({"payload": json.dumps(payload)}).encode()


def view_submission_body(payload: dict[str, Any]) -> bytes:
    """A modal submission as Slack POSTs it (``payload`` from ``FakeSlack.submission_payload``)."""
    return urlencode({"payload": json.dumps({**payload, "token": LEGACY_TOKEN})}).encode()


def view_block_action_body(
    button: ViewButton, user_id: str, view: dict[str, Any], *, user_name: str | None = None, trigger_id: str = ""
) -> bytes:
    """A click on a button in a view (the App Home, a modal): no channel, no message, no response_url.

    ``view`` is the view as Slack echoes it (``FakeSlack.view_payload``).
    """
    name = user_name or user_id.lower()
    action = _button_action(button)
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": name, "name": name, "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": LEGACY_TOKEN,
        "container": {"type": "view", "view_id": button.view.id},
        "trigger_id": trigger_id,
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": view,
        "actions": [action],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def shortcut_body(callback_id: str, user_id: str, trigger_id: str, *, user_name: str | None = None) -> bytes:
    """A global shortcut (the lightning-bolt menu) as Slack POSTs it: no channel."""
    name = user_name or user_id.lower()
    payload = {
        "type": "shortcut",
        "token": LEGACY_TOKEN,
        "action_ts": f"{time.time():.6f}",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": name, "team_id": TEAM_ID},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id,
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def app_home_opened_body(user_id: str, channel: str, view: dict[str, Any] | None = None) -> bytes:
    """The Events API callback Slack POSTs (JSON) when ``user_id`` opens the app's Home tab."""
    event: dict[str, Any] = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": channel,
        "tab": "home",
        "event_ts": f"{time.time():.6f}",
    }
    if view is not None:
        event["view"] = view
    body = {
        "token": LEGACY_TOKEN,
        "team_id": TEAM_ID,
        "api_app_id": APP_ID,
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{int(time.time() * 1000):013d}",
        "event_time": int(time.time()),
        "authorizations": [
            {"enterprise_id": None, "team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True,
             "is_enterprise_install": False}
        ],
        "is_ext_shared_channel": False,
    }  # fmt: skip
    return json.dumps(body).encode()


class Submitted(NamedTuple):
    """What became of a modal submission: the app's answer, the inline errors it showed, whether it closed."""

    reply: Reply
    errors: dict[str, str]
    closed: bool


class Reply(NamedTuple):
    """The app's HTTP answer and how long it took to arrive."""

    status: int
    body: str
    seconds: float


class SlackClientSimulator:
    """Plays Slack's side towards the app at ``app_url``: signed commands and clicks, with fresh response_urls."""

    def __init__(self, app_url: str, signing_secret: str, fake: FakeSlack, *, timeout: float = 10.0) -> None:
        parts = urlsplit(app_url)
        if parts.scheme != "http" or parts.hostname not in _LOOPBACK_HOSTS:
            raise ValueError(f"the app must listen on loopback over http, got {app_url!r}")
        self.app_url = app_url
        self.signing_secret = signing_secret
        self.fake = fake
        self.timeout = timeout
        self.last_hook: str | None = None  # hooks_url name of the last response_url handed out
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy

    def command(
        self, text: str, user: str, *, command: str = "/dns", channel: str = DEFAULT_CHANNEL, user_name: str = ""
    ) -> Reply:
        """``user`` types ``{command} {text}`` in ``channel``."""
        self.last_hook = f"command-{next(_HOOK_NUMBERS)}"
        response_url = self.fake.hooks_url(self.last_hook, channel=channel, user=user)
        body = slash_command_body(
            command,
            text,
            user_id=user,
            user_name=user_name or self.fake.users.get(user),
            channel_id=channel,
            response_url=response_url,
            trigger_id=self.fake.issue_trigger_id(user),
        )
        return self.post(body)

    def click(self, button: Button, user: str, *, user_name: str = "") -> Reply:
        """``user`` clicks ``button`` (from ``fake.find_button``)."""
        self.last_hook = f"click-{next(_HOOK_NUMBERS)}"
        response_url = self.fake.hooks_url(
            self.last_hook, channel=button.channel, user=user, message_ts=button.message_ts
        )
        body = block_action_body(
            button,
            user,
            response_url,
            user_name=user_name or self.fake.users.get(user),
            trigger_id=self.fake.issue_trigger_id(user),
        )
        return self.post(body)

    def shortcut(self, callback_id: str, user: str) -> Reply:
        """``user`` picks the app's global shortcut ``callback_id``."""
        trigger_id = self.fake.issue_trigger_id(user)
        return self.post(shortcut_body(callback_id, user, trigger_id, user_name=self.fake.users.get(user)))

    def submit_view(self, view: SlackView, user: str, values: dict[str, str | None]) -> Submitted:
        """``user`` fills in ``values`` (input block id -> text or option) and presses the modal's submit."""
        reply = self.post(view_submission_body(self.fake.submission_payload(view, user, values)))
        errors = self.fake.answer_submission(view, reply.status, reply.body)
        return Submitted(reply, errors, view.id not in {v.id for v in self.fake.open_modals()})

    def click_in_view(self, button: ViewButton, user: str) -> Reply:
        """``user`` clicks ``button`` (from ``fake.find_view_button``) in a modal or their App Home."""
        body = view_block_action_body(
            button, user, self.fake.view_payload(button.view), user_name=self.fake.users.get(user),
            trigger_id=self.fake.issue_trigger_id(user),
        )  # fmt: skip
        return self.post(body)

    def open_home(self, user: str) -> Reply:
        """``user`` opens the app's Home tab (an ``app_home_opened`` event)."""
        home = self.fake.home_view(user)
        view = self.fake.view_payload(home) if home is not None else None
        return self.post(app_home_opened_body(user, self.fake.dm_channel(user), view), content_type="application/json")

    def post(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        signing_secret: str | None = None,
        content_type: str = "application/x-www-form-urlencoded",
    ) -> Reply:
        """POST a body signed like Slack; pass ``timestamp``/``signing_secret`` to send a bad signature."""
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            **sign(self.signing_secret if signing_secret is None else signing_secret, body, ts),
        }
        request = urllib.request.Request(self.app_url, data=body, headers=headers, method="POST")  # noqa: S310
        started = time.perf_counter()
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                text = response.read().decode("utf-8", "replace")
                status = int(response.status)
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            status = error.code
        return Reply(status, text, time.perf_counter() - started)
