"""Slack messages through the durable outbox (store/outbox.py): what each kind means, and the sender.

Why: Slack rate-limits, errors and goes down for minutes. A message that matters (a request's plan
message, progress and verdicts in its thread, the audit checkpoint, a drill's result) must reach
Slack late rather than never, and in the order things happened. Front doors only write it to the
database (``SlackOutbox``); ``OutboxSender`` delivers. Every bot process runs a sender, but only
the one holding the ``outbox-sender`` lease delivers, oldest message first: a message Slack should
take later (429, 5xx, timeouts) blocks the ones behind it, so order is kept; one Slack refuses for
good (``channel_not_found``, ``invalid_blocks``...) is marked failed and the queue moves on.

What is rendered at delivery, not at enqueue: a request's main message (posted or updated) shows
its state when Slack takes it, so a late or repeated update is never stale; thread messages find
their thread then too, so they may be written before the plan message is even posted.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from http.client import HTTPException
from typing import Any

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.anchor import MessageRef
from bot.render import approval_request_text, escape, request_blocks, request_text
from core.errors import BreakglassError, PersistenceError
from core.states import RequestState
from service.changes import RequestStatus
from store.locks import WorkerLock
from store.outbox import OutboxMessage, SqlOutbox

log = structlog.get_logger("breakglass.outbox")

SENDER_LOCK = "outbox-sender"

# Slack's ``error`` codes that mean "not now" rather than "never" (besides HTTP 429 and 5xx).
TRANSIENT_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"})
# The bot's token itself is refused: every message would fail, so none is given up; they wait for a fix.
TOKEN_ERRORS = frozenset(
    {"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired", "team_access_not_granted"}
)


class Kind(StrEnum):
    REQUEST = "request"  # a request's main message in ``channel``; its ts becomes the request's anchor
    UPDATE = "update"  # chat.update of the main message, rendered from the request's state at delivery
    THREAD = "thread"  # text (and blocks) in the request's thread
    POST = "post"  # text in ``channel``: audit checkpoints, drill results
    APPROVER_DM = "approver_dm"  # ask one approver directly ([slack] notify = "dm"), if still pending


class SlackOutbox:
    """What front doors call: each method stores one message for Slack; nothing here talks to Slack."""

    def __init__(self, store: SqlOutbox) -> None:
        self.store = store

    def post_request(self, request_id: str, channel: str) -> None:
        self.store.enqueue(Kind.REQUEST, {}, request_id=request_id, channel=channel)

    def update(self, request_id: str) -> None:
        self.store.enqueue(Kind.UPDATE, {}, request_id=request_id)

    def thread(self, request_id: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        payload: dict[str, Any] = {"text": text} if blocks is None else {"text": text, "blocks": blocks}
        self.store.enqueue(Kind.THREAD, payload, request_id=request_id)

    def post(self, channel: str, text: str) -> None:
        self.store.enqueue(Kind.POST, {"text": text}, channel=channel)

    def ask_approver(self, request_id: str, user_id: str) -> None:
        self.store.enqueue(Kind.APPROVER_DM, {"user": user_id}, request_id=request_id)

    def has_thread(self, request_id: str) -> bool:
        """The request has a Slack message, or one is waiting to be posted (CLI-only requests have none)."""
        state = self.store.thread_state(request_id)
        return state.anchor is not None or Kind.REQUEST in state.waiting_kinds

    def caught_up(self, request_id: str) -> MessageRef | None:
        """The request's message, if it is posted and nothing queued for it is still waiting."""
        state = self.store.thread_state(request_id)
        return None if state.waiting_kinds else MessageRef.decode(state.anchor)


@dataclass(frozen=True)
class SenderSettings:
    poll_seconds: float = 0.5  # other processes (the CLI, other replicas) enqueue too
    lease_seconds: float = 30.0  # a holder that dies without letting go is replaced after this
    first_backoff: float = 1.0  # 5xx, timeouts, connection errors: 1, 2, 4... seconds
    max_backoff: float = 30.0
    keep_sent: timedelta = timedelta(days=7)
    keep_failed: timedelta = timedelta(days=30)

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try of a message that has failed ``attempts`` times before."""
        return float(min(self.max_backoff, self.first_backoff * 2 ** min(attempts, 30)))


class _NoThread(Exception):
    """The request's Slack message was never posted (its plan message failed for good)."""


@dataclass(frozen=True)
class _Sent:
    note: str | None = None  # why nothing was sent, when nothing was
    anchor: tuple[str, str] | None = None  # (request id, where its message now is)


