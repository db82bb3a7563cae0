"""Tells the Slack thread of a request what the service is doing."""

from __future__ import annotations

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.anchor import MessageRef
from bot.render import escape, request_blocks, request_text, verification_blocks, verification_text
from core.ports import StoredRequest
from core.verification import VerificationReport
from service.changes import ChangeService

log = structlog.get_logger("breakglass.slack")


class SlackThreadNotifier:
    """Posts progress into the request's thread and keeps its main message current."""

    def __init__(self, client: WebClient, service: ChangeService) -> None:
        self._client = client
        self._service = service

    def progress(self, stored: StoredRequest, text: str) -> None:
        ref = MessageRef.decode(stored.anchor)
        if ref is None:
            return
        self.update_message(stored.request.id)
        self._post(ref, text=escape(text))

    def finished(self, stored: StoredRequest, report: VerificationReport | None) -> None:
        ref = MessageRef.decode(stored.anchor)
        if ref is None:
            return
        self.update_message(stored.request.id)  # first, so the verdict never precedes the final state
        if report is not None:
            self._post(ref, text=verification_text(report), blocks=verification_blocks(report))

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
