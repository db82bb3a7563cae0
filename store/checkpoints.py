"""Signed checkpoints of the audit chain head, published outside the database.

A hash chain shows that events were edited, removed from the middle or reordered, but
someone who can write to the database can also cut events off the end or rebuild the
whole chain with fresh hashes. A checkpoint is the chain head (sequence number and
hash) signed with an Ed25519 key the database never sees, kept somewhere the database
cannot rewrite (an append-only file, a Slack audit channel). Verification then proves
that the events up to every checkpoint are still exactly the ones that were signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.errors import InvalidInput

GENESIS_HASH = "0" * 64  # the "previous hash" of the first event
_SIGNED_PREFIX = b"breakglass-checkpoint-v1\n"
_TEXT = re.compile(
    r"breakglass-checkpoint v1 seq=(?P<seq>\d+) hash=(?P<hash>[0-9a-f]{64}) "
    r"at=(?P<at>\S+) key=(?P<key>[0-9a-f]{16}) sig=(?P<sig>[A-Za-z0-9+/=]+)"
)


@dataclass(frozen=True)
class ChainHead:
    """The newest event of the chain: ``seq`` 0 and the genesis hash for an empty chain."""

    seq: int
    hash: str


@dataclass(frozen=True)
class Checkpoint:
    """A chain head signed at ``at`` by the key whose fingerprint is ``key_id``."""

    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: str  # base64 of the 64-byte Ed25519 signature over signed_bytes()

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.seq, self.hash)

    def signed_bytes(self) -> bytes:
        """Exactly what is signed: a fixed prefix, then one field per line."""
        return _SIGNED_PREFIX + f"{self.seq}\n{self.hash}\n{_iso(self.at)}\n{self.key_id}\n".encode("ascii")

    def to_text(self) -> str:
        """One line for people and chat channels; ``Checkpoint.from_text`` reads it back."""
        return (
            f"breakglass-checkpoint v1 seq={self.seq} hash={self.hash} at={_iso(self.at)} "
            f"key={self.key_id} sig={self.signature}"
        )

    def to_json(self) -> str:
        return json.dumps(
            {"seq": self.seq, "hash": self.hash, "at": _iso(self.at), "key_id": self.key_id, "sig": self.signature},
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, line: str) -> Checkpoint:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return cls(int(data["seq"]), str(data["hash"]), _parse_iso(str(data["at"])), str(data["key_id"]), data["sig"])

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Find a checkpoint line anywhere in ``text`` (e.g. a copied Slack message)."""
        found = _TEXT.search(text)
        if found is None:
            raise ValueError("no `breakglass-checkpoint v1 ...` line")
        return cls(int(found["seq"]), found["hash"], _parse_iso(found["at"]), found["key"], found["sig"])


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint: the first 16 hex digits of sha256 over the raw public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class CheckpointSigner:
    """Signs chain heads with an Ed25519 private key (kept outside the database)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, head: ChainHead, at: datetime | None = None) -> Checkpoint:
        at = (at or datetime.now(UTC)).astimezone(UTC)
        unsigned = Checkpoint(head.seq, head.hash, at, self.key_id, "")
        signature = self._key.sign(unsigned.signed_bytes())
        return Checkpoint(head.seq, head.hash, at, self.key_id, base64.b64encode(signature).decode("ascii"))


def verify_checkpoint(checkpoint: Checkpoint, public_key: Ed25519PublicKey) -> bool:
    """True if ``checkpoint`` was signed by the private half of ``public_key``."""
    if checkpoint.key_id != key_id(public_key):
        return False
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        public_key.verify(signature, checkpoint.signed_bytes())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


# --- keys -------------------------------------------------------------------------------


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key in PEM (``openssl genpkey -algorithm ed25519``)."""
    key = serialization.load_pem_private_key(_read_key(path, "signing key"), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"The signing key {path} is not an Ed25519 key.", hint=_KEYGEN_HINT)
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key in PEM (``openssl pkey -pubout``)."""
    key = serialization.load_pem_public_key(_read_key(path, "public key"))
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"The public key {path} is not an Ed25519 key.", hint=_KEYGEN_HINT)
    return key


_KEYGEN_HINT = (
    "Create one with `openssl genpkey -algorithm ed25519 -out audit-signing.pem` and its public half "
    "with `openssl pkey -in audit-signing.pem -pubout -out audit-signing.pub.pem`."
)


def _read_key(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"Cannot read the {what} file {path}: {exc.strerror}.") from None
    if b"-----BEGIN" not in data:
        raise InvalidInput(f"The {what} file {path} is not a PEM file.", hint=_KEYGEN_HINT)
    return data


# --- the append-only file ---------------------------------------------------------------


class CheckpointLog:
    """An append-only JSONL file of checkpoints, flushed to disk before ``append`` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, checkpoint: Checkpoint) -> None:
        line = (checkpoint.to_json() + "\n").encode("utf-8")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        try:
            fd = os.open(self.path, flags, 0o644)
            try:
                os.write(fd, line)  # one write with O_APPEND: concurrent appenders never interleave
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise InvalidInput(f"Cannot append to the checkpoint file {self.path}: {exc.strerror}.") from None


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Checkpoints from a file of JSON lines and/or text pasted from the audit channel.

    A line starting with ``{`` or mentioning ``breakglass-checkpoint`` must be a valid
    checkpoint (a damaged one is an error, never silently skipped); other lines, such as
    the chat's names and times around a pasted message, are ignored.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"Cannot read the checkpoint file {path}: {exc.strerror}.") from None
    found: list[Checkpoint] = []
    for number, line in enumerate(lines, start=1):
        if not line.lstrip().startswith("{") and "breakglass-checkpoint" not in line:
            continue
        try:
            found.append(Checkpoint.from_json(line) if line.lstrip().startswith("{") else Checkpoint.from_text(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(
                f"Line {number} of the checkpoint file {path} is not a checkpoint ({exc}).",
                hint="Each line must be a JSON checkpoint or a `breakglass-checkpoint v1 ...` text line.",
            ) from None
    return found


def sorted_by_seq(checkpoints: Sequence[Checkpoint]) -> list[Checkpoint]:
    return sorted(checkpoints, key=lambda c: (c.seq, c.at))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone")
    return parsed.astimezone(UTC)
