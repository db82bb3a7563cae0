"""slack_sdk's built-in Socket Mode client, with the two reconnect delays it has (slack_sdk 3.48) taken out.

1. Slack asks to reconnect (a ``disconnect`` message) and then sends on the new connection only. The
   client opens the new connection, then closes the old one with ``Connection.disconnect()``, which waits
   for the receive lock that the reader thread holds while it blocks in ``recv()`` on the old, now quiet
   socket: up to that socket's 3 s timeout. Until then the reader stays on the old socket and nothing
   reads the new one, so the first envelope Slack sent there was acked 3.09 s later, past Slack's 3 s
   window. ``close()`` (on SIGTERM) waited the same way. Here the old socket is shut down first, which
   ends that ``recv()`` at once.
2. When Slack closes the connection, the client's close listener asks to reconnect while the connection
   still counts as open, so nothing happens until the monitor notices, up to ``ping_interval`` later.
   Here the connection is marked closed before it asks.

Everything else (threads, pings, stale-connection checks, proxies) is the built-in client's own.
"""

from __future__ import annotations

import contextlib
import socket

from slack_sdk.errors import SlackClientError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.builtin.connection import Connection, ConnectionState


def close_now(session: Connection) -> None:
    """Close ``session`` without waiting for its reader's ``recv()`` to time out."""
    sock = session.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: nothing to wake
            # socket.socket's shutdown, not SSLSocket's: that one drops the TLS object under the reader's feet
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
    session.close()


class PromptSocketModeClient(SocketModeClient):
    """The built-in client, reading the new connection as soon as it is open (see the module docstring)."""

    def connect(self) -> None:
        """The built-in ``connect()``, except for how the old connection is closed and who hears a close."""
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
            ssl_context=self.web_client.ssl,
        )

        def closed_by_slack(code: int, reason: str | None = None) -> None:
            self._closed_by_slack(session, code, reason)

        session.on_close_listener = closed_by_slack
        session.connect()
        old_state.terminated = True  # the reader leaves the old connection when its recv() returns...
        if old_session is not None:
            close_now(old_session)  # ...which is now, not after its timeout
        self.current_session = session
        self.current_session_state = ConnectionState()  # type: ignore[no-untyped-call]
        self.auto_reconnect_enabled = self.default_auto_reconnect_enabled
        if not self.current_app_monitor_started:
            self.current_app_monitor_started = True
            self.current_app_monitor.start()
        self.logger.info(f"A new session has been established (session id: {self.session_id()})")

    def disconnect(self) -> None:
        if self.current_session is not None:
            close_now(self.current_session)

    def _closed_by_slack(self, session: Connection, code: int, reason: str | None) -> None:
        session.disconnect()  # the reader would only after this listener: the reconnect must see it closed
        try:
            self._on_close(code, reason)
        except (SlackClientError, OSError) as error:  # Slack unreachable: the monitor retries every ping_interval
            self.logger.warning(f"Could not reconnect yet, will retry ({type(error).__name__})")
