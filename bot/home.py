"""The App Home tab: what waits for the viewer's approval, and how recent changes ended.

Why: an approver paged at night opens the app, not the right channel's history. The Home shows only
what they may act on (the rules' eligible approvers, minus what they already approved) and where each
recent change stands, including how many authoritative servers served it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.render import STATE_LABEL, cut, escape, rrset_summary, who
from core.events import Event, EventKind
from core.models import Principal
from service.changes import ChangeService, RequestStatus

HOME_APPROVE, HOME_DENY, HOME_REFRESH = "home_approve", "home_deny", "home_refresh"
MAX_PENDING_SHOWN = 10  # 4 blocks each: well under the 100 blocks a Home view may hold
MAX_RECENT_SHOWN = 10
MAX_CHANGES_PER_REQUEST = 3


def readiness_summary(service: ChangeService) -> str | None:
    """mrkdwn summary of how ready each zone's change paths are (drills); None shows nothing.

    A placeholder: the readiness work fills it in.
    """
    return None


def home_view(service: ChangeService, user_id: str) -> dict[str, Any]:
    """The Home tab for ``user_id``, built fresh from the service each time it is opened or acted on."""
    blocks: list[Block] = [
        HeaderBlock(text="breakglass"),
        SectionBlock(
            text=MarkdownTextObject(
                text="Emergency DNS changes with pre-agreed approvals. Type `/dns` in the incident channel "
                "to request one."
            ),
            accessory=ButtonElement(text="Refresh", action_id=HOME_REFRESH, value="refresh"),
        ),
    ]
    problem = service.policy_problem()
    if problem:
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text=f":no_entry: breakglass refuses every request now: "
                                                 f"{escape(cut(problem, 2500))}"))
        )  # fmt: skip
    readiness = readiness_summary(service)
    if readiness:
        blocks += [HeaderBlock(text="Readiness"), SectionBlock(text=MarkdownTextObject(text=cut(readiness, 2900)))]
    pending = service.pending_for(Principal.parse(f"slack:{user_id}"))
    blocks.append(HeaderBlock(text="Awaiting your approval"))
    if not pending:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="Nothing is waiting for you.")]))
    for status in pending[:MAX_PENDING_SHOWN]:
        blocks += _pending_blocks(status)
    if len(pending) > MAX_PENDING_SHOWN:
        more = len(pending) - MAX_PENDING_SHOWN
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"…and {more} more: `/dns status` lists them.")]))
    blocks.append(HeaderBlock(text="Recent changes"))
    recent = service.recent(MAX_RECENT_SHOWN)
    if not recent:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text="No change requests yet.")]))
    for stored in recent:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_recent_text(service.status(stored.request.id)))))
    return View(type="home", blocks=blocks).to_dict()


def _changes_text(status: RequestStatus) -> str:
    request_id = status.stored.request.id
    changes = status.stored.plan.changes
    lines = [
        f"• {escape(c.name)} {c.rtype}: {rrset_summary(c.before, request_id, 400)} → "
        f"{rrset_summary(c.after, request_id, 400)}"
        for c in changes[:MAX_CHANGES_PER_REQUEST]
    ]
    if len(changes) > MAX_CHANGES_PER_REQUEST:
        lines.append(f"…and {len(changes) - MAX_CHANGES_PER_REQUEST} more: `/dns status {request_id}`")
    return "\n".join(lines)


def _pending_blocks(status: RequestStatus) -> list[Block]:
    request = status.stored.request
    expiry = f" · expires {status.expires_at:%H:%M} UTC" if status.expires_at is not None else ""
    head = (
        f"*{request.id}* from {who(request.requester)}{expiry}\n"
        f"*Reason:* {escape(cut(request.reason, 500))}\n"
        f"*Needs:* {escape(status.needs)} ({escape(status.rule)})"
    )
    return [
        DividerBlock(),
        SectionBlock(text=MarkdownTextObject(text=head)),
        SectionBlock(text=MarkdownTextObject(text=_changes_text(status))),
        ActionsBlock(
            block_id=f"home:{request.id}",
            elements=[
                ButtonElement(
                    text="Approve",
                    action_id=HOME_APPROVE,
                    value=request.id,
                    style="primary",
                    confirm=ConfirmObject(
                        title=f"Approve {request.id}?",
                        text="You approve exactly the plan shown here (its digest is recorded with your approval).",
                        confirm="Approve",
                        deny="Cancel",
                    ),
                ),
                ButtonElement(text="Deny", action_id=HOME_DENY, value=request.id, style="danger"),
            ],
        ),
    ]


def _recent_text(status: RequestStatus) -> str:
    request = status.stored.request
    lines = [
        f"*{request.id}* {STATE_LABEL[status.stored.state]}",
        f"{escape(cut(request.reason, 300))} · {who(request.requester)} · {request.created_at:%Y-%m-%d %H:%M} UTC",
        _changes_text(status),
    ]
    verification = verification_summary(status.events)
    if verification:
        lines.append(verification)
    return "\n".join(lines)


def verification_summary(events: Sequence[Event]) -> str:
    """How the latest verification round went, from the audit events: `2 of 2 server answers ...`."""
    checks: list[Event] = []
    for event in events:
        if event.kind in (EventKind.APPLIED, EventKind.RECHECK_REQUESTED):
            checks = []
        elif event.kind is EventKind.SERVER_CHECKED:
            checks.append(event)
    if not checks:
        return ""
    served = [e for e in checks if e.details.get("served")]
    seconds = [float(s) for e in served if isinstance(s := e.details.get("seconds"), int | float)]
    slowest = f", the slowest after {max(seconds):.2f} s" if seconds else ""
    mark = ":white_check_mark:" if len(served) == len(checks) else ":warning:"
    return f"{mark} {len(served)} of {len(checks)} authoritative answers serve it{slowest}"
