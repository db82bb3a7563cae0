"""Serving the Bolt app over HTTP with a threaded production WSGI server (waitress)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress.server import create_server

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

EVENTS_PATH = "/slack/events"


def make_wsgi_app(app: App) -> WSGIApplication:
    """Slack requests at /slack/events, a liveness probe at /healthz, 404 elsewhere."""
    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        return slack(environ, start_response)

    return application


class HttpServer:
    """A started waitress server; ``port`` is known even when 0 was asked for."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 3000, threads: int = 8) -> None:
        self._server = create_server(
            make_wsgi_app(app), host=host, port=port, threads=threads, backlog=1024, ident="breakglass"
        )
        self.host = host
        self.port = int(self._server.effective_port)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{EVENTS_PATH}"

    def serve_forever(self) -> None:
        self._server.run()

    def start_in_background(self) -> HttpServer:
        self._thread = threading.Thread(target=self._server.run, name="breakglass-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
