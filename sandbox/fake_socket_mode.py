"""A local stand-in for Slack's Socket Mode: ``apps.connections.open`` on FakeSlack, and the WebSocket behind it.

Why: with Socket Mode, Slack pushes commands and clicks to the app over a WebSocket the app opened, and the
app acknowledges each envelope on the same socket. This fake answers ``apps.connections.open`` (with the
app-level ``xapp-`` token) with a ``ws://127.0.0.1:PORT`` URL holding a single-use ticket, greets each
connection with ``hello``, pushes envelopes shaped like Slack's, and records every acknowledgement, so tests
can drive slack_bolt's SocketModeHandler exactly as Slack would. Binds 127.0.0.1 on a random port.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import secrets
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from sandbox.fake_slack import APP_ID, Button, FakeSlack
from sandbox.net import LOOPBACK
from sandbox.slack_signing import DEFAULT_CHANNEL, block_action_body, slash_command_body

CONNECTIONS_OPEN = "apps.connections.open"
ACK_DEADLINE = 3.0  # seconds: Slack tells the user the app did not respond when an envelope's ack comes later


@dataclass(frozen=True)
class EnvelopeAck:
    """The app's acknowledgement of one envelope: its response payload, and how long it took to come."""

    envelope_id: str
    payload: dict[str, Any] | None
    seconds: float

    @property
    def in_time(self) -> bool:
        """Within Slack's window: a later ack finds the user already shown an error."""
        return self.seconds <= ACK_DEADLINE


