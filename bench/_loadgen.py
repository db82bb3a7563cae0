"""A load generator in a process of its own: signed requests released at one instant, each one timed.

Why a separate process: Slack's servers are not in the bot's process. A generator in the same
process as the app under test takes the GIL from it (50 client threads signing, sending and
reading), which adds noise and cost to both apps measured. The parent builds the bodies (they hold
response_urls registered in the fake Slack); the child signs each one just before sending it.

Protocol: one JSON line per burst on stdin ``{"url", "secret", "bodies": [text]}``, one JSON line
back ``{"seconds": [...], "statuses": [...]}``. Run by ``LoadGenerator``; not a script for people.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from types import TracebackType

from sandbox.slack_signing import sign

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


class LoadGenerator:
    """``with LoadGenerator() as load: load.burst(url, secret, bodies)`` -> (seconds, statuses)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> LoadGenerator:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench._loadgen"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait(timeout=30)
            self._proc = None

    def burst(self, url: str, secret: str, bodies: list[bytes]) -> tuple[list[float], list[int]]:
        assert self._proc is not None and self._proc.stdin is not None and self._proc.stdout is not None
        request = {"url": url, "secret": secret, "bodies": [b.decode() for b in bodies]}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited with {self._proc.wait()}")
        answer = json.loads(line)
        return [float(s) for s in answer["seconds"]], [int(s) for s in answer["statuses"]]


def _post(url: str, secret: str, body: bytes) -> tuple[float, int]:
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(secret, body, int(time.time()))}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (loopback)
    started = time.perf_counter()
    try:
        with _OPENER.open(request, timeout=30) as response:
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    return time.perf_counter() - started, status


def _burst(url: str, secret: str, bodies: list[bytes]) -> tuple[list[float], list[int]]:
    barrier = threading.Barrier(len(bodies))
    seconds = [0.0] * len(bodies)
    statuses = [0] * len(bodies)

    def one(i: int) -> None:
        barrier.wait()
        seconds[i], statuses[i] = _post(url, secret, bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seconds, statuses


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        seconds, statuses = _burst(request["url"], request["secret"], [b.encode() for b in request["bodies"]])
        sys.stdout.write(json.dumps({"seconds": seconds, "statuses": statuses}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
