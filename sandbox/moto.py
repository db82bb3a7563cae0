"""A local AWS emulator (moto_server) for Route53 and STS, on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType

from sandbox.net import LOOPBACK, free_port, wait_until

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def find_moto_server() -> str:
    beside = Path(sys.executable).parent / "moto_server"
    if beside.exists():
        return str(beside)
    found = shutil.which("moto_server")
    if found is None:
        raise RuntimeError("moto_server not found: install it with `pip install 'moto[server]'`")
    return found


class MotoServer:
    """``moto_server -H 127.0.0.1 -p PORT``; ``endpoint_url`` goes to boto3."""

    def __init__(self) -> None:
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> MotoServer:
        self.port = free_port()
        self._log = Path(tempfile.mkstemp(prefix="breakglass-moto-", suffix=".log")[1])
        with self._log.open("wb") as log:
            self._proc = subprocess.Popen(
                [find_moto_server(), "-H", LOOPBACK, "-p", str(self.port)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_until(self._ready, timeout=30, what=f"moto_server on port {self.port}")
        except TimeoutError:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {self._proc.returncode}; see {self._log}")
        with _OPENER.open(f"{self.endpoint_url}/moto-api/", timeout=1) as response:
            return int(response.status) == 200

    def reset(self) -> None:
        """Forget every zone, role and credential (moto's own reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310 (loopback http)
        with _OPENER.open(request, timeout=5):
            pass

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
