"""Vault/OpenBao: one reusable AppRole login, and a KV v2 source for a TSIG key or an API key.

The Vault token *is* the lease: it is short-lived (the role's token_ttl), it is the only thing
allowed to read the secret, and revoking it ends the lease. Only its accessor is ever shown.
No message raised from here carries hvac or requests text: errors are built outside the
``except`` blocks, so not even the exception chain can hold a token, secret_id or key.

``AppRoleLogin.login()`` -> ``VaultSession`` is shared by every Vault-backed source (KV here,
identity tokens in ``aws_sts``, the AWS secrets engine in ``vault_aws``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests
import urllib3.exceptions
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from core.credentials import ApiKey, Credentials, LeaseInfo, TsigAlgorithm, TsigKey
from core.errors import CredentialError
from core.secrets import Secret

T = TypeVar("T")
# Maps an hvac error to a specific CredentialError, or None to fall back to the generic message.
Refusal = Callable[[hvac.exceptions.VaultError], CredentialError | None]

RETRY_PAUSE_SECONDS = 0.2
OTHER_CHANGE_PATH = "Check that Vault is up, or use another change path."
# TSIG algorithms we may name in an error message; anything else is not echoed back.
_KNOWN_TSIG_ALGORITHMS = frozenset(
    {"hmac-md5", "hmac-md5.sig-alg.reg.int", "hmac-sha1", "hmac-sha224", "gss-tsig"} | {a.value for a in TsigAlgorithm}
)
_TSIG_FIELDS = ("key_name", "algorithm", "secret")


def _never_sent(exc: BaseException) -> bool:
    """True when the request cannot have reached Vault, so retrying cannot spend a single-use secret_id."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(exc, requests.exceptions.SSLError):
        reason = exc.args[0] if exc.args else None
        return isinstance(reason, urllib3.exceptions.MaxRetryError) and isinstance(
            reason.reason, urllib3.exceptions.NewConnectionError
        )
    return False


def vault_status(exc: hvac.exceptions.VaultError) -> str:
    """The HTTP status behind an hvac error, from its class (its text is never shown)."""
    codes = {
        hvac.exceptions.InvalidRequest: "400",
        hvac.exceptions.Unauthorized: "401",
        hvac.exceptions.Forbidden: "403",
        hvac.exceptions.InvalidPath: "404",
        hvac.exceptions.RateLimitExceeded: "429",
        hvac.exceptions.InternalServerError: "500",
        hvac.exceptions.VaultNotInitialized: "501",
        hvac.exceptions.BadGateway: "502",
        hvac.exceptions.VaultDown: "503",
    }
    return next((code for cls, code in codes.items() if isinstance(exc, cls)), "error")


def vault_failed(address: str, exc: hvac.exceptions.VaultError, doing: str) -> CredentialError:
    """The generic message for a Vault answer no caller had a better word for."""
    if isinstance(exc, hvac.exceptions.VaultDown):
        return CredentialError(
            f"Vault at {address} is sealed or unavailable (HTTP 503) while trying to {doing}.", hint=OTHER_CHANGE_PATH
        )
    return CredentialError(
        f"Vault at {address} failed to {doing} (HTTP {vault_status(exc)}).", hint="Check the Vault server logs."
    )


