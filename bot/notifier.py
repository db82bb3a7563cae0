"""Tells the Slack thread of a request what the service is doing, through the durable outbox.

Progress, verdicts, main-message updates and audit checkpoints are written to the outbox
(bot/outbox.py), so they reach Slack in order even if Slack is down now. The one exception is
the live polling message while verifying: it is edited at most once a second, is worthless
once the verdict is in, and so goes straight to Slack, best effort, and only once everything
queued for that request has been delivered (it never overtakes a queued message).
"""

from __future__ import annotations

import threading
import time

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.outbox import SlackOutbox
from bot.render import escape, polling_text, verification_blocks, verification_text
from core.ports import StoredRequest
from core.verification import VerificationOutcome, VerificationReport

log = structlog.get_logger("breakglass.slack")


class SlackThreadNotifier:
    """Posts progress into the request's thread and keeps its main message current.

    ``live``: the client for the live polling message; None (the command line) leaves it out.
    Requests that have no Slack message (made on the command line) get nothing queued.
    """

    LIVE_UPDATE_SECONDS = 1.0  # chat.update is rate limited; once a second is plenty for people

    def __init__(self, outbox: SlackOutbox, audit_channel: str | None = None, live: WebClient | None = None) -> None:
        self._outbox = outbox
        self._audit_channel = audit_channel
        self._client = live
        self._lock = threading.Lock()
        self._live: dict[str, tuple[str, float]] = {}  # request id -> (progress message ts, last update)

    def progress(self, stored: StoredRequest, text: str) -> None:
        request_id = stored.request.id
        if self._outbox.has_thread(request_id):
            self._outbox.update(request_id)
            self._outbox.thread(request_id, escape(text))

    def verifying(self, stored: StoredRequest, report: VerificationReport) -> None:
        """One progress message in the thread, edited at most once a second while polling."""
        if self._client is None:
            return
        request_id = stored.request.id
        with self._lock:
            live = self._live.get(request_id)
            now = time.monotonic()
            if live is not None and now - live[1] < self.LIVE_UPDATE_SECONDS:
                return
            self._live[request_id] = (live[0] if live else "", now)
        ref = self._outbox.caught_up(request_id)
        if ref is None:  # not posted yet, or queued messages still to go: do not overtake them
            return
        text = polling_text(report)
        try:
            if live is None or not live[0]:
                response = self._client.chat_postMessage(channel=ref.channel, thread_ts=ref.ts, text=text)
                with self._lock:
                    self._live[request_id] = (str(response["ts"]), now)
            else:
                self._client.chat_update(channel=ref.channel, ts=live[0], text=text)
        except SlackApiError as error:
            log.warning("slack.progress_failed", request_id=request_id, error=error.response.get("error"))

    def finished(self, stored: StoredRequest, outcome: VerificationOutcome | None) -> None:
        request_id = stored.request.id
        with self._lock:
            self._live.pop(request_id, None)
        if not self._outbox.has_thread(request_id):
            return
        self._outbox.update(request_id)  # first, so the verdict never precedes the final state
        if outcome is not None:
            self._outbox.thread(request_id, verification_text(outcome), verification_blocks(outcome))

    def checkpoint(self, text: str) -> None:
        """Signed chain heads go to the audit channel: a copy the bot's database admin cannot edit."""
        if self._audit_channel is not None:
            self._outbox.post(self._audit_channel, f"`{text}`")

    def update_message(self, request_id: str) -> None:
        """Show the request's current state in its main message (rendered when Slack takes it)."""
        if self._outbox.has_thread(request_id):
            self._outbox.update(request_id)

    def note(self, request_id: str, text: str) -> None:
        """A line in the request's thread (already mrkdwn: escape what people typed)."""
        if self._outbox.has_thread(request_id):
            self._outbox.thread(request_id, text)
