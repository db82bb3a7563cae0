"""Serving the Bolt app over HTTP with a threaded production WSGI server (waitress).

Besides Slack at /slack/events: /healthz (the process is up), /readyz (it could carry out a change
now: JSON naming what is not ready, 503 if anything is not) and /metrics (Prometheus). In Socket
Mode the same server runs without /slack/events, for the probes alone.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress import wasyncore
from waitress.server import create_server

from bot.ops import Ops, in_own_context
from config.logs import bind_log_ids

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

EVENTS_PATH = "/slack/events"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")  # a proxy's X-Request-Id, if it is a sane one
log = structlog.get_logger("breakglass.http")


def delivery_id(environ: WSGIEnvironment) -> str:
    """The id logged with everything this request causes: the proxy's X-Request-Id, or a fresh one."""
    given = environ.get("HTTP_X_REQUEST_ID", "")
    return given if isinstance(given, str) and _REQUEST_ID.match(given) else uuid.uuid4().hex[:16]


def make_wsgi_app(app: App | None, ops: Ops | None = None) -> WSGIApplication:
    """Slack requests at /slack/events (unless ``app`` is None), the probes and metrics, 404 elsewhere."""
    slack = SlackRequestHandler(app, path=EVENTS_PATH) if app is not None else None
    ops = ops or Ops()

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz" and ops.readiness is not None:
            report = ops.readiness.check()
            status = "200 OK" if report.ready else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
            return [json.dumps(report.to_json(), indent=1).encode() + b"\n"]
        if path == "/metrics" and ops.metrics is not None:
            body, content_type = ops.metrics.render()
            start_response("200 OK", [("Content-Type", content_type)])
            return [body]
        if slack is not None and path == EVENTS_PATH:
            return _serve_slack(slack, ops, environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return application


def _serve_slack(
    slack: SlackRequestHandler, ops: Ops, environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    """Bolt answers once the ack listener returns (process_before_response), so this times the ack."""
    delivery = delivery_id(environ)
    seen: list[int] = []

    def recording_start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> object:
        seen.append(int(status.split(" ", 1)[0]))
        return start_response(status, [*headers, ("X-Request-Id", delivery)], exc_info)  # type: ignore[arg-type]

    def deliver() -> list[bytes]:
        bind_log_ids(delivery_id=delivery)
        started = time.perf_counter()
        body = list(slack(environ, recording_start_response))  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        status = seen[0] if seen else 500
        log.info("slack.delivery", transport="http", status=status, ack_ms=round(seconds * 1000, 2))
        if ops.metrics is not None:
            ops.metrics.observe_ack("http", status, seconds)
        return body

    return in_own_context(deliver)


class HttpServer:
    """A started waitress server; ``port`` is known even when 0 was asked for.

    ``app=None`` serves only the probes and metrics (Socket Mode needs no public endpoint).
    """

    def __init__(
        self,
        app: App | None,
        host: str = "127.0.0.1",
        port: int = 3000,
        threads: int = 8,
        *,
        ops: Ops | None = None,
    ) -> None:
        self._server = create_server(
            make_wsgi_app(app, ops), host=host, port=port, threads=threads, backlog=1024, ident="breakglass"
        )
        self.host = host
        self.port = int(self._server.effective_port)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}{EVENTS_PATH}"

    def serve_forever(self) -> None:
        self._server.run()

    def start_in_background(self) -> HttpServer:
        self._thread = threading.Thread(target=self._server.run, name="breakglass-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every socket on the server's own loop thread, so the loop ends by itself.

        Closing them from this thread instead races the loop's select() (EBADF in the server thread).
        """
        server = self._server
        if self._thread is None or not self._thread.is_alive():
            server.close()
            return
        server.task_dispatcher.shutdown()  # first: a finishing worker still pulls the trigger
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))  # an empty map ends the loop
        self._thread.join(timeout=5)
