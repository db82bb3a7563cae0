"""Serving the Bolt app over Socket Mode: the bot dials out to Slack, so it needs no public endpoint.

Uses slack_sdk's built-in WebSocket client (no extra dependency), with its reconnect delays taken out
(bot/socket_client.py). Its Web API calls, including ``apps.connections.open``, go through the app's
WebClient, so ``SLACK_API_URL`` points both at a local stand-in in tests. Each envelope is timed from
arrival to its acknowledgement and logged with its envelope id, like HTTP deliveries.
"""

from __future__ import annotations

import threading
import time

import structlog
from slack_bolt import App
from slack_bolt.adapter.socket_mode.base_handler import BaseSocketModeHandler
from slack_bolt.adapter.socket_mode.internals import run_bolt_app, send_response
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest

from bot.ops import Metrics, in_own_context
from bot.socket_client import PromptSocketModeClient
from config.logs import bind_log_ids
from core.errors import BreakglassError, InvalidInput

log = structlog.get_logger("breakglass.socket_mode")
APP_TOKEN_PREFIX = "xapp-"  # noqa: S105 (the documented prefix, not a token)  # nosec B105


class SocketModeError(BreakglassError):
    """The Socket Mode connection could not be opened."""


def check_app_token(value: str | None) -> str:
    """The app-level token from SLACK_APP_TOKEN, or a message that says where to get one."""
    if not value:
        raise InvalidInput(
            "Socket Mode needs an app-level token and SLACK_APP_TOKEN is not set.",
            hint="Create one under Basic Information > App-Level Tokens with the connections:write scope.",
        )
    if not value.startswith(APP_TOKEN_PREFIX):
        raise InvalidInput(
            f"SLACK_APP_TOKEN is not an app-level token (those start with `{APP_TOKEN_PREFIX}`).",
            hint="The bot token (xoxb-) goes in SLACK_BOT_TOKEN; the app-level token in SLACK_APP_TOKEN.",
        )
    return value


class _TimedHandler(BaseSocketModeHandler):
    """Bolt's built-in SocketModeHandler, on PromptSocketModeClient, timing each acknowledgement."""

    def __init__(self, app: App, app_token: str, metrics: Metrics | None, ping_interval: float) -> None:
        self.app = app
        self.client = PromptSocketModeClient(
            app_token, logger=app.logger, web_client=app.client, proxy=app.client.proxy, ping_interval=ping_interval
        )
        self.client.socket_mode_request_listeners.append(self.handle)
        self._metrics = metrics

    def handle(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:
        in_own_context(lambda: self._deliver(client, req))

    def _deliver(self, client: BaseSocketModeClient, req: SocketModeRequest) -> None:
        bind_log_ids(delivery_id=req.envelope_id)
        started = time.perf_counter()
        response = run_bolt_app(self.app, req)
        send_response(client, req, response, time.time())
        seconds = time.perf_counter() - started
        log.info("slack.delivery", transport="socket", type=req.type, status=response.status,
                 ack_ms=round(seconds * 1000, 2))  # fmt: skip
        if self._metrics is not None:
            self._metrics.observe_ack("socket", response.status, seconds)


class SocketModeRunner:
    """``connect()`` opens the connection (and raises if Slack refuses); it reconnects by itself after."""

    def __init__(self, app: App, app_token: str, *, metrics: Metrics | None = None, ping_interval: float = 10) -> None:
        self._handler = _TimedHandler(app, check_app_token(app_token), metrics, ping_interval)
        self._stopped = threading.Event()

    @property
    def connected(self) -> bool:
        return self._handler.client.is_connected()

    def connect(self) -> SocketModeRunner:
        try:
            self._handler.client.connect()
        except SlackApiError as error:
            code = error.response.get("error") if error.response is not None else None
            raise SocketModeError(
                f"Slack refused to open a Socket Mode connection ({code or 'no reason given'}).",
                hint="Check SLACK_APP_TOKEN (an xapp- token with connections:write) and that Socket Mode is on.",
            ) from None
        except OSError as error:
            raise SocketModeError(
                f"The Socket Mode WebSocket could not be opened ({type(error).__name__}).",
                hint="Check that this host can reach Slack (wss on port 443), directly or through HTTPS_PROXY.",
            ) from None
        log.info("socket_mode.connected")
        return self

    def wait(self) -> None:
        """Block until ``stop()`` (e.g. from a SIGTERM handler), then close the connection."""
        self._stopped.wait()
        self.close()

    def serve_forever(self) -> None:
        self.connect().wait()

    def stop(self) -> None:
        self._stopped.set()

    def close(self) -> None:
        self._stopped.set()
        self._handler.client.close()
