"""Crash recovery: finish the requests of a bot that died mid-flow, on whichever replica notices first.

Every bot sweeps at start-up and then every ``stale_after / 2`` seconds. A request in flight
(approved, applying, verifying) with neither a state change nor a heartbeat for ``stale_after``
seconds is taken over with one compare-and-set in the database (of several replicas sweeping at
once, exactly one wins), its unrevoked credential leases are reported, its thread is told, and it
is finished from what DNS holds now (ChangeService.resume): never applied twice.

A bot killed between recording where a request came to rest (verified, denied, apply_failed...)
and queueing that news for its thread leaves the thread behind; the same sweep finds such
requests (``stale_after`` after they came to rest) and tells their thread, once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from core.events import Event, EventKind, NewEvent
from core.models import SYSTEM
from core.ports import Notifier, RequestStore, WorkClaim
from core.states import IN_FLIGHT, RESTING, RequestState
from service.changes import ChangeService

log = structlog.get_logger("breakglass.service")

MAX_ATTEMPTS = 3  # a request whose recovery keeps failing is left to people (logged), not retried forever
UNTOLD_WINDOW = timedelta(days=1)  # endings older than this are not announced late (the audit log has them)

_NEXT = {
    RequestState.APPROVED: "Nothing had been started. Carrying on now: the policy, the expiry and the plan "
    "are checked again before anything is applied.",
    RequestState.APPLYING: "It may have been applying the change. Reading what DNS holds now: if the change is "
    "there it is recorded and verified; if not, nothing is applied (request it again). It is never applied twice.",
    RequestState.VERIFYING: "The change had been applied. Checking every authoritative server again; "
    "times now count from this restart, not from the apply.",
}


@dataclass(frozen=True)
class UnrevokedLease:
    source: str
    lease_id: str
    leased_at: datetime
    expires_at: datetime | None  # None: the source did not say its TTL


def unrevoked_leases(events: Sequence[Event]) -> list[UnrevokedLease]:
    """Leases recorded as taken and never as revoked, failed to revoke, or already reported."""
    ends = (EventKind.CREDENTIALS_REVOKED, EventKind.CREDENTIALS_REVOKE_FAILED, EventKind.LEASE_UNREVOKED)
    closed = {e.details.get("lease_id") for e in events if e.kind in ends}
    found = []
    for event in events:
        lease_id = event.details.get("lease_id")
        if event.kind is not EventKind.CREDENTIALS_LEASED or lease_id in closed:
            continue
        ttl = event.details.get("ttl_seconds")
        expires = event.at + timedelta(seconds=ttl) if isinstance(ttl, int) and ttl > 0 else None
        found.append(UnrevokedLease(str(event.details.get("source", "")), str(lease_id), event.at, expires))
    return found


class Recovery:
    """Sweeps for requests whose bot went silent, takes each over and finishes it."""

    def __init__(
        self,
        service: ChangeService,
        store: RequestStore,
        notifier: Notifier,
        *,
        stale_after: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if service.claims.store is None:
            raise ValueError("crash recovery needs a service that keeps work claims")
        self._service = service
        self._claims = service.claims
        self._claim_store = service.claims.store
        self._store = store
        self._notifier = notifier
        self.stale_after = stale_after
        self._now = now
        self._given_up: set[str] = set()
        self._stop = threading.Event()

    def tell_untold(self) -> list[str]:
        """Tell the threads of requests whose bot stopped before telling them where they came to rest."""
        now = self._now()
        told = []
        for request_id in self._claim_store.unannounced(
            RESTING, now - timedelta(seconds=self.stale_after), now - UNTOLD_WINDOW
        ):
            stored = self._store.get(request_id)
            if stored.state not in RESTING or not self._claim_store.announce(request_id, stored.state):
                continue  # it moved on, or another replica is telling it
            log.warning("recovery.untold_ending", request_id=request_id, state=stored.state.value)
            lead = (
                f":arrows_counterclockwise: {request_id} is `{stored.state.value}`, but the bot that got it there "
                f"stopped before telling this thread; {self._claims.owner} noticed. `breakglass status {request_id}` "
                "shows how it got there, with its audit trail."
            )
            try:
                self._service.tell_ending(request_id, self._notifier, lead)
            except Exception:
                log.exception("recovery.tell_failed", request_id=request_id)
            told.append(request_id)
        return told

    def take_stale(self) -> list[WorkClaim]:
        """The stale requests this process won (each with a RECOVERY_STARTED event)."""
        cutoff = self._now() - timedelta(seconds=self.stale_after)
        won = []
        for claim in self._claim_store.stale(IN_FLIGHT, cutoff):
            if self._attempts(claim.request_id) >= MAX_ATTEMPTS:
                continue
            event = NewEvent(claim.request_id, str(SYSTEM), EventKind.RECOVERY_STARTED, {
                "state": claim.state.value, "previous_owner": claim.owner, "owner": self._claims.owner,
                "silent_seconds": round((self._now() - claim.last_seen).total_seconds(), 1),
            })  # fmt: skip
            if self._claim_store.take_over(claim, self._claims.owner, cutoff, event):
                log.warning("recovery.taken_over", request_id=claim.request_id, state=claim.state.value,
                            previous_owner=claim.owner)  # fmt: skip
                won.append(claim)
        return won

    def recover(self, claim: WorkClaim) -> None:
        """Report what the stopped bot left behind, then finish the request; never raises."""
        request_id = claim.request_id
        try:
            with self._claims.holding(request_id, claim.state):
                leases = unrevoked_leases(self._store.events(request_id))
                self._store.append_many([NewEvent(request_id, str(SYSTEM), EventKind.LEASE_UNREVOKED, {
                    "source": lease.source, "lease_id": lease.lease_id,
                    "expires_at": lease.expires_at.isoformat() if lease.expires_at else None,
                }) for lease in leases])  # fmt: skip
                self._notifier.progress(self._store.get(request_id), self._intro(claim, leases))
                result = self._service.resume(request_id, self._notifier)
            log.info("recovery.finished", request_id=request_id, state=result.stored.state.value)
        except Exception:
            log.exception("recovery.failed", request_id=request_id)

    def _intro(self, claim: WorkClaim, leases: Sequence[UnrevokedLease]) -> str:
        silent = (self._now() - claim.last_seen).total_seconds()
        lines = [
            f":arrows_counterclockwise: breakglass stopped while {claim.request_id} was `{claim.state.value}` "
            f"(process {claim.owner or 'unknown'}, no sign of life for {silent:.0f} s); "
            f"{self._claims.owner} took it over. {_NEXT[claim.state]}"
        ]
        for lease in leases:
            expiry = f"at {lease.expires_at:%H:%M:%S} UTC" if lease.expires_at else "when its TTL runs out"
            lines.append(
                f"Credentials leased from {lease.source} at {lease.leased_at:%H:%M:%S} UTC (lease {lease.lease_id}) "
                f"were never revoked because the bot stopped; they expire by their TTL {expiry}."
            )
        return "\n".join(lines)

    def _attempts(self, request_id: str) -> int:
        attempts = sum(1 for e in self._store.events(request_id) if e.kind is EventKind.RECOVERY_STARTED)
        if attempts >= MAX_ATTEMPTS and request_id not in self._given_up:
            self._given_up.add(request_id)
            log.error("recovery.given_up", request_id=request_id, attempts=attempts)
        return attempts

    # --- in the background, on every replica ------------------------------------------------

    def start(self) -> Recovery:
        """Sweep now and every ``stale_after / 2`` seconds; each taken request is finished in its own thread."""
        threading.Thread(target=self._run, name="breakglass-recovery", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                for claim in self.take_stale():
                    name = f"breakglass-recover-{claim.request_id}"
                    threading.Thread(target=self.recover, args=(claim,), name=name, daemon=True).start()
                self.tell_untold()
            except Exception:  # e.g. the database is down: try again next round
                log.exception("recovery.sweep_failed")
            if self._stop.wait(self.stale_after / 2):
                return
