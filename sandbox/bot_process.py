"""`breakglass serve` as a real process on 127.0.0.1: for tests with several replicas, crashes and restarts.

Why: an in-process bot shares one interpreter, one connection pool and one set of threads with the
test, so it cannot show what several replicas on one database do, or what a ``kill -9`` leaves
behind. ``BotProcess`` runs the production entry point with the Slack settings in its environment,
keeps its stderr (the JSON log lines) in a file, and kills or stops it by its own process id.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from sandbox.fake_slack import FakeSlack
from sandbox.net import LOOPBACK, wait_until
from sandbox.slack_signing import SlackClientSimulator

STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
EVENTS_PATH = "/slack/events"
_LISTENING = re.compile(r"breakglass listening on http://127\.0\.0\.1:(\d+)/")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never via a proxy


class StackLike(Protocol):
    """What a bot process needs from a local stack (``cli.localstack.LocalStack`` has it all)."""

    config_path: Path
    bot_token: str
    signing_secret: str
    fake: FakeSlack


def breakglass_command() -> list[str]:
    """The installed ``breakglass`` entry point beside this interpreter, or the same app through it."""
    script = Path(sys.executable).parent / "breakglass"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from cli.main import app; app()"]


class BotProcess:
    """One ``breakglass serve --config FILE --host 127.0.0.1 --port N`` (N=0: any free port).

    ``with BotProcess(...) as bot:`` starts it and waits until GET /healthz answers 200; to start
    several at once, call ``start()`` on each, then ``wait_ready()`` on each. ``extra_env`` adds
    variables (a failpoint, say) on top of the Slack settings.
    """

    def __init__(
        self,
        config: Path,
        *,
        bot_token: str,
        signing_secret: str,
        slack_api_url: str,
        extra_env: Mapping[str, str] | None = None,
        port: int = 0,
        log_dir: Path | None = None,
        name: str = "bot",
    ) -> None:
        self.config = config
        self.signing_secret = signing_secret
        self.name = name
        self._port = port
        self._env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "BREAKGLASS_"))}
        self._env.update(
            {"SLACK_BOT_TOKEN": bot_token, "SLACK_SIGNING_SECRET": signing_secret, "SLACK_API_URL": slack_api_url}
        )
        self._env.update(extra_env or {})
        self._own_dir = log_dir is None
        self.log_dir = log_dir if log_dir is not None else Path(tempfile.mkdtemp(prefix=f"breakglass-{name}-"))
        self.stderr_path = self.log_dir / f"{name}.stderr.log"
        self.stdout_path = self.log_dir / f"{name}.stdout.log"
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_stack(cls, stack: StackLike, **kwargs: Any) -> BotProcess:
        """A bot serving ``stack``'s config, talking to its fake Slack with its token and signing secret."""
        return cls(
            stack.config_path,
            bot_token=stack.bot_token,
            signing_secret=stack.signing_secret,
            slack_api_url=stack.fake.api_url,
            **kwargs,
        )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> BotProcess:
        """Launch the process without waiting for it (see ``wait_ready``)."""
        if self._process is not None:
            raise RuntimeError(f"{self.name} was already started")
        command = [*breakglass_command(), "serve", "--config", str(self.config), "--host", LOOPBACK]
        command += ["--port", str(self._port)]
        with self.stderr_path.open("ab") as stderr, self.stdout_path.open("ab") as stdout:
            self._process = subprocess.Popen(
                command, env=self._env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                cwd=self.log_dir, start_new_session=True,  # a signal to the test's group never reaches it
            )  # fmt: skip
        return self

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> BotProcess:
        """Block until GET /healthz answers 200; raise with the stderr tail if it exits or stays silent."""
        try:
            wait_until(self._healthy, timeout, f"{self.name} (breakglass serve)", interval=0.05)
        except (TimeoutError, RuntimeError) as problem:
            self.kill()
            raise RuntimeError(f"{problem}; its stderr ends with:\n{self.stderr_tail()}") from None
        return self

    def kill(self) -> int:
        """SIGKILL (a crash: no cleanup runs); returns the exit code (-9), or the earlier one if it had exited."""
        process = self._require_process()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        return process.wait()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; returns the exit code."""
        process = self._require_process()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                return process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return self.kill()
        return int(process.returncode)

    def close(self) -> None:
        """Stop the process if it still runs; remove the log directory if this object made it."""
        if self._process is not None:
            self.stop()
        if self._own_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> BotProcess:
        try:
            if self._process is None:
                self.start()
            self.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # --- where it listens and what it said -----------------------------------------------

    @property
    def pid(self) -> int:
        return self._require_process().pid

    @property
    def started(self) -> bool:
        return self._process is not None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def port(self) -> int:
        if self._port:
            return self._port
        found = _LISTENING.search(self.stderr())
        if found is None:
            raise RuntimeError(f"{self.name} has not said where it listens yet")
        self._port = int(found.group(1))
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def events_url(self) -> str:
        """Where Slack POSTs commands, clicks and events."""
        return self.base_url + EVENTS_PATH

    def simulator(self, fake: FakeSlack, *, timeout: float = 10.0) -> SlackClientSimulator:
        """People in Slack, sending signed deliveries to this process."""
        return SlackClientSimulator(self.events_url, self.signing_secret, fake, timeout=timeout)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, chars: int = 4000) -> str:
        return self.stderr()[-chars:]

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (other stderr output, like the banner, is skipped)."""
        lines = []
        for line in self.stderr().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(line))
        return lines

    def events_logged(self, event: str) -> list[dict[str, Any]]:
        """Log lines whose ``event`` is ``event`` (e.g. ``request.planned``)."""
        return [line for line in self.log_lines() if line.get("event") == event]

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET ``path`` (e.g. ``/readyz``) from this process: (status, body)."""
        try:
            with _OPENER.open(self.base_url + path, timeout=timeout) as response:
                return int(response.status), response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")

    # --- helpers --------------------------------------------------------------------------

    def _require_process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._process

    def _healthy(self) -> bool:
        process = self._require_process()
        if process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with code {process.returncode} before it was ready")
        if not self._port and _LISTENING.search(self.stderr()) is None:
            return False
        return self.get("/healthz", timeout=1.0)[0] == 200


def wait_all_ready(bots: list[BotProcess], timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
    """Start every bot that is not started yet, then wait for all: they boot in parallel."""
    for bot in bots:
        if not bot.started:
            bot.start()
    deadline = time.monotonic() + timeout
    for bot in bots:
        bot.wait_ready(max(1.0, deadline - time.monotonic()))
