"""A local stand-in for Slack's Web API and response_url targets, used by `breakglass demo` and the tests.

Why: slack.com is unreachable here and tests must talk to a real server. FakeSlack records every call, answers
like Slack, keeps what each channel shows now (posts, in-place updates, thread replies, ephemerals), and
validates Block Kit like Slack does, plus the limits slack_sdk does not check, so a test can assert
``fake.violations == []``. It binds 127.0.0.1 on a random port and keeps all state in memory.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from sandbox.net import LOOPBACK

HOOK = "response_url"
"""The method name under which POSTs to a response_url (``hooks_url``) are recorded."""

TEAM_ID = "T0BREAKGLASS"
TEAM_DOMAIN = "breakglass-test"
APP_ID = "A0BREAKGLASS"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"

# Block Kit limits Slack enforces (https://docs.slack.dev/reference/block-kit).
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_URL = 3000
MAX_ID = 255
MAX_HEADER_TEXT = 150
MAX_VIEW_TITLE = 24
MAX_PRIVATE_METADATA = 3000
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_HOOK_USES = 5
HOOK_LIFETIME = 30 * 60.0

_JSON_FIELDS = ("blocks", "view", "attachments", "metadata")
_FIRST_TS = 1_700_000_000_000_100  # microseconds: the first ts is "1700000000.000100"
_TS_STEP = 100


@dataclass(frozen=True)
class SlackCall:
    """One recorded Web API call (or response_url POST, with ``method == HOOK``)."""

    method: str
    args: dict[str, Any]
    token: str | None
    at: float  # time.monotonic() when the request arrived
    ok: bool
    error: str | None = None
    hook: str | None = None  # the hooks_url name, for response_url POSTs


@dataclass(frozen=True)
class Violation:
    """A call Slack would have refused because the app broke a rule (Block Kit limits, trigger reuse, ...)."""

    method: str
    errors: tuple[str, ...]


@dataclass(frozen=True)
class Message:
    """A message as the channel (or, for ephemerals, one user) currently sees it."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    user: str = BOT_USER_ID
    thread_ts: str | None = None
    ephemeral_to: str | None = None
    edits: int = 0


@dataclass(frozen=True)
class Button:
    """A button the app rendered, with everything a click payload needs."""

    channel: str
    message_ts: str
    block_id: str
    action_id: str
    value: str | None
    text: str
    style: str | None
    message: Message

    @property
    def is_ephemeral(self) -> bool:
        return self.message.ephemeral_to is not None


@dataclass(frozen=True)
class SlackView:
    """A modal or App Home view the app opened, pushed, updated or published."""

    id: str
    type: str
    user: str | None
    callback_id: str | None
    external_id: str | None
    private_metadata: str
    title: str
    blocks: list[dict[str, Any]]
    hash: str
    root_view_id: str
    source: dict[str, Any] = field(default_factory=dict)  # the view as the app sent it (title, submit...)


@dataclass(frozen=True)
class ViewButton:
    """A button in a view (a modal or the App Home), with everything a block_actions payload needs."""

    view: SlackView
    block_id: str
    action_id: str
    value: str | None
    text: str
    style: str | None


@dataclass
class _Hook:
    name: str
    channel: str | None
    user: str | None
    message_ts: str | None
    created: float
    uses: int = 0


class _ApiError(Exception):
    """A Slack-style refusal: ``{"ok": false, "error": code}``; a violation when the app broke a rule."""

    def __init__(self, code: str, errors: list[str] | None = None, violation: bool = False) -> None:
        super().__init__(code)
        self.code = code
        self.errors = errors or []
        self.violation = violation or bool(errors)


