"""Sealed envelopes: break-glass credentials encrypted at rest, for when Vault itself is unreachable.

An envelope is a JSON file holding a header (version, name, kind, id, created_at, key_id), a random
96-bit nonce and the AES-256-GCM ciphertext of the credentials; never any plaintext. The whole header
is the AEAD's associated data, so renaming, re-kinding or re-dating an envelope makes it fail to open.

The key is not part of the bot's normal configuration: it is read at lease time from a file (e.g. a
medium mounted only during break-glass) or an environment variable (pasted by an operator). A secret
that has left its envelope must be rotated, so every lease says ``must_rotate``; nothing can be revoked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.credentials import ApiKey, AwsCredentials, Credentials, LeaseInfo, TsigAlgorithm, TsigKey
from core.errors import CredentialError
from core.secrets import Secret

ENVELOPE_VERSION = 1
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96 bits, GCM's native nonce size
_HEADER_FIELDS = ("version", "name", "kind", "id", "created_at", "key_id")
_KEY_ID_LABEL = b"breakglass sealed-envelope key id v1"


class SealedKind(StrEnum):
    TSIG = "tsig"
    API_KEY = "api_key"
    AWS = "aws"


def generate_key() -> bytes:
    """A fresh random 256-bit key. Store it offline (``key_to_text`` gives the form the source reads)."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def key_to_text(key: bytes) -> str:
    """The key as one line of URL-safe base64: what goes in the key file or the environment variable."""
    return base64.urlsafe_b64encode(key).decode()


