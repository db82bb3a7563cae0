"""The minimal approval rule: a pinned list of approvers and a required count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import ApprovalRefused, RefusalReason
from core.models import Approval, ChangeRequest, Principal


@dataclass(frozen=True)
class ApproverRoster:
    approvers: frozenset[Principal]
    required: int

    def check(self, request: ChangeRequest, approver: Principal, existing: Sequence[Approval]) -> None:
        """Raise ApprovalRefused unless ``approver`` may add an approval to ``request`` now."""
        if approver == request.requester:
            raise ApprovalRefused(
                RefusalReason.SELF_APPROVAL,
                "You requested this change, so you cannot approve it.",
                hint="Ask another approver.",
            )
        if approver not in self.approvers:
            raise ApprovalRefused(
                RefusalReason.NOT_AN_APPROVER,
                "You are not on the approver list for this change.",
                hint="Ask one of the listed approvers.",
            )
        if any(a.approver == approver for a in existing):
            raise ApprovalRefused(
                RefusalReason.ALREADY_APPROVED,
                "You have already approved this change; one person counts once.",
                hint=f"It still needs {self.missing(existing)} more approval(s) from other approvers.",
            )

    def check_deny(self, request: ChangeRequest, person: Principal) -> None:
        """The requester may withdraw their own request; otherwise only approvers may deny."""
        if person != request.requester and person not in self.approvers:
            raise ApprovalRefused(
                RefusalReason.NOT_AN_APPROVER,
                "Only approvers (or the requester) can deny this change.",
            )

    def missing(self, approvals: Sequence[Approval]) -> int:
        return max(0, self.required - len({a.approver for a in approvals}))

    def quorum_reached(self, approvals: Sequence[Approval]) -> bool:
        return self.missing(approvals) == 0
