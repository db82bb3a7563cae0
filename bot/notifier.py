"""Tells the Slack thread of a request what the service is doing."""

from __future__ import annotations

import threading
import time

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.anchor import MessageRef
from bot.render import (
    escape,
    polling_text,
    request_blocks,
    request_text,
    verification_blocks,
    verification_text,
)
from core.ports import StoredRequest
from core.verification import VerificationOutcome, VerificationReport
from service.changes import ChangeService

log = structlog.get_logger("breakglass.slack")


class SlackThreadNotifier:
    """Posts progress into the request's thread and keeps its main message current."""

    LIVE_UPDATE_SECONDS = 1.0  # chat.update is rate limited; once a second is plenty for people

    def __init__(self, client: WebClient, service: ChangeService, audit_channel: str | None = None) -> None:
        self._client = client
        self._service = service
        self._audit_channel = audit_channel
        self._lock = threading.Lock()
        self._live: dict[str, tuple[str, float]] = {}  # request id -> (progress message ts, last update)

    def progress(self, stored: StoredRequest, text: str) -> None:
        ref = MessageRef.decode(stored.anchor)
        if ref is None:
            return
        self.update_message(stored.request.id)
        self._post(ref, text=escape(text))

    def verifying(self, stored: StoredRequest, report: VerificationReport) -> None:
        """One progress message in the thread, edited at most once a second while polling."""
        ref = MessageRef.decode(stored.anchor)
        if ref is None:
            return
        with self._lock:
            live = self._live.get(stored.request.id)
            now = time.monotonic()
            if live is not None and now - live[1] < self.LIVE_UPDATE_SECONDS:
                return
            self._live[stored.request.id] = (live[0] if live else "", now)
        text = polling_text(report)
        try:
            if live is None or not live[0]:
                response = self._client.chat_postMessage(channel=ref.channel, thread_ts=ref.ts, text=text)
                with self._lock:
                    self._live[stored.request.id] = (str(response["ts"]), now)
            else:
                self._client.chat_update(channel=ref.channel, ts=live[0], text=text)
        except SlackApiError as error:
            log.warning("slack.progress_failed", request_id=stored.request.id, error=error.response.get("error"))

    def finished(self, stored: StoredRequest, outcome: VerificationOutcome | None) -> None:
        with self._lock:
            self._live.pop(stored.request.id, None)
        ref = MessageRef.decode(stored.anchor)
        if ref is None:
            return
        self.update_message(stored.request.id)  # first, so the verdict never precedes the final state
        if outcome is not None:
            self._post(ref, text=verification_text(outcome), blocks=verification_blocks(outcome))

    def checkpoint(self, text: str) -> None:
        """Signed chain heads go to the audit channel: a copy the bot's database admin cannot edit."""
        if self._audit_channel is None:
            return
        try:
            self._client.chat_postMessage(channel=self._audit_channel, text=f"`{text}`")
        except SlackApiError as error:
            log.warning("slack.checkpoint_failed", error=error.response.get("error"))

    def update_message(self, request_id: str) -> None:
        status = self._service.status(request_id)
        ref = MessageRef.decode(status.stored.anchor)
        if ref is None:
            return
        try:
            self._client.chat_update(
                channel=ref.channel, ts=ref.ts, text=request_text(status), blocks=request_blocks(status)
            )
        except SlackApiError as error:
            log.warning("slack.update_failed", request_id=request_id, error=error.response.get("error"))

    def _post(self, ref: MessageRef, text: str, blocks: list[dict[str, object]] | None = None) -> None:
        try:
            self._client.chat_postMessage(channel=ref.channel, thread_ts=ref.ts, text=text, blocks=blocks)
        except SlackApiError as error:
            log.warning("slack.post_failed", channel=ref.channel, error=error.response.get("error"))
