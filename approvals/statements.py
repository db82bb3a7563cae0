"""Out-of-band approvals: a statement signed with an approver's SSH key, for when Slack is down.

An approver signs, on their own laptop, "I approve (or deny) request X whose plan has digest D, at time T"
and sends the text block by any channel (phone, mail, another chat). The bot accepts it only if the key
is pinned to that person in the signed policy, the signature verifies, it names this request and this
plan, and it is recent. The signed bytes are ``breakglass-approval-v1\\n`` + canonical JSON, so a
statement can never be mistaken for another kind of signed message.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from approvals.policy import Policy, fingerprint_of
from core.errors import ApprovalRefused, InvalidInput, RefusalReason
from core.models import Principal

DOMAIN = b"breakglass-approval-v1\n"
BEGIN = "-----BEGIN BREAKGLASS APPROVAL-----"
END = "-----END BREAKGLASS APPROVAL-----"
DEFAULT_MAX_SKEW = timedelta(minutes=5)  # how far in the future a laptop clock may be
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_FINGERPRINT = re.compile(r"^SHA256:[A-Za-z0-9+/]{43}$")
_QUOTING = re.compile(r"^[\s>]+")  # mail/chat quoting and indentation
_FIELDS = ("Request", "Decision", "Plan-Digest", "Signer", "Key", "Time", "Signature")

SshPrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_ECDSA_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


class Decision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"
    REQUEST = "request"  # proves who asks for a change made out of band (never counts as an approval)


@dataclass(frozen=True)
class Statement:
    """What the approver signs; ``at`` is kept to the second, in UTC."""

    request_id: str
    plan_digest: str
    decision: Decision
    at: datetime
    signer: str  # the person's name in the policy
    key_fingerprint: str  # `ssh-keygen -l` fingerprint of the signing key

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise InvalidInput("A statement's time must carry a time zone.", hint="Use datetime.now(UTC).")
        object.__setattr__(self, "at", self.at.astimezone(UTC).replace(microsecond=0))
        if not _REQUEST_ID.match(self.request_id):
            raise InvalidInput(f"`{self.request_id}` is not a request id.", hint="Example: BG-7QK2MD")
        if not _DIGEST.match(self.plan_digest):
            raise InvalidInput(
                "The plan digest must be the 64 hex characters shown with the plan.", hint="Copy it from the plan."
            )
        if not self.signer.strip() or not self.signer.isprintable() or self.signer != self.signer.strip():
            raise InvalidInput("The signer must be your name as written in the policy.")
        if not _FINGERPRINT.match(self.key_fingerprint):
            raise InvalidInput(f"`{self.key_fingerprint}` is not a key fingerprint (SHA256:...).")

    def canonical_bytes(self) -> bytes:
        body = {
            "at": self.at.strftime(_TIME_FORMAT),
            "decision": self.decision.value,
            "key": self.key_fingerprint,
            "plan_digest": self.plan_digest,
            "request_id": self.request_id,
            "signer": self.signer,
        }
        return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@dataclass(frozen=True)
class SignedStatement:
    statement: Statement
    signature: bytes

    def to_text(self) -> str:
        """A block to paste into any channel; whitespace, CRLF and `>` quoting survive the round trip."""
        s = self.statement
        signature = textwrap.wrap(base64.b64encode(self.signature).decode(), 64)
        lines = [
            BEGIN,
            f"Request: {s.request_id}",
            f"Decision: {s.decision.value}",
            f"Plan-Digest: {s.plan_digest}",
            f"Signer: {s.signer}",
            f"Key: {s.key_fingerprint}",
            f"Time: {s.at.strftime(_TIME_FORMAT)}",
            f"Signature: {signature[0]}",
            *(f"  {part}" for part in signature[1:]),
            END,
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> SignedStatement:
        """Parse a pasted block (surrounding text is ignored); raises InvalidInput saying what is wrong."""
        lines = [_QUOTING.sub("", line).strip() for line in text.splitlines()]
        try:
            body = lines[lines.index(BEGIN) + 1 : lines.index(END)]
        except ValueError:
            raise InvalidInput(
                "No breakglass approval block found.", hint=f"Paste everything from {BEGIN} to {END}."
            ) from None
        fields: dict[str, str] = {}
        last = ""
        for line in body:
            key, sep, value = line.partition(":")
            if sep and key in _FIELDS:
                if key in fields:
                    raise InvalidInput(f"The approval block has `{key}` twice.")
                fields[key], last = value.strip(), key
            elif line and last == "Signature":
                fields["Signature"] += line
            elif line:
                raise InvalidInput(f"Unexpected line in the approval block: `{line[:40]}`.")
        missing = [f for f in _FIELDS if f not in fields]
        if missing:
            raise InvalidInput(f"The approval block lacks {', '.join(missing)}.", hint="Paste the whole block.")
        try:
            decision = Decision(fields["Decision"])
            at = datetime.strptime(fields["Time"], _TIME_FORMAT).replace(tzinfo=UTC)
            signature = base64.b64decode(fields["Signature"], validate=True)
        except (ValueError, binascii.Error):
            raise InvalidInput("The approval block is damaged (decision, time or signature).") from None
        statement = Statement(fields["Request"], fields["Plan-Digest"], decision, at, fields["Signer"], fields["Key"])
        return cls(statement, signature)


def load_ssh_private_key(key_bytes: bytes, passphrase: bytes | None = None) -> SshPrivateKey:
    """An approver's OpenSSH private key (``~/.ssh/id_ed25519``); raises InvalidInput."""
    try:
        key = serialization.load_ssh_private_key(key_bytes, passphrase)
    except UnsupportedAlgorithm as error:
        raise InvalidInput(f"This SSH key cannot be used here: {error}.") from None
    except (ValueError, TypeError):
        raise InvalidInput(
            "The SSH private key cannot be read (wrong or missing passphrase, or not an OpenSSH key).",
            hint="Use the key whose public half is in the policy, e.g. ~/.ssh/id_ed25519.",
        ) from None
    if not isinstance(key, SshPrivateKey):
        raise InvalidInput("Only Ed25519, ECDSA and RSA keys can sign approvals.")
    return key