class OutboxSender:
    """One background thread: hold the lease, deliver the head of the queue, repeat; stop cleanly.

    ``client`` must not retry by itself (no slack_sdk retry handlers): the outbox's own policy
    decides, and its timeout stays well under the lease, so a slow call never outlives it.
    ``status_of`` (``ChangeService.status``) renders a request's main message at delivery.
    """

    def __init__(
        self,
        store: SqlOutbox,
        lock: WorkerLock,
        client: WebClient,
        status_of: Callable[[str], RequestStatus],
        *,
        owner: str | None = None,
        settings: SenderSettings | None = None,
    ) -> None:
        self._store = store
        self._lock = lock
        self._client = client
        self._status_of = status_of
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.settings = settings or SenderSettings()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease_until = 0.0  # time.monotonic() when our lease lapses; 0: not held
        self._next_prune = 0.0
        # (message id, time.monotonic() before which we do not retry it). The queue's own time is wall
        # clock, shared with other replicas; this local hold keeps a wall-clock step (NTP) from making
        # us retry early, and hammer a Slack that asked us to wait.
        self._hold: tuple[int, float] | None = None
        store.on_enqueue(self._wake.set)

    def start(self) -> OutboxSender:
        self._thread = threading.Thread(target=self._run, name="breakglass-outbox", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the message in hand, then let go of the lease so another replica takes over at once."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self._lock.release(self.owner)
        except PersistenceError as error:
            log.warning("outbox.release_failed", error=error.user_text())
        self._lease_until = 0.0

    @property
    def holds_lease(self) -> bool:
        return self._lease_until > time.monotonic()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                pause = self.step()
            except Exception as error:  # e.g. the database is down: keep trying, never die
                log.warning("outbox.step_failed", error=type(error).__name__, detail=_describe(error))
                pause = self.settings.poll_seconds
            if pause > 0:
                self._wake.wait(pause)
            self._wake.clear()

    def step(self) -> float:
        """Deliver at most one message; returns how long to wait before the next step."""
        if not self._hold_lease():
            return self.settings.poll_seconds
        message = self._store.head()
        if message is None:
            self._prune()
            return self.settings.poll_seconds
        due = (message.next_attempt_at - datetime.now(UTC)).total_seconds()
        if self._hold is not None and self._hold[0] == message.id:
            due = max(due, self._hold[1] - time.monotonic())
        if due > 0:
            return min(due, self.settings.poll_seconds)
        self._deliver(message)
        return 0.0

    def _hold_lease(self) -> bool:
        """Renew once a third of the lease has passed, so a delivery in hand always has time to finish."""
        lease = self.settings.lease_seconds
        if self._lease_until - time.monotonic() > lease * 2 / 3:
            return True
        started = time.monotonic()
        expires = self._lock.acquire(self.owner, lease)
        if expires is None:
            if self._lease_until:
                log.warning("outbox.lease_lost", owner=self.owner)
            self._lease_until = 0.0
            return False
        if not self._lease_until:
            log.info("outbox.lease_taken", owner=self.owner)
        self._lease_until = started + lease
        return True

    def _prune(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + 3600
        now = datetime.now(UTC)
        self._store.prune(now - self.settings.keep_sent, now - self.settings.keep_failed)

    # --- one message --------------------------------------------------------------------------

    def _deliver(self, message: OutboxMessage) -> None:
        fields = {"outbox_id": message.id, "kind": message.kind, "request_id": message.request_id}
        try:
            sent = self._send(message)
        except SlackApiError as error:
            self._refused(message, error.response, fields)
            return
        except (OSError, HTTPException) as error:  # connection refused or reset, timeouts
            self._later(message, self.settings.backoff(message.attempts), type(error).__name__, fields)
            return
        except PersistenceError:
            raise  # the database, not the message: the step is retried as it stands
        except _NoThread:
            self._give_up(message, "no_thread: the request's Slack message was never posted", fields)
            return
        except BreakglassError as error:
            self._give_up(message, error.user_text(), fields)
            return
        except Exception as error:  # a message this code cannot send must not block the queue
            log.exception("outbox.crashed", **fields)
            self._give_up(message, f"internal error ({type(error).__name__})", fields)
            return
        if self._store.mark_sent(message.id, anchor=sent.anchor, note=sent.note):
            log.info("outbox.sent", attempts=message.attempts + 1, note=sent.note, **fields)

    def _refused(self, message: OutboxMessage, response: SlackResponse, fields: dict[str, Any]) -> None:
        status = int(response.status_code)
        code = response.get("error") if isinstance(response.data, dict) else None
        what = _what(status, code)
        if status == 429:
            self._later(message, _retry_after(response, self.settings.first_backoff), what, fields)
        elif status >= 500 or code in TRANSIENT_ERRORS:
            self._later(message, self.settings.backoff(message.attempts), what, fields)
        elif code in TOKEN_ERRORS:
            log.error("outbox.token_refused", error=what, hint="Fix SLACK_BOT_TOKEN; messages wait meanwhile.")
            self._later(message, self.settings.backoff(message.attempts), what, fields)
        else:
            self._give_up(message, what, fields)

    def _later(self, message: OutboxMessage, seconds: float, error: str, fields: dict[str, Any]) -> None:
        log.warning("outbox.retry_later", error=error, wait_seconds=round(seconds, 3), attempts=message.attempts + 1,
                    **fields)  # fmt: skip
        self._hold = (message.id, time.monotonic() + seconds)
        self._store.retry_at(message.id, datetime.now(UTC) + timedelta(seconds=seconds), error)

    def _give_up(self, message: OutboxMessage, error: str, fields: dict[str, Any]) -> None:
        log.error("outbox.failed", error=error, **fields)
        self._store.mark_failed(message.id, error)

    def _send(self, message: OutboxMessage) -> _Sent:
        kind, payload = message.kind, message.payload
        if kind == Kind.POST:
            self._client.chat_postMessage(channel=_required(message.channel), text=str(payload["text"]))
            return _Sent()
        request_id = _required(message.request_id)
        if kind == Kind.THREAD:
            ref = self._thread_of(self._store.anchor(request_id))
            blocks = payload.get("blocks")
            self._client.chat_postMessage(channel=ref.channel, thread_ts=ref.ts, text=str(payload["text"]),
                                          blocks=blocks)  # fmt: skip
            return _Sent()
        status = self._status_of(request_id)
        if kind == Kind.REQUEST:
            if status.stored.anchor:
                return _Sent(note="already posted")
            channel = _required(message.channel)
            posted = self._client.chat_postMessage(
                channel=channel, text=request_text(status), blocks=request_blocks(status)
            )
            return _Sent(anchor=(request_id, MessageRef(channel, str(posted["ts"])).encode()))
        ref = self._thread_of(status.stored.anchor)
        if kind == Kind.UPDATE:
            self._client.chat_update(channel=ref.channel, ts=ref.ts, text=request_text(status),
                                     blocks=request_blocks(status))  # fmt: skip
            return _Sent()
        if kind == Kind.APPROVER_DM:
            if status.stored.state is not RequestState.PENDING_APPROVAL:
                return _Sent(note=f"not sent: the request is {status.stored.state.value}")
            text = approval_request_text(status, self._permalink(ref))
            self._client.chat_postMessage(channel=str(payload["user"]), text=text)
            return _Sent()
        raise BreakglassError(f"Unknown outbox message kind {kind!r}.")

    def _permalink(self, ref: MessageRef) -> str:
        try:
            link = self._client.chat_getPermalink(channel=ref.channel, message_ts=ref.ts)["permalink"]
        except SlackApiError as error:
            if error.response.status_code == 429 or error.response.status_code >= 500:
                raise
            return f"<#{escape(ref.channel)}>"
        return f"<{link}|the plan message>"

    @staticmethod
    def _thread_of(anchor: str | None) -> MessageRef:
        ref = MessageRef.decode(anchor)
        if ref is None:
            raise _NoThread
        return ref


def _retry_after(response: SlackResponse, default: float) -> float:
    for name, value in (response.headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value[0] if isinstance(value, list) else value))
            except (TypeError, ValueError, IndexError):
                break
    return default


def _what(status: int, code: object) -> str:
    """``channel_not_found``, ``HTTP 500 fatal_error``, ``HTTP 503`` (a body that is not Slack's JSON)."""
    slack_code = str(code) if isinstance(code, str) and code and " " not in code else ""
    if status == 200:
        return slack_code or "not ok"
    return f"HTTP {status} {slack_code}".strip()


def _required(value: str | None) -> str:
    if not value:
        raise BreakglassError("The outbox message lacks its channel or request id.")
    return value


def _describe(error: Exception) -> str:
    return error.user_text() if isinstance(error, BreakglassError) else type(error).__name__