class FakeSlack:
    """The Slack Web API at ``api_url`` and response_url targets at ``hooks_url(name)``, on 127.0.0.1."""

    def __init__(
        self,
        bot_token: str,
        *,
        users: Mapping[str, str] | None = None,
        trigger_ttl: float = 3.0,
    ) -> None:
        self.bot_token = bot_token
        self.users = dict(users or {})
        self.trigger_ttl = trigger_ttl
        self._cond = threading.Condition()
        self._calls: list[SlackCall] = []
        self._violations: list[Violation] = []
        self._messages: dict[tuple[str, str], Message] = {}
        self._ephemerals: dict[str, Message] = {}
        self._views: dict[str, SlackView] = {}
        self._hooks: dict[str, _Hook] = {}
        self._hook_ids: dict[str, str] = {}
        self._triggers: dict[str, tuple[str, float, bool]] = {}
        self._faults: dict[str, list[tuple[int, int, str | None]]] = {}
        self._closed_views: set[str] = set()
        self._view_errors: dict[str, dict[str, str]] = {}
        self._extra_methods: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {}
        self._down = False
        self._ts = itertools.count(_FIRST_TS, _TS_STEP)
        self._ids = itertools.count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -----

    def start(self) -> FakeSlack:
        if self._server is not None:
            return self
        server = _Server((LOOPBACK, 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-slack", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started: call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def api_url(self) -> str:
        """What ``slack_sdk.WebClient(base_url=...)`` takes."""
        return f"{self.base_url}/api/"

    # ----- things Slack hands to the app -----

    def hooks_url(
        self, name: str, *, channel: str | None = None, user: str | None = None, message_ts: str | None = None
    ) -> str:
        """A response_url: POSTs land in the channel/user/message it is tied to. Same name, same URL."""
        with self._cond:
            hook_id = self._hook_ids.get(name)
            if hook_id is None:
                hook_id = f"{next(self._ids)}-{secrets.token_hex(6)}"
                self._hook_ids[name] = hook_id
                self._hooks[hook_id] = _Hook(name, channel, user, message_ts, time.monotonic())
        return f"{self.base_url}/hooks/{hook_id}"

    def issue_trigger_id(self, user: str) -> str:
        """A trigger_id as Slack puts in a command or click: usable once, for ``trigger_ttl`` seconds."""
        trigger_id = f"{next(self._ids)}.{int(time.time())}.{secrets.token_hex(16)}"
        with self._cond:
            self._triggers[trigger_id] = (user, time.monotonic(), False)
        return trigger_id

    def dm_channel(self, user: str) -> str:
        """The id of the direct-message channel between the bot and ``user`` (what conversations.open returns)."""
        return "D" + user[1:]

    def add_method(self, method: str, token: str, answer: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """Serve one more Web API method that takes its own token (``apps.connections.open`` takes the xapp- one).

        ``answer(args)`` runs under the fake's lock and returns the body after ``{"ok": true}``.
        """
        with self._cond:
            self._extra_methods[method] = (token, answer)

    # ----- fault injection -----

    def fail_next(self, method: str, status: int = 429, retry_after: int = 1, error: str | None = None) -> None:
        """Answer the next call of ``method`` with ``status`` (429 carries ``Retry-After``).

        ``error``: the ``error`` code in the body instead of ``ratelimited``/``fatal_error``; with
        ``status=200`` that is how Slack refuses for good (``channel_not_found``, ``invalid_blocks``...).
        Faults queue up: call it several times to fail several calls in a row.
        """
        with self._cond:
            self._faults.setdefault(method, []).append((status, retry_after, error))

    def set_down(self, down: bool) -> None:
        """While down, every request gets a bare HTTP 503, like an outage in front of Slack."""
        with self._cond:
            self._down = down

    # ----- what tests and the demo look at -----

    def calls(self, method: str | None = None) -> list[SlackCall]:
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    @property
    def violations(self) -> list[Violation]:
        with self._cond:
            return list(self._violations)

    def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 10.0,
        predicate: Callable[[SlackCall], bool] | None = None,
    ) -> list[SlackCall]:
        """Block until ``count`` calls of ``method`` (matching ``predicate``) were recorded; return them all."""

        def matching() -> list[SlackCall]:
            return [c for c in self._calls if c.method == method and (predicate is None or predicate(c))]

        deadline = time.monotonic() + timeout
        with self._cond:
            while len(found := matching()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({c.method for c in self._calls})
                    raise TimeoutError(
                        f"waited {timeout:.1f}s for {count} {method} call(s), saw {len(found)}; methods called: {seen}"
                    )
                self._cond.wait(left)
            return found

    def channel_messages(self, channel: str) -> list[Message]:
        """Top-level messages in ``channel`` as shown now (after updates and deletes), oldest first."""
        with self._cond:
            return [m for m in self._messages.values() if m.channel == channel and m.thread_ts is None]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """Replies in the thread under message ``ts`` (not the parent), oldest first."""
        with self._cond:
            return [m for m in self._messages.values() if m.channel == channel and m.thread_ts == ts]

    def ephemerals(self, user: str | None = None) -> list[Message]:
        """Ephemeral messages (to ``user``, or to anyone), oldest first."""
        with self._cond:
            return [m for m in self._ephemerals.values() if user is None or m.ephemeral_to == user]

    def views(self) -> list[SlackView]:
        with self._cond:
            return list(self._views.values())

    # ----- views as people see and use them (modals, the App Home) -----

    def home_view(self, user: str) -> SlackView | None:
        """The App Home the app last published for ``user``."""
        with self._cond:
            return next((v for v in self._views.values() if v.type == "home" and v.user == user), None)

    def open_modals(self, user: str | None = None) -> list[SlackView]:
        """Modals still on screen (opened, not closed by a submission's answer), oldest first."""
        with self._cond:
            return [
                v
                for v in self._views.values()
                if v.type == "modal" and v.id not in self._closed_views and (user is None or v.user == user)
            ]

    def wait_for_view(
        self, predicate: Callable[[SlackView], bool], timeout: float = 10.0, what: str = "a view"
    ) -> SlackView:
        """Block until a stored view satisfies ``predicate`` (views.open/update/publish land here)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((v for v in self._views.values() if predicate(v)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    titles = [v.title or v.type for v in self._views.values()]
                    raise TimeoutError(f"waited {timeout:.1f}s for {what}; views: {titles}")
                self._cond.wait(left)

    def view_errors(self, view: SlackView) -> dict[str, str]:
        """The inline errors the app answered the last submission of ``view`` with (Slack shows them by field)."""
        with self._cond:
            return dict(self._view_errors.get(view.id, {}))

    def view_buttons(self, view: SlackView) -> list[ViewButton]:
        with self._cond:
            current = self._views.get(view.id, view)
        return [
            ViewButton(current, b.block_id, b.action_id, b.value, b.text, b.style)
            for b in _buttons_of(Message("", "", "", current.blocks))
        ]

    def find_view_button(self, view: SlackView, action_id: str, value: str | None = None) -> ViewButton:
        shown = self.view_buttons(view)
        for button in shown:
            if button.action_id == action_id and (value is None or button.value == value):
                return button
        listing = ", ".join(f"[{b.text}] {b.action_id}={b.value}" for b in shown) or "none"
        raise LookupError(f"no button {action_id!r} (value {value!r}) in view {view.id}; shown: {listing}")

    def view_payload(self, view: SlackView, values: Mapping[str, str | None] | None = None) -> dict[str, Any]:
        """The view as Slack echoes it in interaction payloads, with ``state.values`` as a person filled it in.

        ``values`` maps input block ids to what the person typed or picked (an option's value or text, a
        channel id); inputs left out keep their initial value. Raises ValueError for anything Slack's own
        client would not let through: a required input left empty, an option that is not offered, a
        number outside the input's bounds, text longer than its max_length.
        """
        given = dict(values or {})
        with self._cond:
            current = self._views.get(view.id, view)
            state: dict[str, Any] = {}
            for block in current.blocks:
                element = block.get("element")
                if block.get("type") != "input" or not isinstance(element, dict):
                    continue
                block_id = str(block["block_id"])
                entry = _input_state(element, given.pop(block_id, None))
                if not block.get("optional") and _is_empty(entry):
                    raise ValueError(f"Slack would not submit: {_text_of(block.get('label'))!r} is required")
                state[block_id] = {str(element["action_id"]): entry}
            if given:
                raise ValueError(f"the view has no input blocks {sorted(given)}")
            return {
                **copy.deepcopy(current.source),
                "id": current.id,
                "team_id": TEAM_ID,
                "app_id": APP_ID,
                "bot_id": BOT_ID,
                "app_installed_team_id": TEAM_ID,
                "blocks": copy.deepcopy(current.blocks),
                "private_metadata": current.private_metadata,
                "callback_id": current.callback_id or "",
                "external_id": current.external_id or "",
                "state": {"values": state},
                "hash": current.hash,
                "root_view_id": current.root_view_id,
                "previous_view_id": None,
            }

    def submission_payload(self, view: SlackView, user: str, values: Mapping[str, str | None]) -> dict[str, Any]:
        """The ``view_submission`` payload Slack sends when ``user`` fills in ``view`` and presses submit."""
        with self._cond:
            if view.id in self._closed_views or view.id not in self._views:
                raise ValueError(f"view {view.id} is not open: nobody can submit it")
        name = self.users.get(user, user.lower())
        return {
            "type": "view_submission",
            "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
            "user": {"id": user, "username": name, "name": name, "team_id": TEAM_ID},
            "api_app_id": APP_ID,
            "trigger_id": self.issue_trigger_id(user),
            "view": self.view_payload(view, values),
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def answer_submission(self, view: SlackView, status: int, body: str) -> dict[str, str]:
        """Apply the app's HTTP answer to a submission as Slack does; returns the inline errors (if any).

        Empty body: the modal closes. ``response_action``: ``errors`` keeps it open with messages by block
        (a key that is not an input block of the view is a violation: Slack shows a generic failure),
        ``update``/``push`` replace or stack a view, ``clear`` closes the whole stack.
        """
        with self._cond:
            if status != 200:
                self._violations.append(Violation("view_submission", (f"the app answered HTTP {status}",)))
                return {}
            answer = json.loads(body) if body.strip() else {}
            action = answer.get("response_action")
            if action == "errors":
                errors = {str(k): str(v) for k, v in (answer.get("errors") or {}).items()}
                inputs = {str(b.get("block_id")) for b in self._views[view.id].blocks if b.get("type") == "input"}
                unknown = sorted(set(errors) - inputs)
                if unknown or not errors:
                    self._violations.append(
                        Violation("view_submission", (f"errors for blocks that are not inputs: {unknown}",))
                    )
                self._view_errors[view.id] = errors
                return errors
            self._view_errors.pop(view.id, None)
            if action == "update":
                self._store_view(self._views[view.id], view.user, answer["view"])
            elif action == "push":
                self._store_view(None, view.user, answer["view"])
            elif action == "clear":
                self._closed_views.update(v.id for v in self._views.values() if v.root_view_id == view.root_view_id)
            else:
                self._closed_views.add(view.id)
            self._cond.notify_all()
            return {}

    def buttons(self, channel: str | None = None) -> list[Button]:
        """Every button currently rendered (channel messages, thread replies, ephemerals), newest message first."""
        with self._cond:
            shown = [*self._messages.values(), *self._ephemerals.values()]
        shown.sort(key=lambda m: m.ts, reverse=True)
        return [b for m in shown if channel is None or m.channel == channel for b in _buttons_of(m)]

    def find_button(
        self,
        action_id: str | None = None,
        text: str | None = None,
        channel: str | None = None,
        value: str | None = None,
    ) -> Button:
        """The matching button in the newest message that shows one; LookupError (listing what is shown) if none."""
        shown = self.buttons(channel)
        for button in shown:
            if (
                (action_id is None or button.action_id == action_id)
                and (text is None or button.text == text)
                and (value is None or button.value == value)
            ):
                return button
        listing = ", ".join(f"[{b.text}] action_id={b.action_id} in {b.channel}" for b in shown) or "none"
        raise LookupError(f"no button with action_id={action_id!r} text={text!r} value={value!r}; shown: {listing}")

    def render_text(self, message: Message) -> str:
        """See the module-level ``render_text``."""
        return render_text(message)

    # ----- request handling (called from server threads) -----

    def handle_api(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Answer one Web API call and record it."""
        status, headers = 200, {}
        with self._cond:
            try:
                fault = self._take_fault(method)
                if fault is not None:
                    status, retry_after, code = fault
                    if status == 429:
                        headers["Retry-After"] = str(retry_after)
                    raise _ApiError(code or ("ratelimited" if status == 429 else "fatal_error"))
                expected, answer = self._method(method)
                if not token:
                    raise _ApiError("not_authed")
                if not secrets.compare_digest(token, expected):
                    raise _ApiError("invalid_auth")
                body = {"ok": True, **answer(args)}
            except _ApiError as refusal:
                body = {"ok": False, "error": refusal.code}
                if refusal.errors:
                    body["errors"] = refusal.errors
                    body["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in refusal.errors]}
                if refusal.violation:
                    self._violations.append(Violation(method, tuple(refusal.errors or [refusal.code])))
            self._record(SlackCall(method, args, token, time.monotonic(), bool(body["ok"]), body.get("error")))
        return status, headers, body

    def handle_hook(self, hook_id: str, raw: bytes) -> tuple[int, str]:
        """Answer one POST to a response_url and record it; Slack answers these in plain text."""
        arrived = time.monotonic()
        with self._cond:
            hook = self._hooks.get(hook_id)
            name = hook.name if hook else None
            try:
                args = json.loads(raw or b"null")
            except ValueError:
                args = None
            if not isinstance(args, dict):
                self._record(SlackCall(HOOK, {}, None, arrived, False, "invalid_payload", name))
                return 400, "invalid_payload"
            try:
                fault = self._take_fault(HOOK)
                if fault is not None:
                    raise _ApiError("rate_limited" if fault[0] == 429 else "internal_error")
                if hook is None or arrived - hook.created > HOOK_LIFETIME:
                    raise _ApiError("expired_url")
                hook.uses += 1
                if hook.uses > MAX_HOOK_USES:
                    raise _ApiError("used_url", violation=True)
                self._deliver(hook, args)
            except _ApiError as refusal:
                if refusal.violation:
                    self._violations.append(Violation(HOOK, tuple(refusal.errors or [refusal.code])))
                self._record(SlackCall(HOOK, args, None, arrived, False, refusal.code, name))
                code = {"expired_url": 404, "used_url": 404, "rate_limited": 429, "internal_error": 500}
                return code.get(refusal.code, 400), refusal.code
            self._record(SlackCall(HOOK, args, None, arrived, True, None, name))
        return 200, "ok"

    def _method(self, method: str) -> tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        """The token a method takes and what answers it; unknown methods are refused like Slack does."""
        if method in self._extra_methods:
            return self._extra_methods[method]
        handler = _METHODS.get(method)
        if handler is None:
            raise _ApiError("unknown_method")
        return self.bot_token, lambda args: handler(self, args)

    @property
    def is_down(self) -> bool:
        with self._cond:
            return self._down

    def _record(self, call: SlackCall) -> None:
        self._calls.append(call)
        self._cond.notify_all()

    def _take_fault(self, method: str) -> tuple[int, int, str | None] | None:
        queue = self._faults.get(method)
        return queue.pop(0) if queue else None

    def _next_ts(self) -> str:
        micros = next(self._ts)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _deliver(self, hook: _Hook, args: dict[str, Any]) -> None:
        """response_url semantics: replace/delete the source message, or post in channel, or ephemerally."""
        if args.get("delete_original") and hook.message_ts:
            self._messages.pop((hook.channel or "", hook.message_ts), None)
            self._ephemerals.pop(hook.message_ts, None)
            return
        _check_message(args)
        text, blocks = str(args.get("text") or ""), _normalise_blocks(args.get("blocks"))
        if args.get("replace_original") and hook.message_ts:
            key = (hook.channel or "", hook.message_ts)
            if key in self._messages:
                old = self._messages[key]
                self._messages[key] = replace(old, text=text, blocks=blocks, edits=old.edits + 1)
            elif hook.message_ts in self._ephemerals:
                old = self._ephemerals[hook.message_ts]
                self._ephemerals[hook.message_ts] = replace(old, text=text, blocks=blocks, edits=old.edits + 1)
            return
        if hook.channel is None:
            raise _ApiError("channel_not_found")
        ts = self._next_ts()
        if args.get("response_type") == "in_channel":
            thread_ts = self._thread_root(hook.channel, _opt_str(args.get("thread_ts")))
            self._messages[(hook.channel, ts)] = Message(hook.channel, ts, text, blocks, thread_ts=thread_ts)
        else:
            self._ephemerals[ts] = Message(hook.channel, ts, text, blocks, ephemeral_to=hook.user)

    def _thread_root(self, channel: str, thread_ts: str | None) -> str | None:
        """A reply to a reply lands in the parent's thread, as in Slack."""
        parent = self._messages.get((channel, thread_ts or ""))
        return parent.thread_ts if parent is not None and parent.thread_ts else thread_ts

    # ----- Web API methods: each returns the body after {"ok": true} or raises _ApiError -----

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"{self.base_url}/",
            "team": "Breakglass Test",
            "user": "breakglass",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel_arg(args)
        _check_message(args)
        ts = self._next_ts()
        thread_ts = self._thread_root(channel, _opt_str(args.get("thread_ts")))
        text, blocks = str(args.get("text") or ""), _normalise_blocks(args.get("blocks"))
        message = Message(channel, ts, text, blocks, thread_ts=thread_ts)
        self._messages[(channel, ts)] = message
        return {"channel": channel, "ts": ts, "message": _message_json(message)}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._channel_arg(args), str(args.get("ts") or "")
        old = self._messages.get((channel, ts))
        if old is None:
            raise _ApiError("message_not_found")
        _check_message(args)
        text = str(args["text"]) if args.get("text") is not None else old.text
        blocks = _normalise_blocks(args["blocks"]) if args.get("blocks") is not None else old.blocks
        new = replace(old, text=text, blocks=blocks, edits=old.edits + 1)
        self._messages[(channel, ts)] = new
        return {"channel": channel, "ts": ts, "text": text, "message": _message_json(new)}

    def _delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._channel_arg(args), str(args.get("ts") or "")
        if self._messages.pop((channel, ts), None) is None:
            raise _ApiError("message_not_found")
        return {"channel": channel, "ts": ts}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, user = self._channel_arg(args), _opt_str(args.get("user"))
        if not user:
            raise _ApiError("user_not_found")
        _check_message(args)
        ts = self._next_ts()
        blocks = _normalise_blocks(args.get("blocks"))
        self._ephemerals[ts] = Message(channel, ts, str(args.get("text") or ""), blocks, ephemeral_to=user)
        return {"message_ts": ts}

    def _permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = self._channel_arg(args), str(args.get("message_ts") or "")
        if (channel, ts) not in self._messages:
            raise _ApiError("message_not_found")
        return {"channel": channel, "permalink": f"{self.base_url}/archives/{channel}/p{ts.replace('.', '')}"}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("channel"):
            return {"channel": {"id": str(args["channel"])}}
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if not users:
            raise _ApiError("users_list_not_supplied")
        if len(users) == 1:
            return {"channel": {"id": self.dm_channel(users[0])}}
        return {"channel": {"id": "G" + hashlib.sha256(",".join(sorted(users)).encode()).hexdigest()[:10].upper()}}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = str(args.get("user") or "")
        if not user.startswith(("U", "W")):
            raise _ApiError("user_not_found")
        name = self.users.get(user, user.lower())
        profile = {"real_name": name, "display_name": name, "email": f"{name}@example.test"}
        return {
            "user": {
                "id": user,
                "team_id": TEAM_ID,
                "name": name,
                "real_name": name,
                "deleted": False,
                "is_bot": user == BOT_USER_ID,
                "tz": "UTC",
                "profile": profile,
            }
        }

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._use_trigger(_opt_str(args.get("trigger_id")))
        view = self._store_view(None, user, _view_arg(args))
        return {"view": _view_json(view, args)}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id, external_id = _opt_str(args.get("view_id")), _opt_str(args.get("external_id"))
        if view_id:
            old = self._views.get(view_id)
        else:
            old = next((v for v in self._views.values() if external_id and v.external_id == external_id), None)
        if old is None:
            raise _ApiError("not_found")
        if args.get("hash") and args["hash"] != old.hash:
            raise _ApiError("hash_conflict")
        view = self._store_view(old, old.user, _view_arg(args))
        return {"view": _view_json(view, args)}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user = _opt_str(args.get("user_id"))
        if not user:
            raise _ApiError("invalid_arguments")
        old = next((v for v in self._views.values() if v.type == "home" and v.user == user), None)
        view = self._store_view(old, user, _view_arg(args))
        return {"view": _view_json(view, args)}

    def _use_trigger(self, trigger_id: str | None) -> str:
        """trigger_ids are issued by Slack, valid ~3 s and exchangeable once: opening a modal later fails."""
        found = self._triggers.get(trigger_id or "")
        if trigger_id is None or found is None:
            raise _ApiError("invalid_trigger_id", violation=True)
        user, issued, used = found
        if used:
            raise _ApiError("exchanged_trigger_id", violation=True)
        if time.monotonic() - issued > self.trigger_ttl:
            raise _ApiError("expired_trigger_id", violation=True)
        self._triggers[trigger_id] = (user, issued, True)
        return user

    def _store_view(self, old: SlackView | None, user: str | None, view: dict[str, Any]) -> SlackView:
        errors = _view_errors(view)
        if errors:
            raise _ApiError("invalid_arguments", errors)
        view_id = old.id if old else f"V{next(self._ids):08d}"
        new = SlackView(
            id=view_id,
            type=str(view.get("type")),
            user=user,
            callback_id=_opt_str(view.get("callback_id")),
            external_id=_opt_str(view.get("external_id")),
            private_metadata=str(view.get("private_metadata") or ""),
            title=_text_of(view.get("title")),
            blocks=_normalise_blocks(view.get("blocks")),
            hash=f"{int(time.time())}.{secrets.token_hex(4)}",
            root_view_id=old.root_view_id if old else view_id,
            source=copy.deepcopy(view),
        )
        self._views[view_id] = new
        self._closed_views.discard(view_id)
        return new

    def _channel_arg(self, args: dict[str, Any]) -> str:
        channel = str(args.get("channel") or "")
        if not channel:
            raise _ApiError("channel_not_found")
        return self.dm_channel(channel) if channel.startswith(("U", "W")) else channel


_Method = Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]
_METHODS: dict[str, _Method] = {
    "auth.test": FakeSlack._auth_test,
    "chat.postMessage": FakeSlack._post_message,
    "chat.update": FakeSlack._update,
    "chat.delete": FakeSlack._delete,
    "chat.postEphemeral": FakeSlack._post_ephemeral,
    "chat.getPermalink": FakeSlack._permalink,
    "conversations.open": FakeSlack._conversations_open,
    "users.info": FakeSlack._users_info,
    "views.open": FakeSlack._views_open,
    "views.push": FakeSlack._views_open,
    "views.update": FakeSlack._views_update,
    "views.publish": FakeSlack._views_publish,
}


# ----- HTTP plumbing -----


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of concurrent clients must not see connection resets
    fake: FakeSlack


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and the demo read the recorded calls instead."""

    def _serve(self) -> None:
        fake = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        if fake.is_down:
            self._send(503, "text/plain", b"Service Unavailable")
        elif url.path.startswith("/api/"):
            args, form_token = _parse_args(url.query, raw, self.headers.get("Content-Type") or "")
            auth = self.headers.get("Authorization") or ""
            token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else form_token
            status, headers, body = fake.handle_api(url.path[len("/api/") :], args, token or None)
            self._send(status, "application/json; charset=utf-8", json.dumps(body).encode(), headers)
        elif url.path.startswith("/hooks/"):
            status, text = fake.handle_hook(url.path[len("/hooks/") :], raw)
            self._send(status, "text/plain; charset=utf-8", text.encode())
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status: int, content_type: str, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def _parse_args(query: str, raw: bytes, content_type: str) -> tuple[dict[str, Any], str | None]:
    """Arguments as Slack reads them: query string plus a JSON or form body; JSON-in-a-string fields decoded.

    Returns the args and a form-body ``token`` (Slack accepts that instead of the header, for form bodies only).
    """
    args: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    form_token = None
    if "json" in content_type:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        args.update(body if isinstance(body, dict) else {})
    else:
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
        form_token = form.pop("token", None)
        args.update(form)
    for name in _JSON_FIELDS:
        if isinstance(args.get(name), str):
            with contextlib.suppress(ValueError):  # left as a string: validation reports it
                args[name] = json.loads(args[name])
    return args, form_token


# ----- Block Kit validation -----


def _check_message(args: dict[str, Any]) -> None:
    """Refuse a message Slack would refuse, or one that breaks the rules this project keeps (fallback text)."""
    blocks = args.get("blocks")
    text = args.get("text")
    if blocks is None:
        if not text and not args.get("attachments"):
            raise _ApiError("no_text", violation=True)
        return
    errors = block_errors(blocks, MAX_MESSAGE_BLOCKS, unique_action_ids="message")
    if not str(text or "").strip():
        errors.append("a message with blocks needs a non-empty fallback `text` [json-pointer:/text]")
    if errors:
        raise _ApiError("invalid_blocks", errors)


def block_errors(blocks: Any, limit: int, unique_action_ids: str = "message", pointer: str = "/blocks") -> list[str]:
    """Everything wrong with ``blocks``: slack_sdk's own checks plus the limits it misses.

    ``unique_action_ids`` is "message" (no action_id twice in the message) or "block" (as Slack requires in views).
    """
    if not isinstance(blocks, list):
        return [f"must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > limit:
        errors.append(f"no more than {limit} items allowed, got {len(blocks)} [json-pointer:{pointer}]")
    block_ids: set[str] = set()
    action_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"{pointer}/{i}"
        if not isinstance(block, dict):
            errors.append(f"must be an object [json-pointer:{where}]")
            continue
        if unique_action_ids == "block":
            action_ids = set()
        own = _own_block_errors(block, where, action_ids)
        block_id = block.get("block_id")
        if isinstance(block_id, str):
            if block_id in block_ids:
                own.append(f"duplicate block_id {block_id!r} [json-pointer:{where}/block_id]")
            block_ids.add(block_id)
        errors.extend(own or _sdk_block_errors(block, where))
    return errors


def _sdk_block_errors(block: dict[str, Any], where: str) -> list[str]:
    try:
        parsed = Block.parse(block)
        if parsed is None:
            return [f"unsupported block type {block.get('type')!r} [json-pointer:{where}]"]
        parsed.to_dict()
    except Exception as exc:  # slack_sdk raises several types for malformed input
        return [f"{exc} [json-pointer:{where}]"]
    return []


def _own_block_errors(block: dict[str, Any], where: str, action_ids: set[str]) -> list[str]:
    errors: list[str] = []

    def too_long(value: Any, limit: int, path: str) -> None:
        if isinstance(value, str) and len(value) > limit:
            errors.append(f"must be no more than {limit} characters, got {len(value)} [json-pointer:{where}{path}]")

    too_long(block.get("block_id"), MAX_ID, "/block_id")
    kind = block.get("type")
    if kind == "section":
        too_long(_text_of(block.get("text")), MAX_SECTION_TEXT, "/text/text")
        fields = block.get("fields") or []
        if len(fields) > MAX_SECTION_FIELDS:
            errors.append(f"no more than {MAX_SECTION_FIELDS} fields allowed [json-pointer:{where}/fields]")
        for j, item in enumerate(fields):
            too_long(_text_of(item), MAX_FIELD_TEXT, f"/fields/{j}/text")
        elements = [("/accessory", block["accessory"])] if isinstance(block.get("accessory"), dict) else []
    elif kind == "header":
        too_long(_text_of(block.get("text")), MAX_HEADER_TEXT, "/text/text")
        elements = []
    elif kind == "actions":
        items = block.get("elements") or []
        if not 1 <= len(items) <= MAX_ACTIONS_ELEMENTS:
            errors.append(f"must have 1 to {MAX_ACTIONS_ELEMENTS} elements [json-pointer:{where}/elements]")
        elements = [(f"/elements/{j}", e) for j, e in enumerate(items) if isinstance(e, dict)]
    elif kind == "context":
        if not 1 <= len(block.get("elements") or []) <= MAX_CONTEXT_ELEMENTS:
            errors.append(f"must have 1 to {MAX_CONTEXT_ELEMENTS} elements [json-pointer:{where}/elements]")
        elements = []
    elif kind == "input":
        elements = [("/element", block["element"])] if isinstance(block.get("element"), dict) else []
    else:
        elements = []
    for path, element in elements:
        action_id = element.get("action_id")
        too_long(action_id, MAX_ID, f"{path}/action_id")
        if isinstance(action_id, str):
            if action_id in action_ids:
                errors.append(f"duplicate action_id {action_id!r} [json-pointer:{where}{path}/action_id]")
            action_ids.add(action_id)
        if element.get("type") == "button":
            too_long(_text_of(element.get("text")), MAX_BUTTON_TEXT, f"{path}/text/text")
            too_long(element.get("value"), MAX_BUTTON_VALUE, f"{path}/value")
            too_long(element.get("url"), MAX_BUTTON_URL, f"{path}/url")
    return errors


def _view_errors(view: dict[str, Any]) -> list[str]:
    errors = block_errors(view.get("blocks"), MAX_VIEW_BLOCKS, unique_action_ids="block", pointer="/view/blocks")
    if view.get("type") not in ("modal", "home"):
        errors.append("type must be modal or home [json-pointer:/view/type]")
    if view.get("type") == "modal" and not _text_of(view.get("title")):
        errors.append("a modal needs a title [json-pointer:/view/title]")
    for name in ("title", "submit", "close"):
        if len(_text_of(view.get(name))) > MAX_VIEW_TITLE:
            errors.append(f"must be no more than {MAX_VIEW_TITLE} characters [json-pointer:/view/{name}/text]")
    if len(str(view.get("private_metadata") or "")) > MAX_PRIVATE_METADATA:
        errors.append(f"must be no more than {MAX_PRIVATE_METADATA} characters [json-pointer:/view/private_metadata]")
    for name in ("callback_id", "external_id"):
        if len(str(view.get(name) or "")) > MAX_ID:
            errors.append(f"must be no more than {MAX_ID} characters [json-pointer:/view/{name}]")
    blocks = view["blocks"] if isinstance(view.get("blocks"), list) else []
    has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
    if view.get("type") == "modal" and has_input and not view.get("submit"):
        errors.append("a modal with input blocks needs a submit button [json-pointer:/view/submit]")
    if not errors:
        try:
            View(**view).to_dict()
        except Exception as exc:  # slack_sdk raises several types for malformed input
            errors.append(f"{exc} [json-pointer:/view]")
    return errors


def _view_arg(args: dict[str, Any]) -> dict[str, Any]:
    view = args.get("view")
    if not isinstance(view, dict):
        raise _ApiError("invalid_arguments", ["view must be a JSON object [json-pointer:/view]"])
    return view


# ----- rendering and small helpers -----


def _normalise_blocks(blocks: Any) -> list[dict[str, Any]]:
    """A stored copy, with the block_id/action_id Slack fills in when the app leaves them out."""
    if not isinstance(blocks, list):
        return []
    stored = copy.deepcopy([b for b in blocks if isinstance(b, dict)])
    for block in stored:
        block.setdefault("block_id", secrets.token_urlsafe(4))
        for element in _interactive_elements(block):
            if element.get("type") != "image":
                element.setdefault("action_id", secrets.token_urlsafe(4))
    return stored


def _interactive_elements(block: dict[str, Any]) -> list[dict[str, Any]]:
    """The elements of a block that can carry an action_id (actions elements, a section accessory, an input)."""
    kind = block.get("type")
    if kind == "actions":
        inner = list(block.get("elements") or [])
    elif kind == "section":
        inner = [block.get("accessory")]
    elif kind == "input":
        inner = [block.get("element")]
    else:
        inner = []
    return [e for e in inner if isinstance(e, dict)]


def _buttons_of(message: Message) -> list[Button]:
    found = []
    for block in message.blocks:
        for element in _interactive_elements(block):
            if element.get("type") == "button":
                found.append(
                    Button(
                        channel=message.channel,
                        message_ts=message.ts,
                        block_id=str(block["block_id"]),
                        action_id=str(element["action_id"]),
                        value=_opt_str(element.get("value")),
                        text=_text_of(element.get("text")),
                        style=_opt_str(element.get("style")),
                        message=message,
                    )
                )
    return found


def _message_json(message: Message) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "message",
        "user": message.user,
        "bot_id": BOT_ID,
        "app_id": APP_ID,
        "team": TEAM_ID,
        "text": message.text,
        "ts": message.ts,
        "blocks": copy.deepcopy(message.blocks),
    }
    if message.thread_ts:
        body["thread_ts"] = message.thread_ts
    return body


def _view_json(view: SlackView, args: dict[str, Any]) -> dict[str, Any]:
    given = args["view"]
    return {
        **copy.deepcopy(given),
        "id": view.id,
        "team_id": TEAM_ID,
        "app_id": APP_ID,
        "bot_id": BOT_ID,
        "blocks": copy.deepcopy(view.blocks),
        "private_metadata": view.private_metadata,
        "callback_id": view.callback_id or "",
        "external_id": view.external_id or "",
        "state": {"values": {}},
        "hash": view.hash,
        "root_view_id": view.root_view_id,
        "previous_view_id": None,
    }


def _input_state(element: dict[str, Any], given: str | None) -> dict[str, Any]:
    """One input's entry in ``view.state.values``, shaped as Slack sends it for that element type."""
    kind = str(element.get("type"))
    if kind in ("plain_text_input", "number_input", "email_text_input", "url_text_input"):
        value = given if given is not None else element.get("initial_value")
        text = None if value is None or str(value) == "" else str(value)
        if text is not None and kind == "number_input":
            _check_number(element, text)
        if text is not None and len(text) > int(element.get("max_length") or 3000):
            raise ValueError(f"Slack would not submit: {len(text)} characters in {element.get('action_id')!r}")
        return {"type": kind, "value": text}
    if kind in ("static_select", "radio_buttons"):
        options = list(element.get("options") or []) + [
            o for group in element.get("option_groups") or [] for o in group.get("options") or []
        ]
        chosen = element.get("initial_option")
        if given is not None:
            chosen = next((o for o in options if given in (o.get("value"), _text_of(o.get("text")))), None)
            if chosen is None:
                offered = [o.get("value") for o in options]
                raise ValueError(f"{given!r} is not an option of {element.get('action_id')!r}: {offered}")
        return {"type": kind, "selected_option": copy.deepcopy(chosen)}
    selected = {"conversations_select": "conversation", "channels_select": "channel", "users_select": "user"}
    if kind in selected:
        key = selected[kind]
        return {"type": kind, f"selected_{key}": given if given is not None else element.get(f"initial_{key}")}
    raise ValueError(f"the fake cannot fill in {kind} inputs yet")


def _check_number(element: dict[str, Any], text: str) -> None:
    try:
        number = float(text) if element.get("is_decimal_allowed") else int(text)
    except ValueError:
        raise ValueError(f"Slack's number input does not accept {text!r}") from None
    low, high = element.get("min_value"), element.get("max_value")
    if (low is not None and number < float(low)) or (high is not None and number > float(high)):
        raise ValueError(f"Slack would not submit {text}: outside {low}..{high}")


def _is_empty(entry: dict[str, Any]) -> bool:
    return all(value in (None, "", []) for key, value in entry.items() if key != "type")


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _text_of(obj: Any) -> str:
    """The string inside a Block Kit text object (or the string itself)."""
    if isinstance(obj, dict):
        return str(obj.get("text") or "")
    return obj if isinstance(obj, str) else ""


_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def _plain(mrkdwn: str) -> str:
    """mrkdwn as a reader sees it: links by label, mentions as @id/#channel, entities unescaped."""

    def link(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return label or target
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        return label or target

    return _LINK.sub(link, mrkdwn).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _element_text(element: dict[str, Any]) -> str:
    kind = element.get("type")
    if kind == "button":
        return f"[{_text_of(element.get('text'))}]"
    if kind in ("mrkdwn", "plain_text"):
        return _plain(_text_of(element))
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    label = _text_of(element.get("placeholder")) or str(kind)
    return f"[{label} v]"


def _rich_text(node: Any) -> str:
    if isinstance(node, dict):
        if node.get("type") == "text":
            return str(node.get("text") or "")
        if node.get("type") == "user":
            return "@" + str(node.get("user_id") or "")
        if node.get("type") == "link":
            return str(node.get("text") or node.get("url") or "")
        return "".join(_rich_text(e) for e in list(node.get("elements") or []))
    return ""


def render_text(message: Message) -> str:
    """A plain-text rendering of a message as Slack shows it: headers, sections, context, buttons as [Label]."""
    if not message.blocks:
        return _plain(message.text)
    lines: list[str] = []
    for block in message.blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(_text_of(block.get("text")))
        elif kind == "section":
            text = _plain(_text_of(block.get("text")))
            fields = [_plain(_text_of(f)) for f in block.get("fields") or []]
            accessory = block.get("accessory")
            if isinstance(accessory, dict):
                text = f"{text}  {_element_text(accessory)}".strip()
            lines.extend(line for line in [text, *fields] if line)
        elif kind in ("context", "actions"):
            parts = [_element_text(e) for e in block.get("elements") or [] if isinstance(e, dict)]
            lines.append(("  " if kind == "context" else " ").join(parts))
        elif kind == "divider":
            lines.append("---")
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text', '')}]")
        elif kind == "input":
            lines.append(f"{_text_of(block.get('label'))}: [ ]")
        elif kind == "rich_text":
            lines.append(_rich_text(block))
        else:
            lines.append(f"[{kind}]")
    return "\n".join(lines)
