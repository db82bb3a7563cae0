"""The signed policy as deployed: a YAML file, its detached signature, and pinned trusted keys.

Re-read whenever either file changes, so an edited-but-unsigned policy is refused at once
(not after a restart) and approvals made under other rules become void.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from approvals.policy import Policy, PolicyError
from approvals.signing import (
    PolicySignatureError,
    PolicyVerification,
    VerificationStatus,
    load_verified_policy,
    verify_policy,
)
from core.errors import BreakglassError


@dataclass(frozen=True)
class _Snapshot:
    stamp: tuple[float, int, float, int]
    policy: Policy | None
    verification: PolicyVerification
    error: BreakglassError | None = None  # why there is no policy: bad signature, or invalid content


class SignedPolicyFile:
    def __init__(self, path: Path, signature_path: Path, trusted_keys: Sequence[str]) -> None:
        self.path = path
        self.signature_path = signature_path
        self._trusted = tuple(trusted_keys)
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None

    def current(self) -> Policy:
        """The verified policy in force; raises PolicySignatureError (or PolicyError) otherwise."""
        snapshot = self._load()
        if snapshot.policy is None:
            raise snapshot.error or PolicySignatureError(snapshot.verification)
        return snapshot.policy

    def problem(self) -> str | None:
        """Why no request can be served now, for people; None when the policy is in force."""
        snapshot = self._load()
        if snapshot.policy is not None:
            return None
        return (snapshot.error or PolicySignatureError(snapshot.verification)).user_text()

    def verification(self) -> PolicyVerification:
        return self._load().verification

    def _stamp(self) -> tuple[float, int, float, int]:
        def of(path: Path) -> tuple[float, int]:
            try:
                info = path.stat()
            except FileNotFoundError:
                return (0.0, -1)
            return (info.st_mtime, info.st_size)

        return (*of(self.path), *of(self.signature_path))

    def _load(self) -> _Snapshot:
        stamp = self._stamp()
        with self._lock:
            if self._snapshot is not None and self._snapshot.stamp == stamp:
                return self._snapshot
            try:
                policy_bytes = self.path.read_bytes()
            except OSError as error:
                verification = PolicyVerification(
                    VerificationStatus.UNSIGNED, None, f"the policy file {self.path} cannot be read ({error.strerror})."
                )
                self._snapshot = _Snapshot(stamp, None, verification)
                return self._snapshot
            signature = self.signature_path.read_bytes() if self.signature_path.exists() else None
            verification = verify_policy(policy_bytes, signature, self._trusted)
            try:
                policy = load_verified_policy(policy_bytes, signature, self._trusted, source=str(self.path))
            except (PolicySignatureError, PolicyError) as error:
                self._snapshot = _Snapshot(stamp, None, verification, error)
            else:
                self._snapshot = _Snapshot(stamp, policy, verification)
            return self._snapshot
