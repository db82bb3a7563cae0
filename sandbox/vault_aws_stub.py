"""A stand-in for HashiCorp Vault's AWS secrets engine, which OpenBao does not have.

It answers only what ``credentials.vault_aws`` calls, with the response shapes Vault documents:

- AppRole login, ``POST /v1/auth/<mount>/login`` -> ``auth.client_token/accessor/lease_duration``:
  https://developer.hashicorp.com/vault/api-docs/auth/approle#login-with-approle
- ``GET /v1/aws/creds/<role>`` (iam_user) and ``PUT|POST|GET /v1/aws/sts/<role>`` (assumed_role,
  federation_token) -> ``data.access_key/secret_key/security_token`` (+ ``arn`` for assumed_role):
  https://developer.hashicorp.com/vault/api-docs/secret/aws#generate-credentials
- ``lease_id`` ``aws/creds/<role>/<uuid>`` renewable, ``aws/sts/<role>/<uuid>`` not renewable, with
  ``lease_duration``: https://developer.hashicorp.com/vault/docs/secrets/aws (Usage, STS credentials)
- ``PUT /v1/sys/leases/revoke`` ``{"lease_id": ...}`` -> 204:
  https://developer.hashicorp.com/vault/api-docs/system/leases#revoke-lease
- ``POST /v1/auth/token/revoke-self`` -> 204:
  https://developer.hashicorp.com/vault/api-docs/auth/token#revoke-a-token-self
- errors: ``{"errors": [...]}`` with the HTTP status: https://developer.hashicorp.com/vault/api-docs#http-status-codes

It is NOT Vault: no policies beyond "the token must be live", no cascading lease revocation when a
token is revoked, and no AWS behind it. It records what was asked so tests can check the calls, and
can play a failing Vault: an HTTP error on chosen paths (``fail``) or fields left out (``omit``).
"""

from __future__ import annotations

import json
import secrets
import string
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl

from sandbox.net import LOOPBACK, free_port

CredentialType = Literal["iam_user", "assumed_role", "federation_token"]
ACCOUNT_ID = "123456789012"
_ERROR_TEXT = {400: "invalid request", 403: "permission denied", 500: "internal error", 503: "Vault is sealed"}


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class IssuedCredentials:
    """One answer from aws/creds or aws/sts, as the stub handed it out."""

    lease_id: str
    lease_duration: int
    access_key: str
    secret_key: str = field(repr=False)
    security_token: str | None = field(repr=False)
    token_accessor: str


@dataclass
class _State:
    role_id: str
    secret_id: str
    roles: dict[str, CredentialType] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # live client_token -> accessor
    failures: dict[str, int] = field(default_factory=dict)  # path prefix -> HTTP status
    omitted: set[str] = field(default_factory=set)  # response fields left out (to play a broken engine)
    issued: list[IssuedCredentials] = field(default_factory=list)
    revoked_leases: list[str] = field(default_factory=list)
    revoked_tokens: list[str] = field(default_factory=list)  # accessors
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, path), in order


