"""Block Kit for breakglass messages, built with slack_sdk's models so Slack's rules are checked."""

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

from core.events import EventKind
from core.models import Principal, PrincipalSource, RequestKind, RRsetChange
from core.ports import StoredRequest
from core.records import RecordType, RRset
from core.states import OPEN_FOR_APPROVAL, RECHECK_ALLOWED, ROLLBACK_ALLOWED, RequestState
from core.verification import VerificationOutcome, VerificationReport
from service.changes import RequestStatus, verdict

APPROVE, DENY, ROLLBACK, RECHECK, EMERGENCY = "approve", "deny", "rollback", "recheck", "emergency_approve"
MAX_CHANGES_SHOWN = 10
MAX_VALUES_SHOWN = 20  # per rrset in a message; `/dns status ID` lists them all
MAX_VALUE_CHARS = 120  # a long TXT value is cut in messages (phones show ~40 characters a line)
MAX_FIELD_CHARS = 1900  # under the 2000 Slack allows a section field, with room for the label

STATE_LABEL: dict[RequestState, str] = {
    RequestState.PENDING_APPROVAL: ":hourglass_flowing_sand: Awaiting approval",
    RequestState.APPROVED: ":thumbsup: Approved, starting",
    RequestState.DENIED: ":no_entry: Denied",
    RequestState.APPLYING: ":gear: Applying",
    RequestState.NEEDS_ELEVATED_APPROVAL: ":closed_lock_with_key: Paths failed; sealed envelope needs more approvals",
    RequestState.CONFLICT: ":octagonal_sign: Not applied: the plan is no longer current",
    RequestState.EXPIRED: ":hourglass: Expired: not approved in time",
    RequestState.APPLY_FAILED: ":x: Not applied: change path failed",
    RequestState.VERIFYING: ":mag: Applied, verifying on every authoritative server",
    RequestState.VERIFIED: ":white_check_mark: Verified on every authoritative server",
    RequestState.RECOVERED: ":white_check_mark: Recovered: served everywhere and the new target is live",
    RequestState.VERIFIED_NOT_LIVE: ":warning: Served everywhere, but the new target is not live",
    RequestState.VERIFICATION_FAILED: ":warning: Applied, but not every server serves it",
}


def escape(text: str) -> str:
    """Neutralise mrkdwn control characters in user text (`<!channel>` and friends)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def who(principal: Principal) -> str:
    if principal.source is PrincipalSource.SLACK:
        return f"<@{escape(principal.id)}>"
    return f"`{escape(str(principal))}`"


def _rrset(rrset: RRset | None) -> str:
    return "_(none)_" if rrset is None else escape(rrset.describe())


def cut(text: str, limit: int) -> str:
    """``text`` shortened to ``limit`` characters with an ellipsis (cut before escaping, never inside an entity)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rrset_summary(rrset: RRset | None, request_id: str | None = None, budget: int = MAX_FIELD_CHARS) -> str:
    """An rrset in at most ``budget`` characters of mrkdwn: large sets are summarised, never silently cut.

    Small rrsets read exactly as ``RRset.describe()``; beyond MAX_VALUES_SHOWN values (or the budget) the
    rest is counted and the reader is pointed at `/dns status ID`, which lists every value.
    """
    if rrset is None:
        return "_(none)_"
    quote = rrset.rtype is RecordType.TXT
    values = [f'"{cut(v, MAX_VALUE_CHARS)}"' if quote else cut(v, MAX_VALUE_CHARS) for v in rrset.values]
    shown: list[str] = []
    used = 0
    for value in values[:MAX_VALUES_SHOWN]:
        used += len(escape(value)) + 1
        if used > budget - 200:  # room for the ttl and the pointer to the full list
            break
        shown.append(value)
    text = escape(" ".join(shown)) + f" (ttl {rrset.ttl})"
    hidden = len(values) - len(shown)
    where = f"`/dns status {escape(request_id)}`" if request_id else "`breakglass verify`"
    if hidden:
        text += f"\n…and {hidden} more value{'s' if hidden != 1 else ''}: {where} lists them all."
    elif any(len(v) > MAX_VALUE_CHARS for v in rrset.values):
        text += f"\nLong values are shortened here: {where} shows them in full."
    return text


def _change_block(change: RRsetChange, request_id: str) -> SectionBlock:
    return SectionBlock(
        text=MarkdownTextObject(text=f"*{escape(change.name)} {change.rtype}* ({change.operation.value})"),
        fields=[
            MarkdownTextObject(text=f"*Current*\n{rrset_summary(change.before, request_id)}"),
            MarkdownTextObject(text=f"*New*\n{rrset_summary(change.after, request_id)}"),
        ],
    )


