"""The Notifier for the command line: what the service does, printed as it happens."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from core.ports import Notifier, StoredRequest
from core.verification import VerificationOutcome, VerificationReport


class ConsoleNotifier:
    def __init__(self, console: Console) -> None:
        self._console = console
        self._last_round = 0.0

    def progress(self, stored: StoredRequest, text: str) -> None:
        self._console.print(f"[bold]{stored.request.id}[/bold] {text}", highlight=False)

    def verifying(self, stored: StoredRequest, report: VerificationReport) -> None:
        if time.monotonic() - self._last_round >= 1.0:
            self._last_round = time.monotonic()
            served = sum(1 for r in report.results if r.served)
            self._console.print(
                f"  {served} of {len(report.results)} answers serve it ({report.elapsed_seconds:.1f} s)"
            )

    def finished(self, stored: StoredRequest, outcome: VerificationOutcome | None) -> None:
        if outcome is not None:
            table = Table("server", "answer", "serves it", "after")
            for r in outcome.report.results:
                after = f"{r.seconds_to_serve:.2f} s" if r.seconds_to_serve is not None else "-"
                table.add_row(str(r.server), r.last_answer.describe(), "yes" if r.served else "no", after)
            self._console.print(table)
        self._console.print(f"[bold]{stored.request.id}[/bold] is now {stored.state.value}", highlight=False)

    def checkpoint(self, text: str) -> None:
        self._console.print(f"audit checkpoint: {text}", highlight=False, soft_wrap=True)


class Tee:
    """Tells several notifiers the same thing (the terminal, and the request's Slack thread)."""

    def __init__(self, *notifiers: Notifier) -> None:
        self._notifiers = notifiers

    def progress(self, stored: StoredRequest, text: str) -> None:
        for notifier in self._notifiers:
            notifier.progress(stored, text)

    def verifying(self, stored: StoredRequest, report: VerificationReport) -> None:
        for notifier in self._notifiers:
            notifier.verifying(stored, report)

    def finished(self, stored: StoredRequest, outcome: VerificationOutcome | None) -> None:
        for notifier in self._notifiers:
            notifier.finished(stored, outcome)

    def checkpoint(self, text: str) -> None:
        for notifier in self._notifiers:
            notifier.checkpoint(text)
