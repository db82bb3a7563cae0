"""The approval policy as the service sees it: always the verified one in force, or a refusal."""

from __future__ import annotations

from typing import Protocol

from approvals.matching import Requirement
from approvals.policy import Policy


class PolicySource(Protocol):
    def current(self) -> Policy:
        """The verified policy; raises PolicySignatureError or PolicyError when there is none."""

    def problem(self) -> str | None:
        """Why no request can be served now (for /dns status and start-up); None when all is well."""


def describe(requirement: Requirement) -> str:
    """`web-failover: 2 approvers, at least one from security; expires after 30m`, for people."""
    text = f"{', '.join(requirement.rules)}: {requirement.count} approver{'s' if requirement.count != 1 else ''}"
    if requirement.must_include:
        text += ", at least one from " + " and one from ".join(need.group for need in requirement.must_include)
    if requirement.emergency_allowed:
        text += "; emergency self-approval allowed"
    return text
