"""The post-incident report: one self-contained HTML page (inline CSS and SVG, no script).

Written for someone who was not there: what was asked and why, who approved, when the
change was applied, when each authoritative server served it, what was rolled back, and
whether the audit chain behind all of it is intact. Every piece of recorded text (reasons,
actors, error messages, record values) is HTML-escaped: reasons are typed by people.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from core.models import Approval, RequestKind
from core.ports import StoredRequest
from store.audit import AuditRecord, ChainVerification

# --- input --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestView:
    stored: StoredRequest
    approvals: tuple[Approval, ...]


@dataclass(frozen=True)
class ReportData:
    title: str  # e.g. "Incident INC-42"
    selection: str  # how the requests were chosen, in words
    requests: tuple[RequestView, ...]
    records: tuple[AuditRecord, ...]  # every event of those requests, in seq order
    verification: ChainVerification
    generated_at: datetime


# --- event vocabulary -------------------------------------------------------------------------

_REFUSALS = {
    "self_approval": "the requester cannot approve their own change",
    "not_an_approver": "not on the approver list",
    "already_approved": "had already approved",
    "not_pending": "approvals were already closed",
    "not_allowed_to_request": "not allowed to request changes",
}
_SUCCESS = {
    "applied",
    "verified",
    "recovered",
    "quorum_reached",
    "approved",
    "credentials_revoked",
    "emergency_approved",
}
_FAILURE = {
    "request_refused",
    "expired",
    "credentials_must_rotate",
    "path_failed",
    "approval_refused",
    "denied",
    "credentials_failed",
    "credentials_revoke_failed",
    "conflict",
    "apply_failed",
    "verification_failed",
    "verified_not_live",
    "delegation_warning",
}
_SHORT = {
    "planned": "requested",
    "request_refused": "refused",
    "expired": "expired",
    "emergency_approved": "emergency",
    "credentials_must_rotate": "rotate!",
    "path_failed": "path failed",
    "path_skipped": "path skipped",
    "elevation_required": "elevation",
    "delegation_warning": "delegation",
    "resolver_view": "resolver",
    "approved": "approved",
    "approval_refused": "refused",
    "quorum_reached": "quorum",
    "denied": "denied",
    "apply_started": "start",
    "credentials_leased": "lease",
    "credentials_revoked": "revoke",
    "credentials_revoke_failed": "revoke failed",
    "credentials_failed": "no lease",
    "conflict": "conflict",
    "apply_failed": "failed",
    "applied": "applied",
    "verified": "verified",
    "recovered": "recovered",
    "verified_not_live": "not live",
    "verification_failed": "not verified",
    "rollback_requested": "rollback asked",
    "recheck_requested": "recheck",
    "probe_checked": "probe",
}
_LANE_OF = {
    "planned": "request",
    "request_refused": "request",
    "expired": "approvals",
    "emergency_approved": "approvals",
    "elevation_required": "approvals",
    "credentials_must_rotate": "apply",
    "path_failed": "apply",
    "path_skipped": "apply",
    "approved": "approvals",
    "approval_refused": "approvals",
    "quorum_reached": "approvals",
    "denied": "approvals",
    "apply_started": "apply",
    "credentials_leased": "apply",
    "credentials_revoked": "apply",
    "credentials_revoke_failed": "apply",
    "credentials_failed": "apply",
    "conflict": "apply",
    "apply_failed": "apply",
    "applied": "apply",
    "verified": "verify",
    "recovered": "verify",
    "verified_not_live": "verify",
    "verification_failed": "verify",
    "recheck_requested": "verify",
    "delegation_warning": "verify",
    "resolver_view": "verify",
    "probe_checked": "probes",
    "rollback_requested": "rollback",
}
_PALETTE = ("#2563eb", "#9333ea", "#0d9488", "#c2410c", "#be185d", "#4d7c0f")


def _text(value: Any) -> str:
    return "(none)" if value is None or value == "" else str(value)


def describe(record: AuditRecord) -> str:
    """One plain sentence for an event (not yet escaped)."""
    d = record.details
    who = record.actor
    kind = record.kind
    if kind == "planned":
        what = "the rollback" if d.get("kind") == "rollback" else "the change"
        return f"{who} requested {what} (plan {str(d.get('digest', ''))[:12]}, path {_text(d.get('path'))})."
    if kind == "approved":
        return f"{who} approved plan {str(d.get('digest', ''))[:12]}."
    if kind == "approval_refused":
        reason = str(d.get("reason", ""))
        return f"{who} tried to approve and was refused: {_REFUSALS.get(reason, reason)}."
    if kind == "quorum_reached":
        return f"Quorum reached ({_text(d.get('approvers'))})."
    if kind == "denied":
        return f"{who} denied the change."
    if kind == "apply_started":
        return "Apply started."
    if kind == "credentials_leased":
        return (
            f"Leased short-lived credentials from {_text(d.get('source'))} "
            f"(lease {_text(d.get('lease_id'))}, TTL {_text(d.get('ttl_seconds'))} s)."
        )
    if kind == "credentials_revoked":
        return f"Revoked lease {_text(d.get('lease_id'))}."
    if kind == "credentials_revoke_failed":
        return (
            f"Could not revoke lease {_text(d.get('lease_id'))}; it expires in "
            f"{_text(d.get('expires_in_seconds'))} s. {_text(d.get('error'))}"
        )
    if kind == "credentials_failed":
        return f"Could not lease credentials from {_text(d.get('source'))}: {_text(d.get('error'))}"
    if kind == "conflict":
        return f"Nothing applied: the record changed after the plan. {_text(d.get('error'))}"
    if kind == "apply_failed":
        return f"Apply through {_text(d.get('path'))} failed: {_text(d.get('error'))}"
    if kind == "applied":
        return f"Applied through {_text(d.get('path'))} in {_text(d.get('apply_ms'))} ms."
    if kind == "server_checked":
        serves = "serves" if d.get("served") else "does NOT serve"
        after = f" {_seconds(d.get('seconds'))} after the apply" if d.get("served") else ""
        return (
            f"{_text(d.get('server'))} {serves} {_text(d.get('name'))} {_text(d.get('type'))}"
            f"{after} (answer: {_text(d.get('answer'))})."
        )
    if kind in ("verified", "recovered"):
        return f"Served by every authoritative server ({kind}) after {_seconds(d.get('elapsed_seconds'))}."
    if kind == "verification_failed":
        return f"Verification failed; servers still behind: {_text(d.get('lagging'))}."
    if kind == "emergency_approved":
        return f"{who} approved their own request under the emergency clause."
    if kind == "credentials_must_rotate":
        return (
            f"Opened {_text(d.get('source'))} (lease {_text(d.get('lease_id'))}): these credentials are now "
            "exposed to the bot and must be rotated after the incident."
        )
    if kind == "path_failed":
        return f"Change path {_text(d.get('path'))} failed: {_text(d.get('error'))}"
    if kind == "probe_checked":
        verdict = "passed" if d.get("ok") else "FAILED"
        probe = _text(d.get("probe") or d.get("name"))
        return f"Liveness probe {probe} of {_text(d.get('target'))} {verdict}: {_text(d.get('detail'))}"
    if kind == "delegation_warning":
        return f"Delegation warning: {_text(d.get('warning'))}"
    if kind == "resolver_view":
        return f"Resolver {_text(d.get('resolver'))} answers {_text(d.get('answer'))}."
    if kind == "rollback_requested":
        return f"{who} asked to roll this change back (rollback request {_text(d.get('rollback'))})."
    facts = ", ".join(f"{k}={v}" for k, v in sorted(d.items()))
    return f"{kind.replace('_', ' ')} by {who}" + (f": {facts}" if facts else "") + "."


def _outcome(record: AuditRecord) -> str:
    if record.kind == "server_checked":
        return "ok" if record.details.get("served") else "bad"
    if record.kind == "probe_checked":
        return "ok" if record.details.get("ok") else "bad"
    if record.kind in _SUCCESS:
        return "ok"
    if record.kind in _FAILURE:
        return "bad"
    return "step"


def _time(at: datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}.{at.microsecond // 1000:03d} UTC"


def _seconds(value: Any) -> str:
    """A recorded duration for people: milliseconds below a second."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return _text(value)
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _elapsed(seconds: float) -> str:
    if seconds < 1:
        return f"+{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"+{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"+{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"+{hours}h{minutes:02d}m"


# --- the timeline chart -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Lane:
    key: str
    label: str


_CHART_WIDTH = 1188  # the page's content width: the chart fits without scrolling up to ~36 events


def _owner_strip(
    records: Sequence[AuditRecord], colors: dict[str, str], left: float, col: float, y: float
) -> list[str]:
    """A coloured strip above the lanes saying which request each column belongs to."""
    parts = [f'<text class="axis-label" x="10" y="{y + 11}">Request id</text>']
    runs: list[tuple[str, int, int]] = []  # (request id, first column, last column)
    for i, r in enumerate(records):
        if runs and runs[-1][0] == r.request_id:
            runs[-1] = (r.request_id, runs[-1][1], i)
        else:
            runs.append((r.request_id, i, i))
    for request_id, first, last in runs:
        x, w = left + col * first + 1, col * (last - first + 1) - 2
        parts.append(
            f'<rect class="owner" x="{x:.1f}" y="{y}" width="{w:.1f}" height="16" rx="2" '
            f'fill="{colors.get(request_id, "#64748b")}"><title>{escape(request_id)}</title></rect>'
        )
        if w >= 7 * len(request_id):
            parts.append(f'<text class="owner-label" x="{x + 5:.1f}" y="{y + 12}">{escape(request_id)}</text>')
    return parts


def _lanes(records: Sequence[AuditRecord]) -> list[_Lane]:
    servers: list[str] = []
    for r in records:
        server = str(r.details.get("server", "")) if r.kind == "server_checked" else ""
        if server and server not in servers:
            servers.append(server)
    lanes = [_Lane("request", "Request"), _Lane("approvals", "Approvals"), _Lane("apply", "Credentials & apply")]
    lanes += [_Lane(f"server:{s}", f"Server {s}") for s in servers]
    lanes.append(_Lane("verify", "Verification"))
    if any(_lane_key(r) == "probes" for r in records):
        lanes.append(_Lane("probes", "Liveness probes"))
    lanes.append(_Lane("rollback", "Rollback"))
    if any(_lane_key(r) == "other" for r in records):
        lanes.append(_Lane("other", "Other"))
    return lanes


def _lane_key(record: AuditRecord) -> str:
    if record.kind == "server_checked":
        return f"server:{record.details.get('server', '')}"
    return _LANE_OF.get(record.kind, "other")


def timeline_svg(records: Sequence[AuditRecord], requests: Sequence[RequestView]) -> str:
    """An inline SVG: one column per event (in order), one lane per phase and per server."""
    if not records:
        return '<p class="muted">No events were recorded for this selection.</p>'
    lanes = _lanes(records)
    lane_y = {lane.key: i for i, lane in enumerate(lanes)}
    colors = {view.stored.request.id: _PALETTE[i % len(_PALETTE)] for i, view in enumerate(requests)}
    kinds = {view.stored.request.id: view.stored.request.kind for view in requests}
    left, top, lane_h, bottom = 160.0, 56.0, 44.0, 110.0
    right = 56.0  # room for the last rotated time label
    col = max(30.0, min(64.0, (_CHART_WIDTH - left - right) / len(records)))
    width = int(left + col * len(records) + right)
    height = int(top + lane_h * len(lanes) + bottom)
    start = records[0].at

    def cx(i: int) -> float:
        return left + col * i + col / 2

    def cy(key: str) -> float:
        return top + lane_h * lane_y[key] + lane_h / 2

    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="timeline-title">',
        '<title id="timeline-title">Timeline of the recorded events, one column per event</title>',
    ]
    for i, lane in enumerate(lanes):
        y = top + lane_h * i
        shade = "lane-even" if i % 2 == 0 else "lane-odd"
        parts.append(
            f'<g class="lane" data-lane="{escape(lane.key)}"><rect class="{shade}" x="0" y="{y}" '
            f'width="{width}" height="{lane_h}"/><text class="lane-label" x="10" y="{y + lane_h / 2 + 4}">'
            f"{escape(lane.label)}</text></g>"
        )
    parts.extend(_owner_strip(records, colors, left, col, top - 40))
    for i in range(len(records)):
        parts.append(
            f'<line class="guide" x1="{cx(i):.1f}" y1="{top}" x2="{cx(i):.1f}" y2="{top + lane_h * len(lanes)}"/>'
        )
    # Rollback requests: one bar across all their columns in the rollback lane.
    for request_id, kind in kinds.items():
        columns = [i for i, r in enumerate(records) if r.request_id == request_id]
        if kind is RequestKind.ROLLBACK and columns:
            x1, x2, y = cx(columns[0]), cx(columns[-1]), cy("rollback")
            parts.append(
                f'<g class="rollback-span" data-request="{escape(request_id)}"><rect x="{x1:.1f}" y="{y - 5:.1f}" '
                f'width="{max(x2 - x1, 2):.1f}" height="10" rx="5" fill="{colors[request_id]}" opacity="0.35"/>'
                f'<text class="span-label" x="{x1 + 6:.1f}" y="{y - 9:.1f}">rollback {escape(request_id)}</text></g>'
            )
    # Propagation: from the apply to each server's answer.
    last_applied: dict[str, int] = {}
    for i, r in enumerate(records):
        if r.kind == "applied":
            last_applied[r.request_id] = i
        elif r.kind == "server_checked" and r.request_id in last_applied:
            x1, x2, y = cx(last_applied[r.request_id]), cx(i), cy(_lane_key(r))
            served = bool(r.details.get("served"))
            label = f"served in {_seconds(r.details.get('seconds'))}" if served else "NOT served"
            server = escape(str(r.details.get("server")))
            parts.append(
                f'<g class="propagation {"ok" if served else "bad"}" data-server="{server}"'
                f' data-request="{escape(r.request_id)}"><rect x="{x1:.1f}" y="{y - 3:.1f}" '
                f'width="{max(x2 - x1, 2):.1f}" height="6" rx="3"/>'
                f'<text class="bar-label" x="{(x1 + x2) / 2:.1f}" y="{y + 16:.1f}">{escape(label)}</text></g>'
            )
    # The events themselves; labels alternate below and above the marks within a lane so neighbours never collide.
    labelled: dict[str, int] = {}
    for i, r in enumerate(records):
        key = _lane_key(r)
        x, y = cx(i), cy(key)
        outcome = _outcome(r)
        tip = f"#{r.seq} {_time(r.at)} — {describe(r)}"
        mark = (
            f'<path class="mark {outcome}" d="M{x - 6:.1f},{y - 6:.1f} L{x + 6:.1f},{y + 6:.1f} '
            f'M{x + 6:.1f},{y - 6:.1f} L{x - 6:.1f},{y + 6:.1f}"/>'
            if outcome == "bad"
            else f'<circle class="mark {outcome}" cx="{x:.1f}" cy="{y:.1f}" r="6"/>'
        )
        label = ""
        if r.kind != "server_checked":  # the propagation bar carries that label
            below = labelled.get(key, 0) % 2 == 0
            labelled[key] = labelled.get(key, 0) + 1
            short = _SHORT.get(r.kind, r.kind.replace("_", " "))
            label = f'<text class="mark-label" x="{x:.1f}" y="{y + 18 if below else y - 10:.1f}">{escape(short)}</text>'
        parts.append(
            f'<g class="event" data-seq="{r.seq}" data-kind="{escape(r.kind)}" data-request="{escape(r.request_id)}">'
            f"<title>{escape(tip)}</title>{mark}{label}</g>"
        )
        when = f"{r.at:%H:%M:%S} {_elapsed((r.at - start).total_seconds())}" if i else f"{r.at:%H:%M:%S}"
        ty = top + lane_h * len(lanes) + 10
        parts.append(
            f'<text class="time" x="{x - 3:.1f}" y="{ty}" transform="rotate(55 {x - 3:.1f} {ty})">{escape(when)}</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="swatch" style="background:{colors[v.stored.request.id]}"></span>'
        f"{escape(v.stored.request.id)} ({escape(v.stored.request.kind.value)}) "
        for v in requests
    )
    return (
        f'<div class="chart">{"".join(parts)}</div>'
        f'<p class="legend">{legend}<span class="dot ok"></span>succeeded <span class="dot step"></span>step '
        f'<span class="cross">✕</span>refused or failed</p>'
    )