class _Caller:
    """Runs one hvac call with bounded time and turns every failure into a safe CredentialError."""

    def __init__(self, address: str, timeout_seconds: float) -> None:
        self.address = address
        self.timeout_seconds = timeout_seconds
        self._retrying = Retrying(
            stop=stop_after_attempt(2),
            wait=wait_fixed(RETRY_PAUSE_SECONDS),
            retry=retry_if_exception(_never_sent),
            reraise=True,
        )

    def call(self, step: Callable[[], T], *, doing: str, refused: Refusal | None, hint: str) -> T:
        failure: CredentialError
        try:
            return self._retrying(step)
        except requests.exceptions.RequestException as exc:
            failure = self._transport_failure(exc, doing, hint)
        except hvac.exceptions.VaultError as exc:
            failure = (refused(exc) if refused else None) or vault_failed(self.address, exc, doing)
        raise failure  # outside the handler: no __context__ pointing at hvac/requests text

    def _transport_failure(self, exc: requests.exceptions.RequestException, doing: str, hint: str) -> CredentialError:
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            why = f"no connection within {self.timeout_seconds:g}s"
        elif isinstance(exc, requests.exceptions.SSLError):
            why = "the TLS handshake failed (check its certificate and the CA bundle)"
        elif isinstance(exc, requests.exceptions.ConnectionError):
            why = "connection refused or dropped"
        elif isinstance(exc, requests.exceptions.Timeout):
            why = f"no answer within {self.timeout_seconds:g}s"
        elif isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
            return CredentialError(
                f"The Vault address {self.address!r} is not a valid URL.", hint="Fix the configuration."
            )
        else:
            why = f"the request failed ({type(exc).__name__})"
        return CredentialError(f"Vault at {self.address} is unreachable while trying to {doing}: {why}.", hint=hint)


class VaultSession:
    """One Vault token from an AppRole login. Calls through it are bounded and fail as safe CredentialErrors.

    ``revoke`` ends the token, and with it (in Vault) every lease the token created. Only the accessor is shown.
    """

    def __init__(self, client: hvac.Client, caller: _Caller, accessor: str, ttl_seconds: int) -> None:
        self._client = client  # holds the token; never printed
        self._caller = caller
        self.accessor = accessor
        self.ttl_seconds = ttl_seconds
        self._revoked = False

    @property
    def address(self) -> str:
        return self._caller.address

    @property
    def client(self) -> hvac.Client:
        """The logged-in hvac client. It holds the token: never print or log it."""
        return self._client

    @property
    def revoked(self) -> bool:
        return self._revoked

    def call(
        self,
        step: Callable[[hvac.Client], T],
        *,
        doing: str,
        refused: Refusal | None = None,
        hint: str = OTHER_CHANGE_PATH,
    ) -> T:
        """Run ``step(client)``; ``refused`` may give a specific message for a Vault error answer."""
        return self._caller.call(lambda: step(self._client), doing=doing, refused=refused, hint=hint)

    def revoke(self) -> None:
        """Revoke the token (revoke-self). Idempotent; raises CredentialError if Vault refuses or is down."""
        if self._revoked:
            return
        self.call(
            lambda client: client.auth.token.revoke_self(),
            doing=f"revoke token {self.accessor}",
            refused=lambda exc: CredentialError(
                f"Vault at {self.address} refused to revoke token {self.accessor} "
                f"(HTTP {vault_status(exc)}); it may have expired already.",
                hint=f"It expires by itself within {self.ttl_seconds}s.",
            ),
            hint=f"The token expires by itself within {self.ttl_seconds}s.",
        )
        self._revoked = True

    def revoke_quietly(self) -> None:
        """Best effort, after a failed lease: if this fails too the token still expires by its TTL,
        and the first failure is what the user needs to see."""
        with contextlib.suppress(CredentialError):
            self.revoke()

    @contextlib.contextmanager
    def revoked_on_failure(self) -> Iterator[None]:
        """Revoke the token (quietly) if the block fails: a half-made lease must not leave a live token behind."""
        try:
            yield
        except BaseException:
            self.revoke_quietly()
            raise

    def __repr__(self) -> str:
        return f"VaultSession(address={self.address!r}, accessor={self.accessor!r}, revoked={self._revoked})"


