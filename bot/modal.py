"""The request form: a modal that opens at once and whose submission is answered within Slack's 3 s.

Why a form: at 3 a.m. nobody should have to remember the `/dns set` grammar. The submission is checked
synchronously and cheaply (parsing, the zone, the policy's rules on who, which record and which values; no
DNS traffic) so a mistake comes back inline, next to the field (``response_action: errors``). Planning,
which reads the zone, runs after the ack and posts the plan message in the channel the form came from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ContextBlock,
    ConversationFilter,
    ConversationSelectElement,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    RadioButtonsElement,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.commands import DEFAULT_TTL
from core.errors import ApprovalRefused, BreakglassError, InvalidInput, RefusalReason, SafetyRefused
from core.models import Principal, RecordEdit
from core.records import RecordType, RRset, check_ttl, is_subdomain, normalize_name
from service.changes import ChangeService

CALLBACK_ID = "breakglass_request"  # the modal's callback_id
SHORTCUT_ID = "breakglass_request"  # the global shortcut's callback_id (see docs/slack.md)
MAX_ZONES = 100  # a static select holds at most 100 options
MAX_ERROR_CHARS = 300

# block ids of the form's inputs (also the keys of inline errors)
ZONE, OPERATION, NAME, TYPE, VALUES, TTL, REASON, TICKET, CHANNEL = (
    "zone", "operation", "name", "type", "values", "ttl", "reason", "ticket", "channel",
)  # fmt: skip
SET, DELETE = "set", "delete"


@dataclass(frozen=True)
class FormRequest:
    """A submission that passed the fast checks: what to plan, and where to post the plan."""

    channel: str
    edits: tuple[RecordEdit, ...]
    reason: str


class FormErrors(Exception):
    """Inline errors for the modal: input block id -> what to fix."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = {key: _short(text) for key, text in errors.items()}


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _zone_label(zone: str) -> str:
    return zone.rstrip(".") or "."


def request_modal(zones: Sequence[str], channel: str | None) -> dict[str, Any]:
    """The form. ``channel`` is where the plan goes; without one (a shortcut, a DM) the form asks for it."""
    zone_options = [Option(text=_zone_label(z), value=z) for z in zones[:MAX_ZONES]]
    type_options = [Option(text=t.value, value=t.value) for t in RecordType]
    operations = [
        Option(text="Replace the records with these values", value=SET),
        Option(text="Delete the records", value=DELETE),
    ]
    blocks: list[Any] = [
        ContextBlock(
            elements=[
                MarkdownTextObject(text="The plan is posted for approval; nothing changes before the approvers agree.")
            ]
        ),
        InputBlock(
            block_id=ZONE,
            label="Zone",
            element=StaticSelectElement(
                action_id=ZONE,
                placeholder="Pick a zone",
                options=zone_options,
                initial_option=zone_options[0] if len(zone_options) == 1 else None,
            ),
        ),
        InputBlock(
            block_id=NAME,
            label="Name",
            element=PlainTextInputElement(action_id=NAME, placeholder="api  (or api.example.com, or @ for the apex)"),
            hint="Relative to the zone, or fully qualified inside it.",
        ),
        InputBlock(
            block_id=TYPE,
            label="Type",
            element=StaticSelectElement(action_id=TYPE, options=type_options, initial_option=type_options[0]),
        ),
        InputBlock(
            block_id=OPERATION,
            label="Change",
            element=RadioButtonsElement(action_id=OPERATION, options=operations, initial_option=operations[0]),
        ),
        InputBlock(
            block_id=VALUES,
            label="Values",
            optional=True,
            element=PlainTextInputElement(action_id=VALUES, multiline=True, max_length=3000),
            hint='One value per line. TXT: the text itself. MX: "10 mx.example.com". Leave empty to delete.',
        ),
        InputBlock(
            block_id=TTL,
            label="TTL (seconds)",
            optional=True,
            element=NumberInputElement(
                action_id=TTL, is_decimal_allowed=False, initial_value=str(DEFAULT_TTL), min_value="1"
            ),
        ),
        InputBlock(
            block_id=REASON,
            label="Reason",
            element=PlainTextInputElement(
                action_id=REASON, multiline=True, max_length=1000, placeholder="What and why: approvers read this"
            ),
        ),
        InputBlock(
            block_id=TICKET,
            label="Ticket or incident",
            optional=True,
            element=PlainTextInputElement(action_id=TICKET, max_length=100, placeholder="INC-123"),
            hint="Added to the reason, where rules that require a ticket look for it.",
        ),
    ]
    if channel is None:
        blocks.append(
            InputBlock(
                block_id=CHANNEL,
                label="Post the plan in",
                element=ConversationSelectElement(
                    action_id=CHANNEL, filter=ConversationFilter(include=["public", "private"])
                ),
            )
        )
    view = View(
        type="modal",
        callback_id=CALLBACK_ID,
        title="Break-glass DNS change",
        submit="Plan change",
        close="Cancel",
        private_metadata=json.dumps({"channel": channel}) if channel else "",
        blocks=blocks,
    )
    return view.to_dict()