def key_from_text(text: str) -> bytes:
    """Parse ``key_to_text`` output (standard base64 accepted too); ValueError that never repeats the text."""
    try:
        key = base64.b64decode(text.strip().translate(str.maketrans("+/", "-_")), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        key = None
    if key is None:
        raise ValueError("not base64")
    if len(key) != KEY_BYTES:
        raise ValueError(f"{len(key)} bytes instead of {KEY_BYTES}")
    return key


def key_id(key: bytes) -> str:
    """A short public fingerprint of the key (an HMAC of a constant), to say *which* key an envelope needs."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def seal(credentials: Credentials, name: str, key: bytes, *, created_at: datetime | None = None) -> bytes:
    """Encrypt ``credentials`` into an envelope named ``name`` (e.g. ``example.com/rfc2136``)."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a sealed-envelope key is {KEY_BYTES} bytes; use generate_key()")
    kind, payload = _payload(credentials)
    header: dict[str, Any] = {
        "version": ENVELOPE_VERSION,
        "name": name,
        "kind": kind.value,
        "id": secrets.token_hex(8),
        "created_at": (created_at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds"),
        "key_id": key_id(key),
    }
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = AESGCM(key).encrypt(nonce, json.dumps(payload).encode(), _associated_data(header))
    envelope = {
        **header,
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }
    return (json.dumps(envelope, indent=2) + "\n").encode()


@dataclass(frozen=True)
class Unsealed:
    envelope_id: str
    name: str
    kind: SealedKind
    created_at: str
    credentials: Credentials


def unseal(data: bytes, key: bytes, *, expected_name: str, where: str) -> Unsealed:
    """Open an envelope; every failure is a CredentialError that names ``where`` and never a secret."""
    envelope = _parse_envelope(data, where)
    if envelope["name"] != expected_name:
        raise CredentialError(
            f"The sealed envelope {where} is for {envelope['name']!r}, not {expected_name!r}.",
            hint="Point the configuration at the envelope for this zone and path.",
        )
    if envelope["key_id"] != key_id(key):
        raise CredentialError(
            f"The sealed envelope {where} was sealed with another key (key id {envelope['key_id']}); the key "
            f"supplied has key id {key_id(key)}.",
            hint="Supply the key this envelope was sealed with.",
        )
    header = {field: envelope[field] for field in _HEADER_FIELDS}
    try:
        nonce = base64.b64decode(envelope["nonce"], validate=True)
        ciphertext = base64.b64decode(envelope["ciphertext"], validate=True)
    except (binascii.Error, ValueError):
        nonce = ciphertext = b""
    plaintext: bytes | None = None
    if len(nonce) == NONCE_BYTES and ciphertext:
        try:
            plaintext = AESGCM(key).decrypt(nonce, ciphertext, _associated_data(header))
        except InvalidTag:
            plaintext = None
    if plaintext is None:
        raise CredentialError(
            f"The sealed envelope {where} has been altered: it fails authentication with the right key "
            "(its contents or its header, e.g. name or date, were changed).",
            hint="Do not use it; restore the envelope from its offline copy.",
        )
    kind = SealedKind(envelope["kind"])
    credentials = _credentials(kind, plaintext, where)
    return Unsealed(envelope["id"], envelope["name"], kind, envelope["created_at"], credentials)


class SealedLease:
    """A secret out of its envelope: nothing to revoke, and it must be rotated now that it was used."""

    def __init__(self, info: LeaseInfo, credentials: Credentials) -> None:
        self._info = info
        self._credentials = credentials

    @property
    def info(self) -> LeaseInfo:
        return self._info

    @property
    def credentials(self) -> Credentials:
        return self._credentials

    def revoke(self) -> None:
        """Nothing to revoke: the secret is static. ``info.must_rotate`` tells the service to record a rotation."""

    def __repr__(self) -> str:
        return f"SealedLease({self._info!r})"


class SealedEnvelopeSource:
    """``CredentialSource`` that opens a sealed envelope with a key supplied only at break-glass time.

    Exactly one of ``key_file`` and ``key_env`` says where the key comes from; ``kind``, if given,
    is the credential type the change path needs.
    """

    def __init__(
        self,
        name: str,
        *,
        envelope_path: Path | str,
        envelope_name: str,
        key_file: Path | str | None = None,
        key_env: str | None = None,
        kind: SealedKind | str | None = None,
    ) -> None:
        if (key_file is None) == (key_env is None):
            raise ValueError("give exactly one of key_file and key_env")
        self.name = name
        self.envelope_path = Path(envelope_path)
        self.envelope_name = envelope_name
        self.key_file = Path(key_file) if key_file is not None else None
        self.key_env = key_env
        self.kind = SealedKind(kind) if kind is not None else None

    def __repr__(self) -> str:
        key = f"key_file={str(self.key_file)!r}" if self.key_file else f"key_env={self.key_env!r}"
        return (
            f"SealedEnvelopeSource(name={self.name!r}, envelope={str(self.envelope_path)!r}, "
            f"envelope_name={self.envelope_name!r}, {key})"
        )

    def lease(self) -> SealedLease:
        """Read the key and the envelope now (both may have been supplied just for this), then decrypt."""
        key = self._read_key()
        where = str(self.envelope_path)
        try:
            data = self.envelope_path.read_bytes()
        except FileNotFoundError:
            data = None
            why = "does not exist"
        except OSError as exc:
            data = None
            why = f"cannot be read ({exc.strerror or type(exc).__name__})"
        if data is None:
            raise CredentialError(
                f"The sealed envelope {where} {why}.", hint="Restore it from its offline copy, or fix envelope_path."
            )
        unsealed = unseal(data, key, expected_name=self.envelope_name, where=where)
        if self.kind is not None and unsealed.kind is not self.kind:
            raise CredentialError(
                f"The sealed envelope {where} holds {unsealed.kind.value} credentials, not {self.kind.value}.",
                hint="Point the configuration at the envelope for this change path.",
            )
        info = LeaseInfo(
            source=self.name,
            lease_id=f"sealed:{unsealed.name}:{unsealed.envelope_id}",
            ttl_seconds=0,
            must_rotate=True,
        )
        return SealedLease(info, unsealed.credentials)

    def _read_key(self) -> bytes:
        """The key, read now; every failure says where it was looked for and what to do (never the key)."""
        text: str | None = None
        if self.key_file is not None:
            where = f"key file {self.key_file}"
            try:
                text = self.key_file.read_text()
            except FileNotFoundError:
                problem = "does not exist"
            except OSError as exc:
                problem = f"cannot be read ({exc.strerror or type(exc).__name__})"
            if text is None:
                raise CredentialError(
                    f"The sealed-envelope {where} {problem}.",
                    hint="Mount the break-glass key medium (the key is kept offline on purpose), check that "
                    "breakglass may read it, and retry.",
                )
        else:
            where = f"environment variable {self.key_env}"
            text = os.environ.get(self.key_env or "")
            if not text:
                raise CredentialError(
                    f"The sealed-envelope key is not set: {where} is empty or missing.",
                    hint=f"An operator must paste the key from its offline copy into {self.key_env}.",
                )
        try:
            return key_from_text(text)
        except ValueError as exc:
            why = str(exc)
        raise CredentialError(
            f"The sealed-envelope key from {where} is not a 256-bit key in base64 ({why}).",
            hint="Supply the key exactly as it was stored (one line of base64).",
        )


def _associated_data(header: dict[str, Any]) -> bytes:
    """The header, canonically encoded: any change to it makes decryption fail."""
    return json.dumps({f: header[f] for f in _HEADER_FIELDS}, sort_keys=True, separators=(",", ":")).encode()


def _payload(credentials: Credentials) -> tuple[SealedKind, dict[str, Any]]:
    if isinstance(credentials, TsigKey):
        fields = {
            "key_name": credentials.name,
            "algorithm": credentials.algorithm.value,
            "secret": credentials.secret.reveal(),
        }
        return SealedKind.TSIG, fields
    if isinstance(credentials, ApiKey):
        return SealedKind.API_KEY, {"api_key": credentials.secret.reveal()}
    return SealedKind.AWS, {
        "access_key_id": credentials.access_key_id,
        "secret_access_key": credentials.secret_access_key.reveal(),
        "session_token": credentials.session_token.reveal() if credentials.session_token else None,
        "region": credentials.region,
    }


def _parse_envelope(data: bytes, where: str) -> dict[str, Any]:
    damaged = CredentialError(
        f"The file {where} is not a usable sealed envelope (not JSON, or fields missing).",
        hint="Restore it from its offline copy.",
    )
    try:
        envelope = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        envelope = None
    if not isinstance(envelope, dict):
        raise damaged
    if envelope.get("version") != ENVELOPE_VERSION:
        raise CredentialError(
            f"The sealed envelope {where} has version {envelope.get('version')!r}; this breakglass reads version "
            f"{ENVELOPE_VERSION}.",
            hint="Re-seal it with this version of breakglass.",
        )
    strings = ("name", "kind", "id", "created_at", "key_id", "nonce", "ciphertext")
    if not all(isinstance(envelope.get(f), str) for f in strings):
        raise damaged
    if envelope["kind"] not in {k.value for k in SealedKind}:
        raise damaged
    return envelope


def _credentials(kind: SealedKind, plaintext: bytes, where: str) -> Credentials:
    """Rebuild the typed credentials; authenticated plaintext was written by ``seal``, so a mismatch is a bug."""
    try:
        fields = json.loads(plaintext)
        if kind is SealedKind.TSIG:
            return TsigKey(fields["key_name"], TsigAlgorithm(fields["algorithm"]), Secret(fields["secret"]))
        if kind is SealedKind.API_KEY:
            return ApiKey(Secret(fields["api_key"]))
        token = fields.get("session_token")
        return AwsCredentials(
            access_key_id=fields["access_key_id"],
            secret_access_key=Secret(fields["secret_access_key"]),
            session_token=Secret(token) if token else None,
            region=fields.get("region") or "us-east-1",
        )
    except (ValueError, KeyError, TypeError):
        pass
    raise CredentialError(
        f"The sealed envelope {where} decrypted, but does not hold a {kind.value} credential.",
        hint="Re-seal the credential with this version of breakglass.",
    )
