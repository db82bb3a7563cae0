"""The Bolt app: thin listeners that ack at once and hand slow work to lazy listeners.

Every listener acks within milliseconds (``process_before_response=True``); planning and
approving run in lazy listeners after the ack, as Slack requires. Carrying a change out
(apply and verify), rechecks and drills can take minutes: they run on a separate work pool,
so a few slow verifications never hold up everyone else's commands and clicks on Bolt's
small listener pool.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

import structlog
from slack_bolt import Ack, App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.anchor import MessageRef
from bot.commands import (
    USAGE,
    ChangeCommand,
    DrillCommand,
    HelpCommand,
    ReadinessCommand,
    RequestFormCommand,
    RollbackCommand,
    ShowCommand,
    StatusCommand,
    parse,
)
from bot.home import HOME_APPROVE, HOME_DENY, HOME_REFRESH, home_view
from bot.modal import (
    CALLBACK_ID,
    NAME,
    SHORTCUT_ID,
    FormErrors,
    check_submission,
    form_channel,
    read_submission,
    request_modal,
    submitted_channel,
)
from bot.notifier import SlackThreadNotifier
from bot.ops import ContextExecutor
from bot.outbox import SlackOutbox
from bot.render import (
    APPROVE,
    DENY,
    EMERGENCY,
    RECHECK,
    ROLLBACK,
    escape,
    recent_text,
    status_text,
    who,
)
from bot.show import show_blocks, show_record, show_text
from core.errors import BreakglassError
from core.models import Principal, PrincipalSource
from core.ports import StoredRequest
from service.changes import ApprovalOutcome, ChangeService
from service.drills import DrillRequest, DrillRunner
from service.readiness import ReadinessReporter

log = structlog.get_logger("breakglass.slack")

HELP = (
    "*breakglass*: emergency DNS changes with pre-agreed approval and verification.\n"
    + USAGE
    + "\nNames are fully qualified (api.example.com). Types: A, AAAA, CNAME, TXT, MX, SRV, NS;"
    + ' quote values with spaces (TXT text, "10 mx.example.com").'
)

Lazy = Callable[..., None]
Tell = Callable[[Any, dict[str, Any], str], None]

# Changes carried out at once by one bot; more wait their turn on the work pool (none is lost).
WORK_THREADS = 32


def _slack_user(user_id: str) -> Principal:
    return Principal(PrincipalSource.SLACK, user_id)


def build_app(
    service: ChangeService,
    signing_secret: str,
    client: WebClient,
    audit_channel: str | None = None,
    notify: str = "mention",
    *,
    outbox: SlackOutbox,
    drills: DrillRunner | None = None,
    readiness_reporter: ReadinessReporter | None = None,
) -> App:
    """Wire the listeners; ``client`` decides where Web API calls go (Slack, or a local stand-in).

    Messages that must not be lost go to ``outbox`` (an OutboxSender delivers them); answers to
    the person who acted (ephemerals, response_url, modals, App Home) go straight to ``client``.
    ``notify`` is ``[slack] notify``: "dm" also sends approvers and requesters direct messages.
    """
    app = App(
        signing_secret=signing_secret,
        client=client,
        # One workspace, one bot token we already hold: authorise locally, so no ack ever waits
        # on Slack's Web API (Bolt would otherwise call auth.test inside the first ack).
        authorize=lambda **_: AuthorizeResult(enterprise_id=None, team_id=None, bot_token=client.token),
        process_before_response=True,
    )
    notifier = SlackThreadNotifier(outbox, audit_channel, live=client)
    listeners = _Listeners(service, client, outbox, notifier, notify)
    listeners.work = ContextExecutor(ThreadPoolExecutor(WORK_THREADS, thread_name_prefix="breakglass-work"))
    listeners.drills, listeners.readiness_reporter = drills, readiness_reporter
    app.command("/dns")(ack=listeners.ack_command, lazy=[listeners.run_command])
    app.action(APPROVE)(ack=_ack_only, lazy=[listeners.approve])
    app.action(DENY)(ack=_ack_only, lazy=[listeners.deny])
    app.action(ROLLBACK)(ack=_ack_only, lazy=[listeners.rollback])
    app.action(RECHECK)(ack=_ack_only, lazy=[listeners.recheck])
    app.action(EMERGENCY)(ack=_ack_only, lazy=[listeners.emergency])
    app.shortcut(SHORTCUT_ID)(listeners.open_form_from_shortcut)
    app.view(CALLBACK_ID)(ack=listeners.check_form, lazy=[listeners.plan_form])
    app.event("app_home_opened")(ack=_ack_only, lazy=[listeners.home_opened])
    app.action(HOME_APPROVE)(ack=_ack_only, lazy=[listeners.home_approve])
    app.action(HOME_DENY)(ack=_ack_only, lazy=[listeners.home_deny])
    app.action(HOME_REFRESH)(ack=_ack_only, lazy=[listeners.home_refresh])
    return app


def _ack_only(ack: Ack) -> None:
    ack()


def _telling(tell: Tell, listeners: Any, body: dict[str, Any], work: Callable[[], object], name: str) -> None:
    """Run ``work``; turn any failure into a message to the person who acted."""
    try:
        work()
    except BreakglassError as error:
        tell(listeners, body, f":warning: {escape(error.user_text())}")
    except Exception:
        log.exception("listener.crashed", listener=name)
        tell(
            listeners,
            body,
            ":x: breakglass hit an internal error; nothing further was done. Check `/dns status` and the bot's logs.",
        )


def _guarded(tell: Tell) -> Callable[[Lazy], Lazy]:
    """Turn any failure of a lazy listener into a message to the person who acted."""

    def decorate(func: Lazy) -> Lazy:
        @functools.wraps(func)
        def wrapper(self: Any, body: dict[str, Any], **kwargs: Any) -> None:
            _telling(tell, self, body, lambda: func(self, body, **kwargs), func.__name__)

        return wrapper

    return decorate


def _tell_command(self: _Listeners, body: dict[str, Any], text: str) -> None:
    self.respond_ephemeral(body["response_url"], text)


def _tell_clicker(self: _Listeners, body: dict[str, Any], text: str) -> None:
    self.client.chat_postEphemeral(channel=body["channel"]["id"], user=body["user"]["id"], text=text)


def _tell_submitter(self: _Listeners, body: dict[str, Any], text: str) -> None:
    self.tell_user(body["user"]["id"], text, submitted_channel(body["view"]))


def _tell_home_user(self: _Listeners, body: dict[str, Any], text: str) -> None:
    self.tell_user(body["user"]["id"], text, None)


class _Listeners:
    drills: DrillRunner | None = None  # `/dns drill`; None: this bot does not run drills
    readiness_reporter: ReadinessReporter | None = None  # `/dns readiness`
    work: Executor  # slow work: apply and verify, rechecks, drills

    def __init__(
        self,
        service: ChangeService,
        client: WebClient,
        outbox: SlackOutbox,
        notifier: SlackThreadNotifier,
        notify: str = "mention",
    ) -> None:
        self.service = service
        self.client = client
        self.outbox = outbox
        self.notifier = notifier
        self.notify = notify

    def ack_command(self, ack: Ack, command: dict[str, Any]) -> None:
        """Parse synchronously (cheap) so usage errors come back in the ack itself."""
        try:
            parsed = parse(command.get("text", ""))
        except BreakglassError as error:
            ack(response_type="ephemeral", text=f":warning: {escape(error.user_text())}")
            return
        if isinstance(parsed, RequestFormCommand):
            if self.open_form(command.get("trigger_id", ""), form_channel(command.get("channel_id"))):
                ack()
            else:
                ack(response_type="ephemeral", text=":warning: The request form could not be opened.\n" + USAGE)
            return
        if isinstance(parsed, ShowCommand):
            ack(response_type="ephemeral", text=f"Asking every authoritative server about {escape(parsed.name)}…")
            return
        if isinstance(parsed, HelpCommand):
            ack(response_type="ephemeral", text=HELP)
        elif isinstance(parsed, ChangeCommand):
            ack(response_type="ephemeral", text="Planning your change: reading what the zone serves now…")
        elif isinstance(parsed, DrillCommand):
            ack(response_type="ephemeral", text="Starting the drill: a canary record through each change path…")
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
        elif isinstance(parsed, DrillCommand | ReadinessCommand):
            self.drill_or_readiness(parsed, user, body)
        elif isinstance(parsed, ShowCommand):
            report = show_record(self.service, parsed.name, parsed.rtype, user)
            self.respond_ephemeral(body["response_url"], show_text(report), show_blocks(report))
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
        outcome = self.service.approve(request_id, _slack_user(body["user"]["id"]), notifier=self.notifier)
        self.notifier.update_message(request_id)
        self.tell_requester_approved(outcome, _slack_user(body["user"]["id"]))
        if outcome.ready_to_apply:
            self.carry_out(request_id, body, _tell_clicker)

    @_guarded(_tell_clicker)
    def emergency(self, body: dict[str, Any]) -> None:
        request_id = body["actions"][0]["value"]
        outcome = self.service.approve(
            request_id, _slack_user(body["user"]["id"]), emergency=True, notifier=self.notifier
        )
        self.notifier.update_message(request_id)
        mentions = " ".join(f"<@{escape(u)}>" for u in outcome.notify)
        self.notifier.note(
            request_id,
            f":rotating_light: {who(outcome.stored.request.requester)} self-approved {request_id} under "
            f"the policy's emergency clause. {mentions}: you are told because you could have approved it. "
            "This change is marked for mandatory post-incident review.",
        )
        if outcome.ready_to_apply:
            self.carry_out(request_id, body, _tell_clicker)

    @_guarded(_tell_clicker)
    def deny(self, body: dict[str, Any]) -> None:
        request_id = body["actions"][0]["value"]
        self.service.deny(request_id, _slack_user(body["user"]["id"]), self.notifier)  # updates the message
        self.tell_requester_denied(request_id, _slack_user(body["user"]["id"]))

    def recheck(self, body: dict[str, Any]) -> None:
        request_id, person = body["actions"][0]["value"], _slack_user(body["user"]["id"])
        self.in_background(
            "recheck", _tell_clicker, body, lambda: self.service.recheck(request_id, person, self.notifier)
        )

    def carry_out(self, request_id: str, body: dict[str, Any], tell: Tell) -> None:
        """Apply and verify on the work pool; failures reach the person whose approval completed it."""
        self.in_background("execute", tell, body, lambda: self.service.execute(request_id, self.notifier))

    def in_background(self, name: str, tell: Tell, body: dict[str, Any], work: Callable[[], object]) -> None:
        """Slow work (up to the verification timeout, or a drill) leaves Bolt's few listener threads free."""
        self.work.submit(_telling, tell, self, body, work, name)

    @_guarded(_tell_clicker)
    def rollback(self, body: dict[str, Any]) -> None:
        self.start_rollback(body["actions"][0]["value"], _slack_user(body["user"]["id"]), body["channel"]["id"])

    def drill_or_readiness(
        self, parsed: DrillCommand | ReadinessCommand, user: Principal, body: dict[str, Any]
    ) -> None:
        """A drill writes DNS, so its result goes to the channel; the readiness report only to the asker."""
        if isinstance(parsed, ReadinessCommand):
            if self.readiness_reporter is None:
                raise BreakglassError(
                    "This bot does not serve the readiness report.", hint="Run `breakglass readiness`."
                )
            self.respond_ephemeral(body["response_url"], f"```{escape(self.readiness_reporter.report().to_text())}```")
            return
        if self.drills is None:
            raise BreakglassError("This bot does not run drills.", hint="Run `breakglass drill` instead.")
        drills = self.drills

        def drill() -> None:
            report = drills.run(user, DrillRequest(parsed.zone, parsed.path, parsed.simulate_primary_outage))
            icon = ":white_check_mark:" if report.passed else ":x:"
            self.outbox.post(body["channel_id"], f"{icon} {who(user)} ran a drill.\n```{escape(report.to_text())}```")

        self.in_background("drill", _tell_command, body, drill)

    def start_rollback(self, request_id: str, user: Principal, channel: str) -> None:
        stored = self.service.request_rollback(request_id, user)
        self.post_request(channel, stored)
        self.notifier.note(
            request_id, f"{who(user)} requested rollback {stored.request.id}; it needs approval like any change."
        )

    def post_request(self, channel: str, stored: StoredRequest) -> None:
        """Queue the plan message; its delivery sets the request's anchor (the thread everything else goes to).

        dm mode: each eligible approver is also sent a direct message, queued after it (it links to it).
        """
        request_id = stored.request.id
        self.outbox.post_request(request_id, channel)
        if self.notify == "dm":
            for user_id in self.service.status(request_id).approvers:
                self.outbox.ask_approver(request_id, user_id)

    def respond_ephemeral(self, response_url: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        result = WebhookClient(response_url).send(text=text, blocks=blocks, response_type="ephemeral")
        if result.status_code != 200:
            log.warning("slack.respond_failed", status=result.status_code)

    # --- the request form (bot/modal.py) ---------------------------------------------------------

    def open_form(self, trigger_id: str, channel: str | None) -> bool:
        """views.open before anything slow: the trigger_id is valid for ~3 s, once."""
        try:
            self.client.views_open(trigger_id=trigger_id, view=request_modal(self.service.zones.names(), channel))
        except SlackApiError as error:
            log.warning("slack.form_not_opened", error=error.response.get("error"))
            return False
        return True

    def open_form_from_shortcut(self, ack: Ack, body: dict[str, Any]) -> None:
        self.open_form(body.get("trigger_id", ""), None)
        ack()

    def check_form(self, ack: Ack, body: dict[str, Any]) -> None:
        """Fast, synchronous checks; mistakes go back inline next to the field, the modal stays open."""
        try:
            check_submission(self.service, _slack_user(body["user"]["id"]), body["view"])
        except FormErrors as problems:
            ack(response_action="errors", errors=problems.errors)
            return
        except Exception:
            log.exception("form.check_crashed")
            ack(response_action="errors", errors={NAME: "breakglass hit an internal error; try `/dns set` instead."})
            return
        ack()

    @_guarded(_tell_submitter)
    def plan_form(self, body: dict[str, Any]) -> None:
        user = _slack_user(body["user"]["id"])
        form = read_submission(body["view"])
        names = ", ".join(f"{e.name} {e.rtype}" for e in form.edits)
        planning = f"Planning your change to {escape(names)}: reading what the zone serves now…"
        self.tell_user(user.id, planning, form.channel)
        stored = self.service.request_change(user, form.edits, form.reason)
        self.post_request(form.channel, stored)

    # --- App Home (bot/home.py) ------------------------------------------------------------------

    def home_opened(self, body: dict[str, Any]) -> None:
        event = body.get("event") or {}
        if event.get("tab", "home") == "home" and event.get("user"):
            self.publish_home(str(event["user"]))

    def publish_home(self, user_id: str) -> None:
        try:
            self.client.views_publish(user_id=user_id, view=home_view(self.service, user_id))
        except (SlackApiError, BreakglassError) as error:
            log.warning("slack.home_not_published", error=str(error))

    @_guarded(_tell_home_user)
    def home_approve(self, body: dict[str, Any]) -> None:
        user, request_id = _slack_user(body["user"]["id"]), body["actions"][0]["value"]
        outcome = self.service.approve(request_id, user, notifier=self.notifier)
        self.notifier.update_message(request_id)
        self.tell_requester_approved(outcome, user)
        self.publish_home(user.id)
        if outcome.ready_to_apply:
            self.carry_out(request_id, body, _tell_home_user)

    @_guarded(_tell_home_user)
    def home_deny(self, body: dict[str, Any]) -> None:
        user, request_id = _slack_user(body["user"]["id"]), body["actions"][0]["value"]
        self.service.deny(request_id, user, self.notifier)  # updates the message
        self.tell_requester_denied(request_id, user)
        self.publish_home(user.id)

    def home_refresh(self, body: dict[str, Any]) -> None:
        self.publish_home(body["user"]["id"])

    # --- notifications ([slack] notify) ----------------------------------------------------------

    def tell_user(self, user_id: str, text: str, channel: str | None) -> None:
        """Ephemeral in ``channel`` when there is one (and dm mode is off), else a direct message."""
        if channel and self.notify != "dm":
            try:
                self.client.chat_postEphemeral(channel=channel, user=user_id, text=text)
                return
            except SlackApiError as error:  # e.g. the bot is not in that channel
                log.warning("slack.ephemeral_failed", error=error.response.get("error"))
        try:
            self.client.chat_postMessage(channel=user_id, text=text)
        except SlackApiError as error:
            log.warning("slack.dm_failed", error=error.response.get("error"))

    def _tell_requester(self, request_id: str, decider: Principal, text: str) -> None:
        stored = self.service.status(request_id).stored
        requester = stored.request.requester
        if requester.source is not PrincipalSource.SLACK or requester == decider:
            return
        ref = MessageRef.decode(stored.anchor)
        self.tell_user(requester.id, text, ref.channel if ref else None)

    def tell_requester_approved(self, outcome: ApprovalOutcome, approver: Principal) -> None:
        request_id = outcome.stored.request.id
        then = "the approvals are complete: applying it now." if outcome.ready_to_apply else (
            f"still needed: {escape(outcome.missing)}."
        )  # fmt: skip
        self._tell_requester(request_id, approver, f":white_check_mark: {who(approver)} approved {request_id}; {then}")

    def tell_requester_denied(self, request_id: str, denier: Principal) -> None:
        text = f":no_entry: {who(denier)} denied {request_id}; nothing will be applied."
        self._tell_requester(request_id, denier, text)
