"""Typed errors. Every message is meant for a person: what happened, what to do next."""

from __future__ import annotations

from enum import StrEnum


class BreakglassError(Exception):
    """Base class; ``message`` is safe to show to users and never holds a secret."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def user_text(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class InvalidInput(BreakglassError):
    """A command, name, value or option that cannot be accepted as given."""


class ZoneNotConfigured(InvalidInput):
    """The record name is outside every zone breakglass manages."""


class SafetyRefused(BreakglassError):
    """The plan is well-formed but unsafe (apex NS/SOA, no-op, too large...)."""


class UnknownRequest(BreakglassError):
    """No change request with that id."""


class IllegalTransition(BreakglassError):
    """The request's state machine does not allow this step from its current state."""


class RefusalReason(StrEnum):
    SELF_APPROVAL = "self_approval"
    NOT_AN_APPROVER = "not_an_approver"
    ALREADY_APPROVED = "already_approved"
    NOT_PENDING = "not_pending"
    NOT_ALLOWED_TO_REQUEST = "not_allowed_to_request"
    NO_MATCHING_RULE = "no_matching_rule"  # no policy rule covers the record: denied
    CANNOT_BE_APPROVED = "cannot_be_approved"  # too few eligible people for the rule(s)
    EMERGENCY_NOT_ALLOWED = "emergency_not_allowed"
    UNKNOWN_KEY = "unknown_key"  # an out-of-band statement signed by a key not in the policy
    BAD_SIGNATURE = "bad_signature"
    WRONG_REQUEST = "wrong_request"  # a statement made for another request (replay)
    STALE_PLAN = "stale_plan"  # a statement bound to another plan digest
    STATEMENT_EXPIRED = "statement_expired"  # too old, or dated in the future
    EXPIRED = "expired"  # the request was not approved within the policy's expiry
    POLICY_REFUSED = "policy_refused"  # the policy file is unsigned, badly signed or modified
    POLICY_CHANGED = "policy_changed"  # approved under other rules than those in force now


class ApprovalRefused(BreakglassError):
    """An approval, denial or request that the approval rules do not allow."""

    def __init__(self, reason: RefusalReason, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class CredentialError(BreakglassError):
    """Break-glass credentials could not be leased or revoked (Vault down, login refused)."""


class ProviderError(BreakglassError):
    """A change path failed: authentication refused, timeout, server error."""


class ConflictError(BreakglassError):
    """The record changed after the plan was made: nothing was applied; re-plan."""


class PersistenceError(BreakglassError):
    """The database refused a write: breakglass fails closed and applies nothing."""
