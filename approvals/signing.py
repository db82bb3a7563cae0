"""Detached Ed25519 signatures over the policy file, so the bot only serves rules its owners signed.

The signature covers ``breakglass-policy-v1\\n`` followed by the exact file bytes (nothing is re-serialised).
The signature file is one small JSON object::

    {"format": "breakglass-policy-signature-v1", "key_id": "SHA256:...", "policy_sha256": "...",
     "signature": "<base64>"}

``key_id`` is the key's ``ssh-keygen -l`` fingerprint. ``policy_sha256`` is only a diagnosis aid (it tells
"the file was modified" apart from "the signature is corrupt"); trust comes from the signature alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from approvals.policy import Policy, fingerprint_of, load_policy
from core.errors import BreakglassError, InvalidInput

SIGNATURE_FORMAT = "breakglass-policy-signature-v1"
_DOMAIN = b"breakglass-policy-v1\n"


class VerificationStatus(StrEnum):
    OK = "ok"
    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    UNTRUSTED_KEY = "untrusted_key"
    MODIFIED = "modified"


@dataclass(frozen=True)
class PolicyVerification:
    status: VerificationStatus
    key_id: str | None
    message: str  # safe to show to users: why the bot serves or refuses to

    @property
    def ok(self) -> bool:
        return self.status is VerificationStatus.OK


class PolicySignatureError(BreakglassError):
    """The policy is not signed by a trusted key: breakglass refuses to serve under it."""

    def __init__(self, verification: PolicyVerification) -> None:
        super().__init__(
            f"Refusing the approval policy: {verification.message}",
            hint="Have a policy owner check and sign it (`breakglass policy sign`), then restart or reload.",
        )
        self.verification = verification


@dataclass(frozen=True)
class SigningKey:
    """A fresh policy signing key: keep ``private_openssh`` offline, pin ``public_openssh`` in the config."""

    private_openssh: bytes
    public_openssh: str
    key_id: str


def generate_signing_key() -> SigningKey:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key()
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return SigningKey(private, line, fingerprint_of(public))


def load_signing_key(private_key: bytes, passphrase: bytes | None = None) -> ed25519.Ed25519PrivateKey:
    """An Ed25519 private key from OpenSSH (``ssh-keygen -t ed25519``) or PKCS#8 PEM bytes."""
    key: object
    try:
        if b"OPENSSH PRIVATE KEY" in private_key:
            key = serialization.load_ssh_private_key(private_key, passphrase)
        else:
            key = serialization.load_pem_private_key(private_key, passphrase)
    except UnsupportedAlgorithm as error:
        raise InvalidInput(f"The policy signing key cannot be used here: {error}.") from None
    except (ValueError, TypeError):
        raise InvalidInput(
            "The policy signing key cannot be read (wrong passphrase, or not a private key).",
            hint="Use an Ed25519 key in OpenSSH or PEM format, e.g. from `ssh-keygen -t ed25519`.",
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InvalidInput("Policy signing keys must be Ed25519.", hint="Create one with `ssh-keygen -t ed25519`.")
    return key


def load_trusted_key(text: str) -> ed25519.Ed25519PublicKey:
    """A trusted policy key from an OpenSSH ``ssh-ed25519 AAAA...`` line or a PEM public key."""
    key: object  # PEM and OpenSSH loaders return different unions of key types
    try:
        if text.strip().startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.strip().encode())
        else:
            key = serialization.load_ssh_public_key(" ".join(text.split()[:2]).encode())
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput(
            f"Trusted policy key `{text[:40]}` cannot be read.", hint="Give the `ssh-ed25519 AAAA...` line."
        ) from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise InvalidInput("Trusted policy keys must be Ed25519.", hint="Give an `ssh-ed25519 AAAA...` line.")
    return key


def sign_policy(policy_bytes: bytes, private_key: bytes, passphrase: bytes | None = None) -> bytes:
    """The signature file for ``policy_bytes`` (sign the exact bytes you will deploy)."""
    key = load_signing_key(private_key, passphrase)
    document = {
        "format": SIGNATURE_FORMAT,
        "key_id": fingerprint_of(key.public_key()),
        "policy_sha256": hashlib.sha256(policy_bytes).hexdigest(),
        "signature": base64.b64encode(key.sign(_DOMAIN + policy_bytes)).decode(),
    }
    return (json.dumps(document, indent=2) + "\n").encode()


def verify_policy(
    policy_bytes: bytes, signature_bytes: bytes | None, trusted_public_keys: Sequence[str]
) -> PolicyVerification:
    """Whether ``policy_bytes`` carries a valid signature by one of ``trusted_public_keys``."""
    if signature_bytes is None or not signature_bytes.strip():
        return PolicyVerification(VerificationStatus.UNSIGNED, None, "the policy file is not signed.")
    parsed = _parse_signature(signature_bytes)
    if parsed is None:
        return PolicyVerification(
            VerificationStatus.BAD_SIGNATURE, None, "the policy signature file is unreadable or not in our format."
        )
    key_id, signed_sha256, signature = parsed
    trusted = {fingerprint_of(k): k for k in (load_trusted_key(t) for t in trusted_public_keys)}
    key = trusted.get(key_id)
    if key is None:
        known = ", ".join(sorted(trusted)) or "none are configured"
        return PolicyVerification(
            VerificationStatus.UNTRUSTED_KEY,
            key_id,
            f"the policy is signed by key {key_id}, which is not a trusted policy key (trusted: {known}).",
        )
    try:
        key.verify(signature, _DOMAIN + policy_bytes)
    except InvalidSignature:
        actual = hashlib.sha256(policy_bytes).hexdigest()
        if signed_sha256 != actual:
            return PolicyVerification(
                VerificationStatus.MODIFIED,
                key_id,
                f"the policy file was modified after it was signed (signed sha256 {signed_sha256[:12]}..., "
                f"file sha256 {actual[:12]}...).",
            )
        return PolicyVerification(
            VerificationStatus.BAD_SIGNATURE, key_id, f"the signature by key {key_id} does not verify."
        )
    return PolicyVerification(VerificationStatus.OK, key_id, f"the policy is signed by trusted key {key_id}.")


def load_verified_policy(
    policy_bytes: bytes, signature_bytes: bytes | None, trusted_public_keys: Sequence[str], *, source: str
) -> Policy:
    """Verify, then load: raises PolicySignatureError before reading a single rule of an untrusted file."""
    verification = verify_policy(policy_bytes, signature_bytes, trusted_public_keys)
    if not verification.ok:
        raise PolicySignatureError(verification)
    return load_policy(policy_bytes, source=source)


def _parse_signature(data: bytes) -> tuple[str, str, bytes] | None:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or document.get("format") != SIGNATURE_FORMAT:
        return None
    key_id, sha256, signature = document.get("key_id"), document.get("policy_sha256"), document.get("signature")
    if not (isinstance(key_id, str) and isinstance(sha256, str) and isinstance(signature, str)):
        return None
    try:
        return key_id, sha256, base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None