def form_channel(channel: str | None) -> str | None:
    """Where a form opened from ``channel`` posts its plan; a direct message is no place for approvers."""
    return channel if channel and not channel.startswith("D") else None


# --- reading a submission ---------------------------------------------------------------------


def _value(values: dict[str, Any], block: str) -> Any:
    """The state of one input (Slack nests it as values[block_id][action_id])."""
    return (values.get(block) or {}).get(block) or {}


def _text(values: dict[str, Any], block: str) -> str:
    return str(_value(values, block).get("value") or "").strip()


def _selected(values: dict[str, Any], block: str) -> str:
    option = _value(values, block).get("selected_option") or {}
    return str(option.get("value") or "")


def record_name(text: str, zone: str) -> str:
    """``api``, ``@`` or ``api.example.com`` -> the absolute name inside ``zone``; raises InvalidInput."""
    text = text.strip()
    if text == "@":
        return zone
    absolute = normalize_name(text)
    if is_subdomain(absolute, zone):
        return absolute
    if text.endswith(".") or "." in text:
        raise InvalidInput(
            f"`{text}` is not in zone {_zone_label(zone)}.",
            hint=f"Write it relative to the zone (api) or as a name ending in {_zone_label(zone)}.",
        )
    return normalize_name(f"{text}.{zone}")


def _values(text: str, rtype: RecordType) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if rtype is RecordType.TXT:  # people paste zone-file style "quoted text"
        lines = [line[1:-1] if len(line) >= 2 and line[0] == line[-1] == '"' else line for line in lines]
    return lines


def read_submission(view: dict[str, Any]) -> FormRequest:
    """Parse the submitted form; raises FormErrors naming every field that is wrong."""
    values = view.get("state", {}).get("values", {})
    errors: dict[str, str] = {}
    metadata = json.loads(view.get("private_metadata") or "{}")
    channel = str(metadata.get("channel") or _value(values, CHANNEL).get("selected_conversation") or "")
    if not channel:
        errors[CHANNEL] = "Pick the channel where approvers will see the plan."
    zone = _selected(values, ZONE)
    if not zone:
        errors[ZONE] = "Pick a zone."
    try:
        rtype = RecordType.parse(_selected(values, TYPE) or "A")
    except InvalidInput as error:
        errors[TYPE] = error.user_text()
        rtype = RecordType.A
    name = ""
    if zone:
        try:
            name = record_name(_text(values, NAME), zone)
        except InvalidInput as error:
            errors[NAME] = error.user_text()
    ttl = DEFAULT_TTL
    raw_ttl = _text(values, TTL)
    try:
        ttl = check_ttl(int(raw_ttl)) if raw_ttl else DEFAULT_TTL
    except ValueError:
        errors[TTL] = f"`{raw_ttl}` is not a whole number of seconds."
    except InvalidInput as error:
        errors[TTL] = error.user_text()
    lines = _values(_text(values, VALUES), rtype)
    after: RRset | None = None
    if _selected(values, OPERATION) == DELETE:
        if lines:
            errors[VALUES] = "Leave the values empty to delete the records, or choose “Replace”."
    elif not lines:
        errors[VALUES] = "Give at least one value (one per line)."
    elif name:
        try:
            after = RRset.build(name, rtype, ttl, lines)
        except InvalidInput as error:
            errors[VALUES] = error.user_text()
    ticket, reason = _text(values, TICKET), _text(values, REASON)
    if not reason:
        errors[REASON] = "A reason is required: what and why, so approvers can decide."
    elif ticket and ticket not in reason:
        reason = f"{ticket} {reason}"
    if errors:
        raise FormErrors(errors)
    return FormRequest(channel, (RecordEdit(name, rtype, after),), reason)


def check_submission(service: ChangeService, requester: Principal, view: dict[str, Any]) -> FormRequest:
    """``read_submission`` plus the service's fast policy checks, mapped onto the field to fix."""
    form = read_submission(view)
    try:
        service.preflight(requester, form.edits, form.reason)
    except BreakglassError as error:
        raise FormErrors({_field_of(error): error.user_text()}) from None
    return form


def _field_of(error: BreakglassError) -> str:
    """Which input a refusal is about, so it is shown next to what the person must change."""
    if isinstance(error, ApprovalRefused):
        return NAME if error.reason is RefusalReason.NO_MATCHING_RULE else ZONE
    if isinstance(error, SafetyRefused):
        if error.message.startswith("TTL "):
            return TTL
        return VALUES if "outside" in error.message else NAME
    if isinstance(error, InvalidInput) and "reason" in error.message.lower():
        return REASON
    return NAME


def submitted_channel(view: dict[str, Any]) -> str | None:
    """The channel a submitted form posts to (for telling its submitter what happened), if any."""
    try:
        return read_submission(view).channel
    except FormErrors:
        return None