class VaultAwsStub:
    """The stub server on a free 127.0.0.1 port, run in a thread; ``stop()`` shuts it down."""

    def __init__(self, *, mount: str = "aws", approle_mount: str = "approle", token_ttl_seconds: int = 300) -> None:
        self.mount = mount
        self.approle_mount = approle_mount
        self.token_ttl_seconds = token_ttl_seconds
        self._state = _State(role_id=str(uuid.uuid4()), secret_id=str(uuid.uuid4()))
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- set-up and observation (thread-safe) ---------------------------------------------

    @property
    def address(self) -> str:
        if self._server is None:
            raise RuntimeError("the Vault AWS stub is not started")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    @property
    def role_id(self) -> str:
        return self._state.role_id

    @property
    def secret_id(self) -> str:
        return self._state.secret_id

    def add_role(self, name: str, credential_type: CredentialType) -> None:
        with self._lock:
            self._state.roles[name] = credential_type

    def fail(self, path_prefix: str, status: int) -> None:
        """Answer ``status`` to every request whose path (after /v1/) starts with ``path_prefix``."""
        with self._lock:
            self._state.failures[path_prefix.strip("/")] = status

    def omit(self, *fields: str) -> None:
        """Leave ``fields`` (``data`` keys, or ``lease_id``) out of credential answers from now on."""
        with self._lock:
            self._state.omitted.update(fields)

    def heal(self) -> None:
        with self._lock:
            self._state.failures.clear()
            self._state.omitted.clear()

    @property
    def issued(self) -> list[IssuedCredentials]:
        with self._lock:
            return list(self._state.issued)

    @property
    def revoked_leases(self) -> list[str]:
        with self._lock:
            return list(self._state.revoked_leases)

    @property
    def revoked_tokens(self) -> list[str]:
        with self._lock:
            return list(self._state.revoked_tokens)

    @property
    def live_accessors(self) -> list[str]:
        with self._lock:
            return list(self._state.tokens.values())

    @property
    def calls(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._state.calls)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> VaultAwsStub:
        if self._server is not None:
            raise RuntimeError("the Vault AWS stub is already started")
        stub = self

        class Handler(_Handler):
            owner = stub

        self._server = ThreadingHTTPServer((LOOPBACK, free_port()), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="vault-aws-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> VaultAwsStub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- request handling (called from the server threads) -----------------------------------

    def handle(self, method: str, path: str, token: str | None, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        route = path.split("?", 1)[0].removeprefix("/v1/").strip("/")
        with self._lock:
            self._state.calls.append((method, route))
            failed = next((s for p, s in self._state.failures.items() if route.startswith(p)), None)
            if failed is not None:
                return failed, {"errors": [_ERROR_TEXT.get(failed, "error")]}
            if method in ("POST", "PUT") and route == f"auth/{self.approle_mount}/login":
                return self._login(body)
            accessor = self._state.tokens.get(token or "")
            if accessor is None:
                return 403, {"errors": ["permission denied"]}
            if method == "POST" and route == "auth/token/revoke-self":
                del self._state.tokens[token or ""]
                self._state.revoked_tokens.append(accessor)
                return 204, {}
            if method == "PUT" and route == "sys/leases/revoke":
                self._state.revoked_leases.append(str(body.get("lease_id", "")))
                return 204, {}  # Vault answers 204 for a lease it does not know, too
            endpoint, _, role = route.removeprefix(f"{self.mount}/").partition("/")
            if route.startswith(f"{self.mount}/") and role and "/" not in role:
                if endpoint == "creds" and method == "GET":
                    return self._issue(role, "creds", accessor, body)
                if endpoint == "sts" and method in ("GET", "POST", "PUT"):
                    return self._issue(role, "sts", accessor, body)
            return 404, {"errors": [f"no handler for route {route!r}"]}

    def _login(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("role_id") != self._state.role_id or body.get("secret_id") != self._state.secret_id:
            return 400, {"errors": ["invalid role or secret ID"]}
        token, accessor = f"hvs.{_random(string.ascii_letters + string.digits, 24)}", _random(string.ascii_letters, 24)
        self._state.tokens[token] = accessor
        auth = {
            "client_token": token,
            "accessor": accessor,
            "policies": ["default", "breakglass-aws"],
            "token_policies": ["default", "breakglass-aws"],
            "metadata": {"role_name": "breakglass-aws"},
            "lease_duration": self.token_ttl_seconds,
            "renewable": True,
            "entity_id": str(uuid.uuid4()),
            "token_type": "service",  # a token type, not a token  # nosec B105
            "orphan": True,
        }
        return 200, _envelope(auth=auth)

    def _issue(self, role: str, endpoint: str, accessor: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        credential_type = self._state.roles.get(role)
        if credential_type is None:
            return 400, {"errors": [f"Role {role!r} not found"]}
        if (endpoint == "creds") != (credential_type == "iam_user"):
            return 400, {"errors": [f"role {role!r} has credential_type {credential_type}; use the other endpoint"]}
        is_sts = credential_type != "iam_user"
        duration = _seconds(body.get("ttl"), default=3600) if is_sts else 768 * 3600  # Vault's default lease TTL
        data: dict[str, Any] = {
            "access_key": ("ASIA" if is_sts else "AKIA") + _random(string.ascii_uppercase + string.digits, 16),
            "secret_key": _random(string.ascii_letters + string.digits + "/+", 40),
            "security_token": _random(string.ascii_letters + string.digits + "/+", 120) if is_sts else None,
        }
        if credential_type == "assumed_role":
            session = str(body.get("role_session_name") or f"vault-breakglass-{secrets.token_hex(4)}")
            data["arn"] = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/{session}"
        lease_id = f"{self.mount}/{endpoint}/{role}/{uuid.uuid4()}"
        self._state.issued.append(
            IssuedCredentials(
                lease_id, duration, data["access_key"], data["secret_key"], data["security_token"], accessor
            )
        )
        omitted = self._state.omitted
        answer = _envelope(
            lease_id="" if "lease_id" in omitted else lease_id,
            renewable=not is_sts,
            lease_duration=duration,
            data={k: v for k, v in data.items() if k not in omitted},
        )
        return 200, answer


def _envelope(
    *,
    lease_id: str = "",
    renewable: bool = False,
    lease_duration: int = 0,
    data: dict[str, Any] | None = None,
    auth: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Vault's common response body."""
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": lease_id,
        "renewable": renewable,
        "lease_duration": lease_duration,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": auth,
    }


def _seconds(value: object, default: int) -> int:
    """A Vault duration as sent by clients: ``900``, ``"900"`` or ``"900s"`` (minutes/hours too)."""
    if value is None or value == "":
        return default
    text = str(value).strip()
    units = {"s": 1, "m": 60, "h": 3600}
    if text[-1:] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


class _Handler(BaseHTTPRequestHandler):
    owner: VaultAwsStub

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if self.command == "GET" and "?" in self.path:  # hvac sends GET parameters as a query string
            body = {**dict(parse_qsl(self.path.split("?", 1)[1])), **body}
        status, payload = self.owner.handle(self.command, self.path, self.headers.get("X-Vault-Token"), body)
        encoded = json.dumps(payload).encode() if status != 204 else b""
        self.send_response(status)
        if encoded:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(encoded)))
        self.end_headers()
        self.wfile.write(encoded)

    do_GET = do_POST = do_PUT = _answer  # noqa: N815 - http.server's naming

    def log_message(self, format: str, *args: object) -> None:
        pass