def _decisions(status: RequestStatus) -> str:
    parts = []
    if status.approvals:
        parts.append("Approved by " + ", ".join(who(a.approver) for a in status.approvals))
    for event in status.events:
        if event.kind is EventKind.DENIED:
            parts.append(f"Denied by {who(Principal.parse(event.actor))}")
    if status.stored.state in OPEN_FOR_APPROVAL:
        if status.policy_problem:
            parts.append(f":no_entry: {escape(status.policy_problem)}")
        else:
            parts.append(f"needs {escape(status.needs)}")
            if status.expires_at is not None:
                parts.append(f"expires {status.expires_at:%H:%M} UTC")
    return "; ".join(parts) or "No decisions yet"


def _rule_line(status: RequestStatus) -> str:
    """The rule that matched, what it requires, and who can approve (mentioned, so they are notified)."""
    if status.policy_problem:
        return f":no_entry: {escape(status.policy_problem)}"
    approvers = " ".join(f"<@{escape(u)}>" for u in status.approvers[:20])
    return f"Policy {escape(status.rule)}. Approvers: {approvers or 'none'}"


def request_blocks(status: RequestStatus) -> list[dict[str, Any]]:
    """The one message that represents a request; updated in place as it moves on."""
    request, plan, state = status.stored.request, status.stored.plan, status.stored.state
    title = "DNS rollback" if request.kind is RequestKind.ROLLBACK else "DNS change"
    blocks: list[Block] = [
        HeaderBlock(text=f"{title} {request.id}"),
        SectionBlock(text=MarkdownTextObject(text=f"*{STATE_LABEL[state]}*")),
        SectionBlock(
            fields=[
                MarkdownTextObject(text=f"*Requested by*\n{who(request.requester)}"),
                MarkdownTextObject(text=f"*Zone / path*\n{escape(plan.zone)} via {escape(plan.path)}"),
                MarkdownTextObject(text=f"*Reason*\n{escape(request.reason)}"[:2000]),
                MarkdownTextObject(text=f"*Plan digest*\n`{plan.digest()[:16]}`"),
            ]
        ),
        DividerBlock(),
    ]
    blocks += [_change_block(c, request.id) for c in plan.changes[:MAX_CHANGES_SHOWN]]
    hidden = len(plan.changes) - MAX_CHANGES_SHOWN
    if hidden > 0:
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(text=f"…and {hidden} more changes: `/dns status {request.id}` lists them all.")
                ]
            )
        )
    if state in OPEN_FOR_APPROVAL:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_rule_line(status)[:3000])]))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_decisions(status)[:3000])]))
    buttons = _buttons(status)
    if buttons:
        blocks.append(ActionsBlock(block_id=f"actions:{request.id}", elements=buttons))
    return [b.to_dict() for b in blocks]


def _buttons(status: RequestStatus) -> list[ButtonElement]:
    request_id, state = status.stored.request.id, status.stored.state
    if state in OPEN_FOR_APPROVAL:
        buttons = [
            ButtonElement(text="Approve", action_id=APPROVE, value=request_id, style="primary"),
            ButtonElement(text="Deny", action_id=DENY, value=request_id, style="danger"),
        ]
        if status.emergency_allowed and state is RequestState.PENDING_APPROVAL:
            buttons.append(
                ButtonElement(
                    text="Emergency self-approve",
                    action_id=EMERGENCY,
                    value=request_id,
                    confirm=ConfirmObject(
                        title="Emergency self-approval?",
                        text="Only the requester can use this, when no approver can be reached. Every approver "
                        "is notified and the change is marked for mandatory post-incident review.",
                        confirm="Self-approve",
                        deny="Cancel",
                        style="danger",
                    ),
                )
            )
        return buttons
    buttons = []
    if state in RECHECK_ALLOWED:
        buttons.append(ButtonElement(text="Verify again", action_id=RECHECK, value=request_id))
    if state in ROLLBACK_ALLOWED and status.stored.request.kind is RequestKind.CHANGE:
        buttons.append(ButtonElement(text="Roll back", action_id=ROLLBACK, value=request_id))
    return buttons


def request_text(status: RequestStatus) -> str:
    """Fallback text (notifications, screen readers) for the request message."""
    request = status.stored.request
    changes = ", ".join(f"{c.name} {c.rtype}" for c in status.stored.plan.changes[:3])
    return f"{request.id}: {escape(changes)} — {STATE_LABEL[status.stored.state]}"