# --- the page -----------------------------------------------------------------------------------

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #0f172a; margin: 0;
  background: #f8fafc; }
main { max-width: 1240px; margin: 0 auto; padding: 24px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid #cbd5e1; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.muted { color: #64748b; } code, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
.verdict { padding: 12px 16px; border-radius: 8px; margin: 16px 0; font-weight: 600; }
.verdict.good { background: #dcfce7; border: 1px solid #16a34a; }
.verdict.bad { background: #fee2e2; border: 1px solid #dc2626; }
.note { background: #fef9c3; border: 1px solid #ca8a04; padding: 8px 12px; border-radius: 8px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; background: #fff; }
th, td { border: 1px solid #e2e8f0; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f1f5f9; font-weight: 600; }
td.num, td.time, td.nowrap { white-space: nowrap; } td.num { text-align: right; }
.reason { white-space: pre-wrap; background: #fff; border-left: 4px solid #94a3b8; padding: 6px 10px; margin: 4px 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 13px; background: #e2e8f0; }
.badge.ok { background: #dcfce7; } .badge.bad { background: #fee2e2; }
.chart { overflow-x: auto; background: #fff; border: 1px solid #e2e8f0; border-radius: 8px; }
.timeline .lane-even { fill: #f8fafc; } .timeline .lane-odd { fill: #eef2f7; }
.timeline .lane-label, .timeline .axis-label { font-size: 13px; font-weight: 600; fill: #334155; }
.timeline .owner-label { font-size: 11px; font-weight: 600; fill: #fff; }
.timeline .guide { stroke: #e2e8f0; stroke-width: 1; }
.timeline .mark.ok { fill: #16a34a; stroke: #14532d; } .timeline .mark.step { fill: #3b82f6; stroke: #1e3a8a; }
.timeline .mark.bad { stroke: #dc2626; stroke-width: 3.5; fill: none; }
.timeline .mark-label { font-size: 10px; text-anchor: middle; fill: #334155; }
.timeline .time { font-size: 10px; fill: #475569; }
.timeline .propagation.ok rect { fill: #86efac; } .timeline .propagation.bad rect { fill: #fca5a5; }
.timeline .bar-label, .timeline .span-label { font-size: 10px; fill: #166534; text-anchor: middle; }
.timeline .propagation.bad .bar-label { fill: #991b1b; font-weight: 700; }
.timeline .span-label { text-anchor: start; fill: #581c87; }
.legend { font-size: 13px; color: #334155; }
.swatch { display: inline-block; width: 14px; height: 10px; margin: 0 4px 0 10px; border-radius: 2px; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin: 0 4px 0 12px; }
.dot.ok { background: #16a34a; } .dot.step { background: #3b82f6; }
.cross { color: #dc2626; font-weight: 700; margin: 0 4px 0 12px; }
footer { margin-top: 40px; font-size: 13px; color: #64748b; }
"""


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """Cells are already-escaped HTML; headers are plain text."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    thead = f"<thead><tr>{head}</tr></thead>" if headers else ""
    body = "".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    return f'<table class="{cls}">{thead}<tbody>{body}</tbody></table>'


def _badge(good: bool, yes: str, no: str) -> str:
    return f'<td><span class="badge {"ok" if good else "bad"}">{yes if good else no}</span></td>'


def _td(value: object, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{escape(str(value))}</td>"


def _verdict(v: ChainVerification) -> str:
    if v.ok:
        text = (
            f"Audit chain verified: {v.events} events (1–{v.head.seq}); every event matches its hash "
            "and follows the one before it."
        )
        if v.checkpoints:
            text += f" {len(v.checkpoints)} signed checkpoint(s) match; events 1–{v.covered_seq} are as signed."
        return f'<div class="verdict good" id="verdict">{escape(text)}</div>'
    first = v.first_bad_seq
    where = f"first bad event: seq {first}" if first is not None else "a checkpoint does not verify"
    detail = v.problems[0].text if v.problems else next(c.text for c in v.checkpoints if not c.signature_valid)
    text = f"Audit chain FAILED verification ({where}): {detail} See “Audit chain verification” below."
    return f'<div class="verdict bad" id="verdict">{escape(text)}</div>'


def _request_section(view: RequestView, records: Sequence[AuditRecord]) -> str:
    request, plan = view.stored.request, view.stored.plan
    state = view.stored.state.value
    state_cls = "ok" if state in ("verified", "recovered") else ("bad" if state not in ("pending_approval",) else "")
    facts = [
        ("Kind", request.kind.value + (f" of {request.rollback_of}" if request.rollback_of else "")),
        ("Requested by", str(request.requester)),
        ("Requested at", _time(request.created_at)),
        ("Zone", request.zone),
        ("Change path", plan.path),
        ("Plan digest", plan.digest()),
    ]
    rows = [[f"<th>{escape(k)}</th>", _td(v, "mono" if k == "Plan digest" else "")] for k, v in facts]
    changes = [
        [
            _td(c.name),
            _td(c.rtype.value),
            _td(c.before.describe() if c.before else "(none)"),
            _td(c.after.describe() if c.after else "(deleted)"),
        ]
        for c in plan.changes
    ]
    approvals = [
        [_td(str(a.approver)), _td(_time(a.at), "time"), _td(a.plan_digest[:16] + "…", "mono")] for a in view.approvals
    ]
    return (
        f'<section class="request" id="request-{escape(request.id)}">'
        f'<h3>{escape(request.id)} <span class="badge {state_cls}">{escape(state)}</span></h3>'
        f'<div class="reason" title="Reason, exactly as typed">{escape(request.reason)}</div>'
        f"{_table([], rows, 'facts')}"
        f"<h4>Planned change</h4>{_table(['Name', 'Type', 'Before', 'After'], changes)}"
        f"<h4>Approvals</h4>"
        + (
            _table(["Approver", "At", "Approved plan"], approvals)
            if approvals
            else '<p class="muted">No approvals recorded.</p>'
        )
        + f'<p class="muted">{len([r for r in records if r.request_id == request.id])} events recorded.</p></section>'
    )


def _event_table(records: Sequence[AuditRecord]) -> str:
    if not records:
        return '<p class="muted">No events.</p>'
    start = records[0].at
    rows = [
        [
            _td(r.seq, "num"),
            _td(_time(r.at), "time"),
            _td(_elapsed((r.at - start).total_seconds()) if i else "start", "num"),
            _td(r.request_id, "nowrap"),
            _td(r.actor, "nowrap"),
            _td(r.kind, "nowrap"),
            _td(describe(r)),
        ]
        for i, r in enumerate(records)
    ]
    return _table(["Seq", "Recorded at", "Elapsed", "Request", "Actor", "Event", "What happened"], rows, "events")


def _propagation_table(records: Sequence[AuditRecord]) -> str:
    rows = [
        [
            _td(r.request_id),
            _td(r.details.get("server", "")),
            _td(f"{r.details.get('name', '')} {r.details.get('type', '')}"),
            f'<td><span class="badge {"ok" if r.details.get("served") else "bad"}">'
            f"{'served' if r.details.get('served') else 'NOT served'}</span></td>",
            _td(_seconds(r.details.get("seconds")) if r.details.get("served") else "—", "num"),
            _td(_text(r.details.get("answer"))),
        ]
        for r in records
        if r.kind == "server_checked"
    ]
    if not rows:
        return '<p class="muted">No server was checked (nothing was applied).</p>'
    return _table(["Request", "Server", "Record", "Result", "After the apply", "Last answer"], rows, "propagation")


def _verification_section(v: ChainVerification, records: Sequence[AuditRecord]) -> str:
    summary = [
        ["<th>Events in the chain</th>", _td(v.events, "num")],
        ["<th>Last event</th>", _td(f"seq {v.head.seq}, hash {v.head.hash}", "mono")],
        ["<th>chain_head row</th>", _td(f"seq {v.recorded_head.seq}, hash {v.recorded_head.hash}", "mono")],
        ["<th>Result</th>", _td("intact" if v.ok else f"FAILED, first bad seq {v.first_bad_seq}")],
    ]
    parts = [_table(["Check", "Value"], summary, "chain")]
    if v.problems:
        parts.append("<h3>Problems</h3>")
        parts.append(_table(["Seq", "Problem"], ([_td(p.seq, "num"), _td(p.text)] for p in v.problems), "problems"))
    parts.append("<h3>Signed checkpoints</h3>")
    if v.checkpoints:
        rows = [
            [
                _td(c.checkpoint.seq, "num"),
                _td(_time(c.checkpoint.at), "time"),
                _td(c.checkpoint.key_id, "mono"),
                _td("valid" if c.signature_valid else "INVALID"),
                f'<td><span class="badge {"ok" if c.matches else "bad"}">{"matches" if c.matches else "MISMATCH"}'
                f"</span> {escape(c.text)}</td>",
            ]
            for c in v.checkpoints
        ]
        parts.append(_table(["Seq", "Signed at", "Key", "Signature", "Chain"], rows, "checkpoints"))
    else:
        parts.append(
            '<p class="note">No signed checkpoints were given, so events removed from the end of the chain or a '
            "chain rebuilt with fresh hashes would not show here. Run the report with "
            "<code>--checkpoints FILE --public-key FILE</code>.</p>"
        )
    parts.append("<h3>This report's events</h3>")
    rows = [
        [
            _td(r.seq, "num"),
            _td(r.prev_hash[:16] + "…", "mono"),
            _td(r.hash, "mono"),
            _badge(r.hash_ok(), "ok", "MISMATCH"),
        ]
        for r in records
    ]
    parts.append(_table(["Seq", "Previous hash", "Hash", "Hash check"], rows, "hashes"))
    return "".join(parts)


def _story(view: RequestView, records: Sequence[AuditRecord]) -> str:
    """A few sentences per request: the short version for people in a hurry."""
    mine = [r for r in records if r.request_id == view.stored.request.id]
    request = view.stored.request
    lines = [
        f"{request.requester} asked for {'a rollback' if request.kind is RequestKind.ROLLBACK else 'a change'} "
        f"at {_time(request.created_at)}."
    ]
    approvers = ", ".join(str(a.approver) for a in view.approvals)
    lines.append(f"Approved by {approvers}." if approvers else "Not approved.")
    refused = [r for r in mine if r.kind == "approval_refused"]
    if refused:
        lines.append(f"{len(refused)} approval attempt(s) refused.")
    applied = next((r for r in mine if r.kind == "applied"), None)
    if applied is not None:
        lines.append(f"Applied at {_time(applied.at)}.")
    checked = [r for r in mine if r.kind == "server_checked"]
    if checked:
        served = sum(1 for r in checked if r.details.get("served"))
        lines.append(f"{served} of {len(checked)} server checks served the new data.")
    lines.append(f"Final state: {view.stored.state.value}.")
    return f"<li><strong>{escape(request.id)}</strong>: {escape(' '.join(lines))}</li>"


def render_report(data: ReportData) -> str:
    records = list(data.records)
    requests = list(data.requests)
    body = [
        f"<h1>{escape(data.title)}</h1>",
        f'<p class="muted">Generated {escape(_time(data.generated_at))} from the breakglass audit log. '
        f"Selection: {escape(data.selection)}. All times are UTC.</p>",
        _verdict(data.verification),
        '<h2>Summary</h2><ul class="story">' + "".join(_story(v, records) for v in requests) + "</ul>",
        "<h2>Timeline</h2>",
        '<p class="muted">Each column is one recorded event, in the order recorded; the time under it is when it '
        "was recorded and how long after the first event. Columns are evenly spaced, not to scale. Bars in a "
        "server lane run from the apply to that server's answer. Hover a mark for the full event.</p>",
        timeline_svg(records, [v for v in requests]),
        "<h2>Requests</h2>",
        *(_request_section(v, records) for v in requests),
        "<h2>Propagation to each authoritative server</h2>",
        _propagation_table(records),
        "<h2>Every event</h2>",
        _event_table(records),
        "<h2>Audit chain verification</h2>",
        _verification_section(data.verification, records),
        "<footer>Check it yourself: <code>breakglass audit verify --config FILE --checkpoints FILE "
        "--public-key FILE</code> recomputes every hash. Hashes are sha256(previous hash ‖ canonical JSON of the "
        "event).</footer>",
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(data.title)} — breakglass audit report</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
