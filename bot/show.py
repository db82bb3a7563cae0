"""`/dns show NAME [TYPE]`: what every authoritative server answers now, and what each change path holds.

Why: in an incident the first question is "what is actually served?", the second whether the change paths
agree with it (a write that reached one control plane but not the servers, or not the backup path, shows up
here before anyone requests a change on top of it). Ephemeral: only the person who asked sees it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.render import escape, rrset_summary
from core.models import Principal
from core.records import RecordType, RRset
from core.verification import AnswerStatus, ServerAnswer
from service.changes import ChangeService, PathView

DEFAULT_TYPES = (RecordType.A, RecordType.AAAA, RecordType.CNAME, RecordType.TXT, RecordType.MX)
MAX_SECTION_CHARS = 2900
VALUE_BUDGET = 400  # characters per rrset: a 60-value set is summarised, not cut off


@dataclass(frozen=True)
class TypeView:
    """One record type of the name: each server's answer and each change path's read."""

    rtype: RecordType
    answers: tuple[ServerAnswer, ...]
    paths: tuple[PathView, ...]
    problems: tuple[str, ...] = ()  # servers that could not even be asked (discovery problems)

    def consensus(self) -> RRset | None:
        """The rrset most servers answer (None: most answer that there is none)."""
        served = [a.rrset for a in self.answers if a.status is AnswerStatus.ANSWER]
        return Counter(served).most_common(1)[0][0] if served else None

    def agreed(self) -> bool:
        return bool(self.answers) and all(
            a.status is AnswerStatus.ANSWER and a.rrset == self.answers[0].rrset for a in self.answers
        )


@dataclass(frozen=True)
class ShowReport:
    name: str
    views: tuple[TypeView, ...]
    absent: tuple[RecordType, ...]  # asked for implicitly, and no server has any


def show_record(service: ChangeService, name: str, rtype: RecordType | None, person: Principal) -> ShowReport:
    """Ask every authoritative server once (no waiting), then read through every change path.

    Without a type the common types are asked, and the paths are read only for types some server has.
    """
    views: list[TypeView] = []
    absent: list[RecordType] = []
    for kind in (rtype,) if rtype is not None else DEFAULT_TYPES:
        outcome = service.verify_now(name, kind, None, timeout=0)
        answers = tuple(r.last_answer for r in outcome.report.results)
        something = outcome.server_problems or any(
            a.status is not AnswerStatus.ANSWER or a.rrset is not None for a in answers
        )
        if rtype is None and not something:
            absent.append(kind)
            continue
        views.append(TypeView(kind, answers, service.path_views(name, kind, person), outcome.server_problems))
    return ShowReport(name, tuple(views), tuple(absent))


def _server_line(answer: ServerAnswer, consensus: RRset | None) -> str:
    if answer.status is not AnswerStatus.ANSWER:
        return f":x: `{answer.server}` {escape(answer.describe()[:300])}"
    mark = ":white_check_mark:" if answer.rrset == consensus else ":warning:"
    shown = rrset_summary(answer.rrset, None, VALUE_BUDGET) if answer.rrset else "_(no record)_"
    return f"{mark} `{answer.server}` {shown}"


def _path_line(view: PathView, consensus: RRset | None, agreed: bool) -> str:
    if view.problem:
        return f"• {escape(view.path)}: _{escape(view.problem[:300])}_"
    shown = rrset_summary(view.rrset, None, VALUE_BUDGET) if view.rrset else "_(no record)_"
    if view.rrset != consensus:
        verdict = "*differs from what the servers answer*"
    else:
        verdict = "same as the servers" if agreed else "same as the majority answer"
    return f"• {escape(view.path)}: {shown} ({verdict})"


def type_lines(name: str, view: TypeView) -> list[str]:
    consensus, agreed = view.consensus(), view.agreed()
    head = "every server gives the same answer" if agreed else ":warning: the servers do not all agree"
    lines = [f"*{escape(name)} {view.rtype}*: {head}", "_Authoritative servers, asked now:_"]
    lines += [_server_line(a, consensus) for a in view.answers]
    lines += [f":x: {escape(p[:300])}" for p in view.problems]
    lines.append("_Change paths, read now:_")
    lines += [_path_line(p, consensus, agreed) for p in view.paths]
    return lines


def _absent_line(report: ShowReport) -> str:
    return f"No server has {', '.join(t.value for t in report.absent)} records for {escape(report.name)}."


def show_blocks(report: ShowReport) -> list[dict[str, Any]]:
    blocks: list[Block] = []
    for view in report.views:
        blocks += _sections(type_lines(report.name, view))
    if report.absent:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_absent_line(report))]))
    if not blocks:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_absent_line(report))))
    return [b.to_dict() for b in blocks[:50]]


def show_text(report: ShowReport) -> str:
    """Fallback text (notifications, screen readers): the same lines, without layout."""
    lines = [line for view in report.views for line in type_lines(report.name, view)]
    if report.absent:
        lines.append(_absent_line(report))
    return "\n".join(lines)


def _sections(lines: Sequence[str]) -> list[Block]:
    """Lines packed into sections of at most MAX_SECTION_CHARS (Slack allows 3000 per section)."""
    blocks: list[Block] = []
    chunk: list[str] = []
    for line in lines:
        if chunk and sum(len(x) + 1 for x in chunk) + len(line) > MAX_SECTION_CHARS:
            blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
    return blocks
