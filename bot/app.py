"""The Bolt app: thin listeners that ack at once and hand slow work to lazy listeners.

Every listener acks within milliseconds (``process_before_response=True``); planning,
approving and applying run in lazy listeners after the ack, as Slack requires.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import structlog
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.anchor import MessageRef
from bot.commands import USAGE, ChangeCommand, HelpCommand, RollbackCommand, StatusCommand, parse
from bot.notifier import SlackThreadNotifier
from bot.render import (
    APPROVE,
    DENY,
    EMERGENCY,
    RECHECK,
    ROLLBACK,
    escape,
    recent_text,
    request_blocks,
    request_text,
    status_text,
    who,
)
from core.errors import BreakglassError
from core.models import Principal, PrincipalSource
from core.ports import StoredRequest
from service.changes import ChangeService

log = structlog.get_logger("breakglass.slack")

HELP = (
    "*breakglass*: emergency DNS changes with pre-agreed approval and verification.\n"
    + USAGE
    + "\nNames are fully qualified (api.example.com). Types: A, AAAA, CNAME, TXT, MX, SRV, NS;"
    + ' quote values with spaces (TXT text, "10 mx.example.com").'
)

Lazy = Callable[..., None]


def _slack_user(user_id: str) -> Principal:
    return Principal(PrincipalSource.SLACK, user_id)


def build_app(service: ChangeService, signing_secret: str, client: WebClient, audit_channel: str | None = None) -> App:
    """Wire the listeners; ``client`` decides where Web API calls go (Slack, or a local stand-in)."""
    app = App(
        signing_secret=signing_secret,
        client=client,
        process_before_response=True,
        token_verification_enabled=False,
    )
    notifier = SlackThreadNotifier(client, service, audit_channel)
    listeners = _Listeners(service, client, notifier)
    app.command("/dns")(ack=listeners.ack_command, lazy=[listeners.run_command])
    app.action(APPROVE)(ack=_ack_only, lazy=[listeners.approve])
    app.action(DENY)(ack=_ack_only, lazy=[listeners.deny])
    app.action(ROLLBACK)(ack=_ack_only, lazy=[listeners.rollback])
    app.action(RECHECK)(ack=_ack_only, lazy=[listeners.recheck])
    app.action(EMERGENCY)(ack=_ack_only, lazy=[listeners.emergency])
    return app


def _ack_only(ack: Ack) -> None:
    ack()


def _guarded(tell: Callable[[Any, dict[str, Any], str], None]) -> Callable[[Lazy], Lazy]:
    """Turn any failure of a lazy listener into a message to the person who acted."""

    def decorate(func: Lazy) -> Lazy:
        @functools.wraps(func)
        def wrapper(self: Any, body: dict[str, Any], **kwargs: Any) -> None:
            try:
                func(self, body, **kwargs)
            except BreakglassError as error:
                tell(self, body, f":warning: {escape(error.user_text())}")
            except Exception:
                log.exception("listener.crashed", listener=func.__name__)
                tell(
                    self,
                    body,
                    ":x: breakglass hit an internal error; nothing further was done. "
                    "Check `/dns status` and the bot's logs.",
                )

        return wrapper

    return decorate


def _tell_command(self: _Listeners, body: dict[str, Any], text: str) -> None:
    self.respond_ephemeral(body["response_url"], text)


def _tell_clicker(self: _Listeners, body: dict[str, Any], text: str) -> None:
    self.client.chat_postEphemeral(channel=body["channel"]["id"], user=body["user"]["id"], text=text)


class _Listeners:
    def __init__(self, service: ChangeService, client: WebClient, notifier: SlackThreadNotifier) -> None:
        self.service = service
        self.client = client
        self.notifier = notifier

    def ack_command(self, ack: Ack, command: dict[str, Any]) -> None:
        """Parse synchronously (cheap) so usage errors come back in the ack itself."""
        try:
            parsed = parse(command.get("text", ""))
        except BreakglassError as error:
            ack(response_type="ephemeral", text=f":warning: {escape(error.user_text())}")
            return
        if isinstance(parsed, HelpCommand):
            ack(response_type="ephemeral", text=HELP)
        elif isinstance(parsed, ChangeCommand):
            ack(response_type="ephemeral", text="Planning your change: reading what the zone serves now…")
        else:
            ack()

    @_guarded(_tell_command)
    def run_command(self, body: dict[str, Any]) -> None:
        parsed = parse(body.get("text", ""))
        user = _slack_user(body["user_id"])
        if isinstance(parsed, ChangeCommand):
            stored = self.service.request_change(user, parsed.edits, parsed.reason)
            self.post_request(body["channel_id"], stored)
        elif isinstance(parsed, RollbackCommand):
            self.start_rollback(parsed.request_id, user, body["channel_id"])
        elif isinstance(parsed, StatusCommand):
            if parsed.request_id:
                text = status_text(self.service.status(parsed.request_id))
            else:
                text = recent_text(self.service.recent(10))
            problem = self.service.policy_problem()
            if problem:
                text = f":no_entry: breakglass refuses every request now: {escape(problem)}\n{text}"
            self.respond_ephemeral(body["response_url"], text)

    @_guarded(_tell_clicker)
    def approve(self, body: dict[str, Any]) -> None:
        request_id = body["actions"][0]["value"]
        outcome = self.service.approve(request_id, _slack_user(body["user"]["id"]))
        self.notifier.update_message(request_id)
        if outcome.ready_to_apply:
            self.service.execute(request_id, self.notifier)

    @_guarded(_tell_clicker)
    def emergency(self, body: dict[str, Any]) -> None:
        request_id = body["actions"][0]["value"]
        outcome = self.service.approve(request_id, _slack_user(body["user"]["id"]), emergency=True)
        self.notifier.update_message(request_id)
        ref = MessageRef.decode(outcome.stored.anchor)
        if ref is not None:
            mentions = " ".join(f"<@{escape(u)}>" for u in outcome.notify)
            self.client.chat_postMessage(
                channel=ref.channel, thread_ts=ref.ts,
                text=f":rotating_light: {who(outcome.stored.request.requester)} self-approved {request_id} under "
                f"the policy's emergency clause. {mentions}: you are told because you could have approved it. "
                "This change is marked for mandatory post-incident review.",
            )  # fmt: skip
        if outcome.ready_to_apply:
            self.service.execute(request_id, self.notifier)

    @_guarded(_tell_clicker)
    def deny(self, body: dict[str, Any]) -> None:
        request_id = body["actions"][0]["value"]
        self.service.deny(request_id, _slack_user(body["user"]["id"]))
        self.notifier.update_message(request_id)

    @_guarded(_tell_clicker)
    def recheck(self, body: dict[str, Any]) -> None:
        self.service.recheck(body["actions"][0]["value"], _slack_user(body["user"]["id"]), self.notifier)

    @_guarded(_tell_clicker)
    def rollback(self, body: dict[str, Any]) -> None:
        self.start_rollback(body["actions"][0]["value"], _slack_user(body["user"]["id"]), body["channel"]["id"])

    def start_rollback(self, request_id: str, user: Principal, channel: str) -> None:
        stored = self.service.request_rollback(request_id, user)
        self.post_request(channel, stored)
        original = MessageRef.decode(self.service.status(request_id).stored.anchor)
        if original is not None:
            self.client.chat_postMessage(
                channel=original.channel,
                thread_ts=original.ts,
                text=f"{who(user)} requested rollback {stored.request.id}; it needs approval like any change.",
            )

    def post_request(self, channel: str, stored: StoredRequest) -> None:
        status = self.service.status(stored.request.id)
        response = self.client.chat_postMessage(
            channel=channel, text=request_text(status), blocks=request_blocks(status)
        )
        self.service.set_anchor(stored.request.id, MessageRef(channel, str(response["ts"])).encode())

    def respond_ephemeral(self, response_url: str, text: str) -> None:
        result = WebhookClient(response_url).send(text=text, response_type="ephemeral")
        if result.status_code != 200:
            log.warning("slack.respond_failed", status=result.status_code)
