"""slack_sdk's built-in Socket Mode client, with the reconnect delays it has (slack_sdk 3.48) taken out.

1. Slack asks to reconnect (a ``disconnect`` message) and then sends on the new connection only. The
   client opens the new connection, then closes the old one with ``Connection.disconnect()``, which waits
   for the receive lock that the reader thread holds while it blocks in ``recv()`` on the old, now quiet
   socket: up to that socket's 3 s timeout. Until then the reader stays on the old socket and nothing
   reads the new one, so the first envelope Slack sent there was acked 3.09 s later, past Slack's 3 s
   window. ``close()`` (on SIGTERM) waited the same way. Here the old socket is shut down first, which
   ends that ``recv()`` at once.
2. When the connection ends, the client only reconnects when its monitor notices, at the next ping:
   after a close frame (its close listener asks while the connection still counts as open, so nothing
   happens) and after a reset, up to ``ping_interval`` later. A connection cut without a close frame (a
   proxy or load balancer dropping the tunnel) is worse: the reader takes end-of-stream, an empty read,
   for "no data yet" and reads again at once, one core busy, until 5 pings have failed, about
   6 x ``ping_interval``. Here an empty read raises, which makes the reader close the connection and
   stop as it does on a reset, and when the reader stops because the current connection ended, the
   client reconnects there and then.

Everything else (threads, pings, stale-connection checks, proxies) is the built-in client's own.
"""

from __future__ import annotations

import contextlib
import socket

from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.builtin.connection import Connection, ConnectionState


class ConnectionCut(ConnectionError):
    """The connection ended without a WebSocket close frame."""


class CutAwareSocket:
    """A connection's socket, except that end-of-stream raises ``ConnectionCut``.

    The built-in reader loops on an empty read; an ``OSError`` is what makes it close the connection and stop.
    """

    def __init__(self, raw: socket.socket) -> None:
        self.raw = raw
        self.closing = False  # set by close_now(): the end-of-stream that follows is ours, not a cut

    def recv(self, size: int) -> bytes:
        data = self.raw.recv(size)
        if not data and not self.closing:
            raise ConnectionCut("The Socket Mode connection ended without a WebSocket close frame.")
        return data

    def send(self, data: bytes) -> int:
        return self.raw.send(data)

    def close(self) -> None:
        self.raw.close()


def close_now(session: Connection) -> None:
    """Close ``session`` without waiting for its reader's ``recv()`` to time out."""
    sock = session.sock
    if isinstance(sock, CutAwareSocket):
        sock.closing = True
        with contextlib.suppress(OSError):  # already closed: nothing to wake
            # socket.socket's shutdown, not SSLSocket's: that one drops the TLS object under the reader's feet
            socket.socket.shutdown(sock.raw, socket.SHUT_RDWR)
    session.close()


class PromptSocketModeClient(SocketModeClient):
    """The built-in client, reconnecting and reading the new connection at once (see the module docstring)."""

    def connect(self) -> None:
        """The built-in ``connect()``, except for its socket and how the old connection is closed."""
        old_session, old_state = self.current_session, self.current_session_state
        if self.wss_uri is None:
            self.wss_uri = self.issue_new_wss_url()
        session = Connection(
            url=self.wss_uri,
            logger=self.logger,
            ping_interval=self.ping_interval,
            trace_enabled=self.trace_enabled,
            all_message_trace_enabled=self.all_message_trace_enabled,
            ping_pong_trace_enabled=self.ping_pong_trace_enabled,
            receive_buffer_size=self.receive_buffer_size,
            proxy=self.proxy,
            proxy_headers=self.proxy_headers,
            on_message_listener=self._on_message,
            on_error_listener=self._on_error,
            on_close_listener=self._on_close,
            ssl_context=self.web_client.ssl,
        )
        session.connect()
        if session.sock is not None:  # None when it could not connect: the monitor retries
            session.sock = CutAwareSocket(session.sock)  # type: ignore[assignment]  # it reads, sends, closes
        old_state.terminated = True  # the reader leaves the old connection when its recv() returns...
        self.current_session = session
        self.current_session_state = ConnectionState()  # type: ignore[no-untyped-call]
        if old_session is not None:
            close_now(old_session)  # ...which is now, not after its timeout
        self.auto_reconnect_enabled = self.default_auto_reconnect_enabled
        if not self.current_app_monitor_started:
            self.current_app_monitor_started = True
            self.current_app_monitor.start()
        self.logger.info(f"A new session has been established (session id: {self.session_id()})")

    def disconnect(self) -> None:
        if self.current_session is not None:
            close_now(self.current_session)

    def close(self) -> None:
        super().close()
        if self.is_connected():  # a reconnect was under way when close() began; its thread is joined now
            self.disconnect()

    def _run_current_session(self) -> None:
        """The built-in reader; if it stopped because the current connection ended, reconnect now."""
        session = self.current_session
        was_open = session is not None and session.is_active()
        super()._run_current_session()  # type: ignore[no-untyped-call]
        ended = was_open and session is self.current_session and not self.is_connected()
        if ended and self.auto_reconnect_enabled:
            try:
                self.connect_to_new_endpoint()  # under its lock, and only if nothing reconnected meanwhile
            except Exception as error:  # this is the reader's thread: anything escaping would end it for good
                self.logger.warning(f"Could not reconnect yet, will retry every ping_interval ({type(error).__name__})")
