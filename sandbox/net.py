"""Loopback helpers shared by the local stand-in servers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

LOOPBACK = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on 127.0.0.1 for both TCP and UDP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as first:
            first.bind((LOOPBACK, 0))
            port = int(first.getsockname()[1])
            other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
            with socket.socket(socket.AF_INET, other) as second:
                try:
                    second.bind((LOOPBACK, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free loopback port found")


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll ``check`` until it returns True; raise TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} did not become ready within {timeout:.1f}s")


class TcpForwarder:
    """127.0.0.1:<port> -> 127.0.0.1:<target>; ``stop()`` makes the endpoint unreachable (an API outage)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((LOOPBACK, 0))
        self._server.listen(64)
        self.port = int(self._server.getsockname()[1])
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-forwarder", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._stopped.is_set():  # accepted while stop() ran: the endpoint is down, refuse it
                client.close()
                return
            try:
                upstream = socket.create_connection((LOOPBACK, self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):  # wakes the accept() blocked in the other thread (Linux)
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