@dataclass(frozen=True)
class AppRoleLogin:
    """Where and how a source logs in to Vault with AppRole. The secrets are ``Secret``s, so repr is safe."""

    address: str
    role_id: Secret
    secret_id: Secret
    mount: str = "approle"
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", self.address.rstrip("/"))
        object.__setattr__(self, "mount", self.mount.strip("/"))

    def login(self) -> VaultSession:
        """Log in once; raises CredentialError (never echoing role_id/secret_id) if Vault refuses or is down."""
        caller = _Caller(self.address, self.timeout_seconds)
        # token="": otherwise hvac would pick up an ambient VAULT_TOKEN or ~/.vault-token.
        client = hvac.Client(url=self.address, token="", timeout=self.timeout_seconds)  # no token yet  # nosec B106
        accessor, ttl = caller.call(
            lambda: self._login(client), doing="log in with AppRole", refused=self._refused, hint=OTHER_CHANGE_PATH
        )
        return VaultSession(client, caller, accessor, ttl)

    def _login(self, client: hvac.Client) -> tuple[str, int]:
        response: Any = client.auth.approle.login(
            role_id=self.role_id.reveal(),
            secret_id=self.secret_id.reveal(),
            mount_point=self.mount,
            use_token=True,
        )
        auth = response.get("auth") if isinstance(response, dict) else None
        if not isinstance(auth, dict) or not auth.get("accessor") or not auth.get("client_token"):
            raise hvac.exceptions.UnexpectedError("login answer without a token")
        return str(auth["accessor"]), int(auth.get("lease_duration") or 0)

    def _refused(self, exc: hvac.exceptions.VaultError) -> CredentialError | None:
        where = f"Vault at {self.address}"
        if isinstance(exc, hvac.exceptions.InvalidRequest):
            return CredentialError(
                f"{where} refused the AppRole login: invalid role_id or secret_id.",
                hint="Check the configured role_id and secret_id; a single-use or expired secret_id "
                "needs a new one from the Vault admins.",
            )
        if isinstance(exc, hvac.exceptions.Forbidden | hvac.exceptions.InvalidPath):
            return CredentialError(
                f"{where} refused the AppRole login at auth/{self.mount} (HTTP {vault_status(exc)}).",
                hint="Check the AppRole mount path, and any CIDR binding on the role.",
            )
        return None


class VaultLease:
    """Credentials read with a Vault token; ``revoke`` ends the token, which ends the lease."""

    def __init__(self, info: LeaseInfo, credentials: Credentials, session: VaultSession) -> None:
        self._info = info
        self._credentials = credentials
        self._session = session

    @property
    def info(self) -> LeaseInfo:
        return self._info

    @property
    def credentials(self) -> Credentials:
        return self._credentials

    def revoke(self) -> None:
        """Revoke the token. Idempotent; raises CredentialError if Vault refuses or is down."""
        self._session.revoke()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._info!r}, revoked={self._session.revoked})"


class KvSecretKind(StrEnum):
    """What a KV v2 secret holds, and so which fields it must have."""

    TSIG = "tsig"  # key_name, algorithm, secret (base64, as in a BIND key file)
    API_KEY = "api_key"  # api_key


_KIND_LABEL = {KvSecretKind.TSIG: "TSIG key", KvSecretKind.API_KEY: "API key"}
_KIND_FIELDS = {
    KvSecretKind.TSIG: "KV v2: key_name, algorithm, secret",
    KvSecretKind.API_KEY: "KV v2: field api_key",
}


