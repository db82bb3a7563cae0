"""A TSIG key leased from Vault/OpenBao: AppRole login, one KV v2 read, token revoked after use.

The Vault token *is* the lease: it is short-lived (the role's token_ttl), it is the only thing
allowed to read the key, and revoking it ends the lease. Only its accessor is ever shown.
No message raised from here carries hvac or requests text: errors are built outside the
``except`` blocks, so not even the exception chain can hold a token, secret_id or key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests
import urllib3.exceptions
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from core.credentials import LeaseInfo, TsigAlgorithm, TsigKey
from core.errors import CredentialError
from core.secrets import Secret

T = TypeVar("T")

RETRY_PAUSE_SECONDS = 0.2
OTHER_CHANGE_PATH = "Check that Vault is up, or use another change path."
# TSIG algorithms we may name in an error message; anything else is not echoed back.
_KNOWN_TSIG_ALGORITHMS = frozenset(
    {"hmac-md5", "hmac-md5.sig-alg.reg.int", "hmac-sha1", "hmac-sha224", "gss-tsig"} | {a.value for a in TsigAlgorithm}
)
_KEY_FIELDS = ("key_name", "algorithm", "secret")


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


class VaultLease:
    """A leased TSIG key and the Vault token that read it; ``revoke`` ends the token."""

    def __init__(self, info: LeaseInfo, credentials: TsigKey, client: hvac.Client, vault: _Vault) -> None:
        self.info = info
        self.credentials = credentials
        self._client = client  # holds the token; never printed
        self._vault = vault
        self._revoked = False

    def revoke(self) -> None:
        """Revoke the token (revoke-self). Idempotent; raises CredentialError if Vault refuses or is down."""
        if self._revoked:
            return
        self._vault.call(
            self._client.auth.token.revoke_self,
            lambda exc: CredentialError(
                f"Vault at {self._vault.address} refused to revoke token {self.info.lease_id} "
                f"(HTTP {_status(exc)}); it may have expired already.",
                hint=f"It expires by itself within {self.info.ttl_seconds}s.",
            ),
            doing=f"revoke token {self.info.lease_id}",
            hint=f"The token expires by itself within {self.info.ttl_seconds}s.",
        )
        self._revoked = True

    def __repr__(self) -> str:
        return f"VaultLease({self.info!r}, revoked={self._revoked})"


class _Vault:
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

    def call(
        self,
        step: Callable[[], T],
        on_vault_error: Callable[[hvac.exceptions.VaultError], CredentialError],
        *,
        doing: str,
        hint: str = OTHER_CHANGE_PATH,
    ) -> T:
        failure: CredentialError
        try:
            return self._retrying(step)
        except requests.exceptions.RequestException as exc:
            failure = self._transport_failure(exc, doing, hint)
        except hvac.exceptions.VaultError as exc:
            failure = on_vault_error(exc)
        raise failure  # outside the handler: no __context__ pointing at hvac/requests text

    def _transport_failure(self, exc: requests.exceptions.RequestException, doing: str, hint: str) -> CredentialError:
        where = f"Vault at {self.address}"
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
        return CredentialError(f"{where} is unreachable while trying to {doing}: {why}.", hint=hint)


def _status(exc: hvac.exceptions.VaultError) -> str:
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


class VaultTsigSource:
    """``CredentialSource`` for a TSIG key stored in Vault/OpenBao KV v2 as fields key_name, algorithm, secret."""

    def __init__(
        self,
        name: str,
        *,
        address: str,
        role_id: Secret,
        secret_id: Secret,
        kv_path: str,
        kv_mount: str = "secret",
        approle_mount: str = "approle",
        timeout_seconds: float = 5.0,
    ) -> None:
        self.name = name
        self.address = address.rstrip("/")
        self.kv_mount = kv_mount.strip("/")
        self.kv_path = kv_path.strip("/")
        self.approle_mount = approle_mount.strip("/")
        self.timeout_seconds = timeout_seconds
        self._role_id = role_id
        self._secret_id = secret_id

    @property
    def _where(self) -> str:
        return f"{self.kv_mount}/{self.kv_path}"

    def __repr__(self) -> str:
        return f"VaultTsigSource(name={self.name!r}, address={self.address!r}, kv={self._where!r})"

    def lease(self) -> VaultLease:
        """Log in, read and validate the key; the token is revoked again if anything after login fails."""
        vault = _Vault(self.address, self.timeout_seconds)
        # token="": otherwise hvac would pick up an ambient VAULT_TOKEN or ~/.vault-token.
        client = hvac.Client(url=self.address, token="", timeout=self.timeout_seconds)
        auth = vault.call(self._login(client), self._login_refused, doing="log in with AppRole")
        info = LeaseInfo(source=self.name, lease_id=auth[0], ttl_seconds=auth[1])
        try:
            data = vault.call(self._read(client), self._read_refused, doing=f"read {self._where}")
            key = self._tsig_key(data)
        except CredentialError:
            self._revoke_quietly(client)
            raise
        return VaultLease(info, key, client, vault)

    def _login(self, client: hvac.Client) -> Callable[[], tuple[str, int]]:
        def login() -> tuple[str, int]:
            response: Any = client.auth.approle.login(
                role_id=self._role_id.reveal(),
                secret_id=self._secret_id.reveal(),
                mount_point=self.approle_mount,
                use_token=True,
            )
            auth = response.get("auth") if isinstance(response, dict) else None
            if not isinstance(auth, dict) or not auth.get("accessor") or not auth.get("client_token"):
                raise hvac.exceptions.UnexpectedError("login answer without a token")
            return str(auth["accessor"]), int(auth.get("lease_duration") or 0)

        return login

    def _read(self, client: hvac.Client) -> Callable[[], object]:
        def read() -> object:
            response: Any = client.secrets.kv.v2.read_secret_version(
                path=self.kv_path, mount_point=self.kv_mount, raise_on_deleted_version=True
            )
            data = response.get("data") if isinstance(response, dict) else None
            return data.get("data") if isinstance(data, dict) else None

        return read

    def _login_refused(self, exc: hvac.exceptions.VaultError) -> CredentialError:
        where = f"Vault at {self.address}"
        if isinstance(exc, hvac.exceptions.InvalidRequest):
            return CredentialError(
                f"{where} refused the AppRole login: invalid role_id or secret_id.",
                hint="Check the configured role_id and secret_id; a single-use or expired secret_id "
                "needs a new one from the Vault admins.",
            )
        if isinstance(exc, hvac.exceptions.Forbidden | hvac.exceptions.InvalidPath):
            return CredentialError(
                f"{where} refused the AppRole login at auth/{self.approle_mount} (HTTP {_status(exc)}).",
                hint="Check the AppRole mount path, and any CIDR binding on the role.",
            )
        return self._vault_failed(exc, "log in with AppRole")

    def _read_refused(self, exc: hvac.exceptions.VaultError) -> CredentialError:
        if isinstance(exc, hvac.exceptions.Forbidden):
            return CredentialError(
                f"Vault at {self.address} denied the break-glass role reading {self._where} (permission denied).",
                hint=f"Ask the Vault admins to grant `read` on {self.kv_mount}/data/{self.kv_path} to the role.",
            )
        if isinstance(exc, hvac.exceptions.InvalidPath):
            return CredentialError(
                f"There is no TSIG key at {self._where} in Vault at {self.address} (missing or deleted).",
                hint="Check the configured kv_path, or store the key there (KV v2: key_name, algorithm, secret).",
            )
        return self._vault_failed(exc, f"read {self._where}")

    def _vault_failed(self, exc: hvac.exceptions.VaultError, doing: str) -> CredentialError:
        status = _status(exc)
        if isinstance(exc, hvac.exceptions.VaultDown):
            return CredentialError(
                f"Vault at {self.address} is sealed or unavailable (HTTP 503) while trying to {doing}.",
                hint=OTHER_CHANGE_PATH,
            )
        return CredentialError(
            f"Vault at {self.address} failed to {doing} (HTTP {status}).", hint="Check the Vault server logs."
        )

    def _tsig_key(self, data: object) -> TsigKey:
        """Validate the KV fields; no message here ever repeats a field's value except a known algorithm name."""
        bad = f"The secret at {self._where} in Vault at {self.address} is not a usable TSIG key"
        if not isinstance(data, dict):
            raise CredentialError(f"{bad}: it holds no data.", hint="Store fields key_name, algorithm and secret.")
        missing = [f for f in _KEY_FIELDS if not isinstance(data.get(f), str) or not data[f].strip()]
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

    def _revoke_quietly(self, client: hvac.Client) -> None:
        """Best effort: the read failed, so end the token now rather than wait for its TTL."""
        # If this fails too, the token still expires by its TTL; the read failure is what the user needs to see.
        with contextlib.suppress(requests.exceptions.RequestException, hvac.exceptions.VaultError):
            client.auth.token.revoke_self()