def private_key_fingerprint(key_bytes: bytes, passphrase: bytes | None = None) -> str:
    """The fingerprint to put in a Statement signed with this key."""
    return fingerprint_of(load_ssh_private_key(key_bytes, passphrase).public_key())


def sign_statement(
    statement: Statement, ssh_private_key_bytes: bytes, passphrase: bytes | None = None
) -> SignedStatement:
    key = load_ssh_private_key(ssh_private_key_bytes, passphrase)
    actual = fingerprint_of(key.public_key())
    if actual != statement.key_fingerprint:
        raise InvalidInput(
            f"The statement names key {statement.key_fingerprint} but is being signed with key {actual}.",
            hint="Build the statement with private_key_fingerprint() of the same key.",
        )
    data = statement.canonical_bytes()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(data)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(data, ec.ECDSA(_ECDSA_HASHES[key.curve.name]()))
    else:
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return SignedStatement(statement, signature)


def verify_statement(
    signed: SignedStatement,
    policy: Policy,
    *,
    request_id: str,
    plan_digest: str,
    now: datetime,
    max_age: timedelta,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> Principal:
    """The key principal of the person who signed; the caller then acts on ``signed.statement.decision``."""
    s = signed.statement
    person = policy.person_by_fingerprint(s.key_fingerprint)
    if person is None:
        raise ApprovalRefused(
            RefusalReason.UNKNOWN_KEY,
            f"The statement is signed with key {s.key_fingerprint}, which is not pinned to anyone in the policy.",
            hint="Sign with the SSH key listed for you in the policy.",
        )
    if person.name != s.signer:
        raise ApprovalRefused(
            RefusalReason.UNKNOWN_KEY,
            f"Key {s.key_fingerprint} belongs to {person.name}, but the statement is signed as {s.signer}.",
        )
    key = next(k for k in person.keys if k.fingerprint == s.key_fingerprint)
    if not key.verify(signed.signature, s.canonical_bytes()):
        raise ApprovalRefused(
            RefusalReason.BAD_SIGNATURE,
            f"The signature on {person.name}'s statement does not verify: the block was altered or damaged.",
            hint="Ask them to sign again and paste the block unchanged.",
        )
    if s.request_id != request_id:
        raise ApprovalRefused(
            RefusalReason.WRONG_REQUEST,
            f"The statement is for request {s.request_id}, not {request_id}.",
            hint=f"Sign a statement naming {request_id}.",
        )
    if s.plan_digest != plan_digest:
        raise ApprovalRefused(
            RefusalReason.STALE_PLAN,
            f"The statement approves plan {s.plan_digest[:12]}..., but {request_id}'s plan is now "
            f"{plan_digest[:12]}...",
            hint="Review the current plan and sign a statement with its digest.",
        )
    if s.at > now + max_skew:
        raise ApprovalRefused(
            RefusalReason.STATEMENT_EXPIRED,
            f"The statement is dated {s.at.strftime(_TIME_FORMAT)}, in the future.",
            hint="Check the signing computer's clock, then sign again.",
        )
    if now - s.at > max_age:
        raise ApprovalRefused(
            RefusalReason.STATEMENT_EXPIRED,
            f"The statement was signed at {s.at.strftime(_TIME_FORMAT)}, more than {_duration(max_age)} ago.",
            hint="Sign a fresh statement.",
        )
    return person.key_principal()


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"