def approval_request_text(status: RequestStatus, where: str) -> str:
    """The direct message each eligible approver gets in dm mode; ``where`` links the plan message."""
    request = status.stored.request
    changes = ", ".join(f"{c.name} {c.rtype}" for c in status.stored.plan.changes[:3])
    return (
        f":rotating_light: {who(request.requester)} asks for your approval of {request.id}: {escape(changes)}. "
        f"Reason: {escape(request.reason[:500])}. Needs {escape(status.needs)}. Review and approve in {where} "
        "or from the breakglass App Home."
    )


def verification_lines(outcome: VerificationOutcome) -> list[str]:
    lines = []
    for r in outcome.report.results:
        mark = ":white_check_mark:" if r.served else ":x:"
        timing = f"{r.seconds_to_serve:.2f} s" if r.seconds_to_serve is not None else "not serving it"
        answer = escape(cut(r.last_answer.describe(), 300))  # a 60-value answer must not overflow the table
        lines.append(f"{mark} `{r.server}` {escape(r.name)} {r.rtype}: {answer} — {timing}")
    lines += [f":x: {escape(problem)}" for problem in outcome.server_problems]
    for liveness in outcome.liveness:
        lines += [f"{':white_check_mark:' if p.ok else ':x:'} probe {escape(p.describe())}" for p in liveness.results]
        if liveness.problem:
            lines.append(f":x: probe of {escape(liveness.name)}: {escape(liveness.problem)}")
    lines += [f":warning: {escape(warning)}" for warning in outcome.delegation_warnings]
    lines += [
        f"{':white_check_mark:' if v.follows else ':hourglass:'} resolver {escape(v.description)}"
        for v in outcome.resolver_views
    ]
    return lines


def verdict_text(outcome: VerificationOutcome) -> str:
    """The first line of the result; starts with the words people (and tests) look for."""
    state, _ = verdict(outcome)
    report = outcome.report
    if state is RequestState.RECOVERED:
        return (
            "Recovered: every authoritative server serves the change and the new target is live "
            f"({report.elapsed_seconds:.2f} s)."
        )
    if state is RequestState.VERIFIED:
        return f"Verified on every authoritative server ({report.elapsed_seconds:.2f} s after apply)."
    if state is RequestState.VERIFIED_NOT_LIVE:
        return (
            "Verified, but the new target is not live: recovery is NOT declared. Check the target, then Verify again."
        )
    return (
        f"Verification failed after {report.timeout_seconds:.0f} s: {len(report.lagging())} of "
        f"{len(report.results)} answers do not match yet. Verify again, roll back, or fix the lagging servers."
    )


def verification_blocks(outcome: VerificationOutcome) -> list[dict[str, Any]]:
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=f"*{escape(verdict_text(outcome))}*"))]
    chunk: list[str] = []
    for line in verification_lines(outcome):  # a section holds 3000 characters; long tables span several
        if sum(len(x) + 1 for x in chunk) + len(line) > 2900:
            blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
            chunk = []
            if len(blocks) >= 45:
                chunk = ["…the rest of the table is in `/dns status`."]
                break
        chunk.append(line)
    if chunk:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
    return [b.to_dict() for b in blocks]


def verification_text(outcome: VerificationOutcome) -> str:
    return verdict_text(outcome) + "\n" + "\n".join(verification_lines(outcome))


def polling_text(report: VerificationReport) -> str:
    served = sum(1 for r in report.results if r.served)
    return (
        f":mag: Checking every authoritative server: {served} of {len(report.results)} answers "
        f"serve the new value ({report.elapsed_seconds:.1f} s)…"
    )


def status_text(status: RequestStatus) -> str:
    stored = status.stored
    lines = [f"*{stored.request.id}*: {STATE_LABEL[stored.state]}", _rule_line(status), _decisions(status)]
    lines += [f"• {escape(c.name)} {c.rtype}: {_rrset(c.before)} → {_rrset(c.after)}" for c in stored.plan.changes]
    lines += [f"`{e.at:%H:%M:%S}` {e.kind.value} by {escape(e.actor)}" for e in status.events[-15:]]
    return "\n".join(lines)


def recent_text(items: Sequence[StoredRequest]) -> str:
    if not items:
        return "No change requests yet."
    return "\n".join(f"*{s.request.id}* {STATE_LABEL[s.state]} — {escape(s.request.reason)}" for s in items)