class FakeSocketMode:
    """Socket Mode for the app whose Web API calls go to ``fake``; use ``with FakeSocketMode(fake, token):``."""

    def __init__(self, fake: FakeSlack, app_token: str) -> None:
        self.fake = fake
        self.app_token = app_token
        self._cond = threading.Condition()
        self._tickets: set[str] = set()
        self._open: list[ServerConnection] = []
        self._accepted = 0
        self._refused = 0
        self._pushed: dict[str, float] = {}
        self._acks: dict[str, EnvelopeAck] = {}
        self._hooks = itertools.count(1)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -----

    def start(self) -> FakeSocketMode:
        if self._server is not None:
            return self
        self._server = serve(self._session, LOOPBACK, 0, compression=None, ping_interval=None)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-socket-mode", daemon=True)
        self._thread.start()
        self.fake.add_method(CONNECTIONS_OPEN, self.app_token, self._connections_open)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSocketMode is not started")
        return int(self._server.socket.getsockname()[1])

    # ----- what Slack sends -----

    def push(self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = True) -> str:
        """Send one envelope (``slash_commands``, ``interactive``, ``events_api``) on the newest connection."""
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        with self._cond:
            if not self._open:
                raise ConnectionError("no Socket Mode connection is open: start the app's handler first")
            connection = self._open[-1]
            self._pushed[envelope_id] = time.monotonic()
        connection.send(json.dumps(envelope))
        return envelope_id

    def command(self, text: str, user: str, *, command: str = "/dns", channel: str = DEFAULT_CHANNEL) -> str:
        """``user`` types ``{command} {text}``: the same fields as over HTTP, as a JSON payload."""
        response_url = self.fake.hooks_url(f"socket-command-{next(self._hooks)}", channel=channel, user=user)
        body = slash_command_body(
            command, text, user_id=user, user_name=self.fake.users.get(user), channel_id=channel,
            response_url=response_url, trigger_id=self.fake.issue_trigger_id(user),
        )  # fmt: skip
        return self.push("slash_commands", dict(parse_qsl(body.decode(), keep_blank_values=True)))

    def click(self, button: Button, user: str) -> str:
        """``user`` clicks ``button`` (from ``fake.find_button``)."""
        response_url = self.fake.hooks_url(
            f"socket-click-{next(self._hooks)}", channel=button.channel, user=user, message_ts=button.message_ts
        )
        body = block_action_body(
            button, user, response_url, user_name=self.fake.users.get(user),
            trigger_id=self.fake.issue_trigger_id(user),
        )  # fmt: skip
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        return self.push("interactive", payload)

    def ask_to_reconnect(self) -> None:
        """What Slack does before recycling a connection: a ``disconnect`` message on the newest one."""
        with self._cond:
            connection = self._open[-1] if self._open else None
        if connection is None:
            raise ConnectionError("no Socket Mode connection is open")
        connection.send(json.dumps({"type": "disconnect", "reason": "refresh_requested", "debug_info": {}}))

    def drop_connections(self) -> None:
        """Close every open connection from Slack's side without warning (a network blip)."""
        with self._cond:
            connections = list(self._open)
        for connection in connections:
            connection.close()

    def cut_connections(self, *, reset: bool = False) -> None:
        """End every open connection at the TCP level without a WebSocket close frame, as a proxy or load
        balancer does when it drops the tunnel: the app reads end-of-stream (a FIN), or with ``reset`` finds
        its connection reset (an RST). Nothing more is sent on them."""
        with self._cond:
            connections, self._open = self._open, []
            self._cond.notify_all()
        for connection in connections:
            if reset:  # with a zero linger time, close() sends an RST, and nothing before it: no FIN
                connection.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connection.socket.close()
                connection.close_socket()  # wakes websockets' reader, which lets the connection go
            else:  # a FIN, and only that: closing the socket now could turn it into an RST (unread data)
                connection.socket.shutdown(socket.SHUT_WR)

    # ----- what tests look at -----

    @property
    def connections(self) -> int:
        """Connections open now."""
        with self._cond:
            return len(self._open)

    @property
    def accepted(self) -> int:
        """Connections accepted so far (each needs a fresh ticket from apps.connections.open)."""
        with self._cond:
            return self._accepted

    @property
    def refused(self) -> int:
        """Connection attempts refused for a missing, unknown or reused ticket."""
        with self._cond:
            return self._refused

    def wait_connected(self, accepted: int = 1, timeout: float = 10.0) -> None:
        """Block until ``accepted`` connections were accepted in all and one is open now."""
        self._wait(lambda: self._accepted >= accepted and bool(self._open), timeout, f"{accepted} connection(s)")

    def wait_for_ack(self, envelope_id: str, timeout: float = 10.0) -> EnvelopeAck:
        self._wait(lambda: envelope_id in self._acks, timeout, f"the ack of envelope {envelope_id}")
        with self._cond:
            return self._acks[envelope_id]

    def acked(self, envelope_id: str) -> bool:
        with self._cond:
            return envelope_id in self._acks

    # ----- the server side -----

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"waited {timeout:.1f}s for {what}")
                self._cond.wait(left)

    def _connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        """Runs under FakeSlack's lock, after it checked the app-level token."""
        ticket = secrets.token_hex(16)
        with self._cond:
            self._tickets.add(ticket)
        return {"url": f"ws://{LOOPBACK}:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"}

    def _session(self, connection: ServerConnection) -> None:
        request = connection.request
        query = parse_qs(urlsplit(request.path if request is not None else "").query)
        ticket = (query.get("ticket") or [""])[0]
        with self._cond:
            valid = ticket in self._tickets
            self._tickets.discard(ticket)
            if not valid:
                self._refused += 1
        if not valid:
            connection.close(code=1008, reason="invalid ticket")
            return
        connection.send(json.dumps({
            "type": "hello", "num_connections": 1, "connection_info": {"app_id": APP_ID},
            "debug_info": {"host": "fake-socket-mode", "approximate_connection_time": 3600},
        }))  # fmt: skip
        with self._cond:
            self._open.append(connection)
            self._accepted += 1
            self._cond.notify_all()
        try:
            for raw in connection:
                self._received(raw)
        except ConnectionClosed:
            pass
        finally:
            with self._cond:
                with contextlib.suppress(ValueError):
                    self._open.remove(connection)
                self._cond.notify_all()

    def _received(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict) or "envelope_id" not in message:
            return
        envelope_id = str(message["envelope_id"])
        payload = message.get("payload")
        with self._cond:
            pushed = self._pushed.get(envelope_id, time.monotonic())
            self._acks[envelope_id] = EnvelopeAck(
                envelope_id, payload if isinstance(payload, dict) else None, time.monotonic() - pushed
            )
            self._cond.notify_all()