class VaultKvSource:
    """``CredentialSource`` for a TSIG key or an API key stored in Vault/OpenBao KV v2.

    Each ``lease()`` logs in with AppRole and reads the secret once; the lease is the login's token.
    """

    def __init__(
        self,
        name: str,
        *,
        address: str,
        role_id: Secret,
        secret_id: Secret,
        kv_path: str,
        kind: KvSecretKind | str = KvSecretKind.TSIG,
        kv_mount: str = "secret",
        approle_mount: str = "approle",
        timeout_seconds: float = 5.0,
    ) -> None:
        self.name = name
        self.kind = KvSecretKind(kind)
        self.kv_mount = kv_mount.strip("/")
        self.kv_path = kv_path.strip("/")
        self._login = AppRoleLogin(address, role_id, secret_id, approle_mount, timeout_seconds)
        self.address = self._login.address

    @property
    def _where(self) -> str:
        return f"{self.kv_mount}/{self.kv_path}"

    def __repr__(self) -> str:
        return (
            f"VaultKvSource(name={self.name!r}, kind={self.kind.value!r}, address={self.address!r}, kv={self._where!r})"
        )

    def lease(self) -> VaultLease:
        """Log in, read and validate the secret; the token is revoked again if anything after login fails."""
        session = self._login.login()
        with session.revoked_on_failure():
            data = session.call(self._read, doing=f"read {self._where}", refused=self._read_refused)
            credentials = self._parse(data)
        return VaultLease(LeaseInfo(self.name, session.accessor, session.ttl_seconds), credentials, session)

    def _read(self, client: hvac.Client) -> object:
        response: Any = client.secrets.kv.v2.read_secret_version(
            path=self.kv_path, mount_point=self.kv_mount, raise_on_deleted_version=True
        )
        data = response.get("data") if isinstance(response, dict) else None
        return data.get("data") if isinstance(data, dict) else None

    def _read_refused(self, exc: hvac.exceptions.VaultError) -> CredentialError | None:
        if isinstance(exc, hvac.exceptions.Forbidden):
            return CredentialError(
                f"Vault at {self.address} denied the break-glass role reading {self._where} (permission denied).",
                hint=f"Ask the Vault admins to grant `read` on {self.kv_mount}/data/{self.kv_path} to the role.",
            )
        if isinstance(exc, hvac.exceptions.InvalidPath):
            return CredentialError(
                f"There is no {_KIND_LABEL[self.kind]} at {self._where} in Vault at {self.address} "
                "(missing or deleted).",
                hint=f"Check the configured kv_path, or store the key there ({_KIND_FIELDS[self.kind]}).",
            )
        return None

    def _parse(self, data: object) -> Credentials:
        bad = f"The secret at {self._where} in Vault at {self.address} is not a usable {_KIND_LABEL[self.kind]}"
        if not isinstance(data, dict):
            raise CredentialError(f"{bad}: it holds no data.", hint=f"Store {_KIND_FIELDS[self.kind]}.")
        if self.kind is KvSecretKind.API_KEY:
            return api_key_from_fields(data, bad)
        return tsig_key_from_fields(data, bad)


# The KV source was TSIG-only first; the old name still constructs it (kind defaults to TSIG).
VaultTsigSource = VaultKvSource


def tsig_key_from_fields(data: dict[Any, Any], bad: str) -> TsigKey:
    """Validate TSIG fields; no message here ever repeats a field's value except a known algorithm name."""
    missing = [f for f in _TSIG_FIELDS if not isinstance(data.get(f), str) or not data[f].strip()]
    if missing:
        raise CredentialError(
            f"{bad}: missing or empty field(s) {', '.join(missing)}.",
            hint="Store fields key_name, algorithm and secret (all strings).",
        )
    algorithm = data["algorithm"].strip().lower().rstrip(".")
    if algorithm not in {a.value for a in TsigAlgorithm}:
        shown = f"`{algorithm}`" if algorithm in _KNOWN_TSIG_ALGORITHMS else "an unknown algorithm"
        raise CredentialError(
            f"{bad}: it uses {shown}, which breakglass refuses.",
            hint="Re-key with hmac-sha256 (`tsig-keygen -a hmac-sha256 NAME`), hmac-sha384 or hmac-sha512.",
        )
    secret = data["secret"].strip()
    try:
        decoded = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        raise CredentialError(f"{bad}: its secret is not valid base64.", hint="Store it as in a BIND key file.")
    key_name = data["key_name"].strip()
    if any(c.isspace() for c in key_name):
        raise CredentialError(f"{bad}: its key_name contains whitespace.", hint="Use the key's DNS name.")
    return TsigKey(name=key_name, algorithm=TsigAlgorithm(algorithm), secret=Secret(secret))


def api_key_from_fields(data: dict[Any, Any], bad: str) -> ApiKey:
    """Validate the ``api_key`` field without ever repeating it."""
    value = data.get("api_key")
    if not isinstance(value, str) or not value.strip():
        raise CredentialError(f"{bad}: missing or empty field api_key.", hint="Store the key as field api_key.")
    if any(c.isspace() for c in value.strip()):
        raise CredentialError(f"{bad}: its api_key contains whitespace.", hint="Store the key alone, on one line.")
    return ApiKey(Secret(value.strip()))
