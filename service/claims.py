"""Work claims: which bot process carries out which request, kept fresh by a heartbeat.

Several replicas share one database. The process that takes a request into work claims it;
a background thread refreshes the claims it holds every ``interval`` seconds. A request
whose claim goes silent for longer than the recovery threshold is taken over by another
process (service/recovery.py), so the heartbeat must beat well inside that threshold.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from core.errors import BreakglassError, PersistenceError
from core.ports import ClaimStore
from core.states import RequestState

log = structlog.get_logger("breakglass.service")

DEFAULT_STALE_AFTER = 30.0  # seconds without a sign of life before another process takes a request over


def new_owner_id() -> str:
    """hostname:pid:random: unique per process, and says where to look when one stops."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class ClaimLost(BreakglassError):
    """Another bot took this request over while this one was silent; this one must stop touching it."""


class WorkClaims:
    """This process's claims. ``store=None``: claims are not kept (nothing can take work over)."""

    def __init__(
        self, store: ClaimStore | None, *, owner: str | None = None, interval: float = DEFAULT_STALE_AFTER / 4
    ) -> None:
        self.store = store
        self.owner = owner or new_owner_id()
        self.interval = interval
        self._held: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, request_id: str, state: RequestState) -> Iterator[None]:
        """Claim ``request_id`` (now ``state``) for this process and heartbeat it until the block ends.

        Nests: recovery holds a request and then hands it to ``execute``, which holds it too.
        """
        if self.store is not None:
            self.store.claim(request_id, state, self.owner)
        with self._lock:
            self._held[request_id] += 1
        self._start()
        try:
            yield
        finally:
            with self._lock:
                self._held[request_id] -= 1
                if self._held[request_id] <= 0:
                    del self._held[request_id]

    def claim(self, request_id: str, state: RequestState) -> None:
        """Mark ``request_id`` as this process's (without a heartbeat: for a step that follows at once)."""
        if self.store is not None:
            self.store.claim(request_id, state, self.owner)

    def announced(self, request_id: str, state: RequestState) -> bool:
        """Record that people were told ``request_id`` came to rest in ``state``; True if this call recorded it."""
        return self.store is not None and self.store.announce(request_id, state)

    def check(self, request_id: str) -> None:
        """Raise ClaimLost if another process has taken ``request_id`` over (call before touching DNS)."""
        if self.store is not None and not self.store.holds(request_id, self.owner):
            raise ClaimLost(
                f"Another breakglass process took {request_id} over while this one was unresponsive; "
                "this one stops here and applies nothing.",
                hint="Follow the request's thread: the other process reports how it ends.",
            )

    def beat(self) -> None:
        """Refresh every claim held now; a claim found taken over is logged (``check`` stops its work)."""
        with self._lock:
            held = set(self._held)
        if self.store is None or not held:
            return
        try:
            still = self.store.heartbeat(self.owner, held)
        except PersistenceError as error:
            log.warning("claims.heartbeat_failed", owner=self.owner, error=error.user_text())
            return
        for request_id in sorted(held - still):
            log.warning("claims.lost", request_id=request_id, owner=self.owner)

    def stop(self) -> None:
        self._stop.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self.store is None:
                return
            self._thread = threading.Thread(target=self._run, name="breakglass-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Beat while anything is held; the thread ends when nothing is (``holding`` starts a new one)."""
        while not self._stop.wait(self.interval):
            with self._lock:
                if not self._held:
                    self._thread = None
                    return
            try:
                self.beat()
            except Exception:  # the heartbeat must outlive any one failure
                log.exception("claims.heartbeat_crashed", owner=self.owner)
