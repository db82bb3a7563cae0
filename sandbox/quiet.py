"""A Notifier that tells nobody: for tests and benchmarks that read the outcome from the service."""

from __future__ import annotations

from core.ports import StoredRequest
from core.verification import VerificationOutcome, VerificationReport


class QuietNotifier:
    """Every report dropped; only the service's results (and the clock) matter to its callers."""

    def progress(self, stored: StoredRequest, text: str) -> None:
        pass

    def verifying(self, stored: StoredRequest, report: VerificationReport) -> None:
        pass

    def finished(self, stored: StoredRequest, outcome: VerificationOutcome | None) -> None:
        pass

    def checkpoint(self, text: str) -> None:
        pass
