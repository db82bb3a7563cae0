"""Leasing break-glass credentials, with every lease, failure, rotation and revocation audited."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import structlog

from core.errors import CredentialError
from core.events import EventKind, EventValue, NewEvent
from core.models import SYSTEM
from core.ports import Lease
from service.zones import PathRuntime

log = structlog.get_logger("breakglass.service")


class AuditedLeases:
    """One way to lease and revoke, for change requests, lookups and drills alike."""

    def __init__(self, append: Callable[[NewEvent], None]) -> None:
        self._append = append

    def lease(self, subject: str, route: PathRuntime, *, purpose: str | None = None, actor: str = str(SYSTEM)) -> Lease:
        """Lease ``route``'s credentials for request/drill ``subject``; CredentialError is audited, then raised."""
        extra: dict[str, EventValue] = {} if purpose is None else {"purpose": purpose}
        try:
            lease = route.credentials.lease()
        except CredentialError as error:
            self._append(NewEvent(subject, actor, EventKind.CREDENTIALS_FAILED, {
                "source": route.credentials.name, "error": error.user_text(), **extra,
            }))  # fmt: skip
            raise
        try:
            self._append(NewEvent(subject, actor, EventKind.CREDENTIALS_LEASED, {
                "source": lease.info.source, "lease_id": lease.info.lease_id,
                "ttl_seconds": lease.info.ttl_seconds, **extra,
            }))  # fmt: skip
            if lease.info.must_rotate:
                self._append(NewEvent(subject, actor, EventKind.CREDENTIALS_MUST_ROTATE, {
                    "source": lease.info.source, "lease_id": lease.info.lease_id,
                }))  # fmt: skip
        except BaseException:
            with contextlib.suppress(Exception):  # never keep a lease the audit trail does not know about
                lease.revoke()
            raise
        return lease

    def revoke(self, subject: str, lease: Lease) -> None:
        """Revoke now; a failure is audited (the lease still expires by its TTL), never raised."""
        try:
            lease.revoke()
        except CredentialError as error:
            self._append(NewEvent(subject, str(SYSTEM), EventKind.CREDENTIALS_REVOKE_FAILED, {
                "lease_id": lease.info.lease_id, "expires_in_seconds": lease.info.ttl_seconds,
                "error": error.user_text(),
            }))  # fmt: skip
            log.warning("lease.revoke_failed", subject=subject, lease_id=lease.info.lease_id)
            return
        self._append(NewEvent(subject, str(SYSTEM), EventKind.CREDENTIALS_REVOKED, {"lease_id": lease.info.lease_id}))
