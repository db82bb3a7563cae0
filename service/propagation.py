"""Polling every authoritative server until it serves the new rrset, and timing it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from core.models import RRsetChange
from core.ports import AuthoritativeQuerier
from core.verification import ServerAddress, ServerResult, VerificationReport, serves


class PropagationChecker:
    """Asks each server directly, backing off between rounds, until all agree or time runs out."""

    def __init__(
        self,
        querier: AuthoritativeQuerier,
        *,
        first_delay: float = 0.02,
        max_delay: float = 0.25,  # tight enough to time propagation well; a loopback query costs ~1 ms
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._querier = querier
        self._first_delay = first_delay
        self._max_delay = max_delay
        self._sleep = sleep
        self._monotonic = monotonic

    def wait(
        self,
        changes: Sequence[RRsetChange],
        servers: Sequence[ServerAddress],
        timeout: float,
        since: float | None = None,
        on_round: Callable[[VerificationReport], None] | None = None,
        match_ttl: bool = True,
    ) -> VerificationReport:
        """``since`` is the monotonic time the change was applied; times to serve count from it.

        ``on_round`` sees the report so far after each polling round (for live progress).
        """
        start = self._monotonic() if since is None else since
        results: dict[tuple[ServerAddress, str, str], ServerResult] = {}
        pending = [(server, change) for server in servers for change in changes]
        delay = self._first_delay
        while True:
            still_pending = []
            for server, change in pending:
                answer = self._querier.query(server, change.name, change.rtype)
                served = serves(answer, change.after, match_ttl=match_ttl)
                elapsed = self._monotonic() - start
                results[(server, change.name, change.rtype)] = ServerResult(
                    server, change.name, change.rtype, served, elapsed if served else None, answer
                )
                if not served:
                    still_pending.append((server, change))
            pending = still_pending
            if not pending or self._monotonic() - start >= timeout:
                break
            if on_round is not None:
                on_round(self._report(results, changes, servers, start, timeout))
            self._sleep(min(delay, max(0.0, timeout - (self._monotonic() - start))))
            delay = min(delay * 2, self._max_delay)
        return self._report(results, changes, servers, start, timeout)

    def _report(
        self,
        results: dict[tuple[ServerAddress, str, str], ServerResult],
        changes: Sequence[RRsetChange],
        servers: Sequence[ServerAddress],
        start: float,
        timeout: float,
    ) -> VerificationReport:
        ordered = tuple(results[(s, c.name, c.rtype)] for c in changes for s in servers)
        return VerificationReport(ordered, self._monotonic() - start, timeout)
