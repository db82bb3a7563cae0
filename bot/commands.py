"""Parsing `/dns ...` text into typed commands, with errors that say how to fix the input."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from core.errors import InvalidInput
from core.models import RecordEdit
from core.records import RecordType, RRset, normalize_name

DEFAULT_TTL = 300
USAGE = (
    '`/dns set <name> <type> <value> [<value> ...] [ttl=<seconds>] reason="<text>"`\n'
    '`/dns delete <name> <type> reason="<text>"`\n'
    "`/dns status [<request-id>]`   `/dns rollback <request-id>`   `/dns help`"
    "\n`/dns show <name> [<type>]` what every server and change path holds now   `/dns` alone opens a form"
    "\n`/dns drill [<zone>] [path=<name>] [outage]` prove a change path works   `/dns readiness`"
)
_SLACK_LINK = re.compile(r"<(?:https?|mailto):[^|>]*\|([^>]*)>|<(?:https?|mailto):([^|>]*)>")
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


@dataclass(frozen=True)
class ChangeCommand:
    edits: tuple[RecordEdit, ...]
    reason: str


@dataclass(frozen=True)
class StatusCommand:
    request_id: str | None


@dataclass(frozen=True)
class RollbackCommand:
    request_id: str


@dataclass(frozen=True)
class HelpCommand:
    pass


@dataclass(frozen=True)
class RequestFormCommand:
    """`/dns` alone: open the request form (a modal)."""


@dataclass(frozen=True)
class ShowCommand:
    name: str
    rtype: RecordType | None  # None: the common types


@dataclass(frozen=True)
class DrillCommand:
    """`/dns drill [zone] [path=NAME] [outage]`: write and remove a canary record through each change path."""

    zone: str | None = None
    path: str | None = None
    simulate_primary_outage: bool = False


@dataclass(frozen=True)
class ReadinessCommand:
    """`/dns readiness`: could breakglass correct each critical record's routing in time, today?"""


Command = (
    ChangeCommand
    | StatusCommand
    | RollbackCommand
    | HelpCommand
    | RequestFormCommand
    | ShowCommand
    | DrillCommand
    | ReadinessCommand
)


def _clean(text: str) -> str:
    """Undo what Slack does to command text: HTML entities, autolinks, smart quotes."""
    text = _SLACK_LINK.sub(lambda m: m.group(1) or m.group(2), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.translate(_SMART_QUOTES)


def _split(text: str) -> list[str]:
    try:
        return shlex.split(_clean(text))
    except ValueError:
        raise InvalidInput(
            "A quotation mark is not closed.", hint='Put TXT values and the reason in "double quotes".'
        ) from None


def _options(words: list[str], allowed: set[str]) -> tuple[list[str], dict[str, str]]:
    positional: list[str] = []
    options: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if sep and key.lower() in allowed:
            options[key.lower()] = value
        elif sep and key.isidentifier() and key.lower() in {"ttl", "reason"}:
            raise InvalidInput(f"`{key}=` is not accepted by this command.", hint=USAGE)
        else:
            positional.append(word)
    return positional, options


def _reason(options: dict[str, str]) -> str:
    reason = options.get("reason", "").strip()
    if not reason:
        raise InvalidInput("A reason is required.", hint='Add reason="INC-123 what and why" so approvers know why.')
    return reason


def _ttl(options: dict[str, str]) -> int:
    raw = options.get("ttl", str(DEFAULT_TTL))
    if not (raw.isascii() and raw.isdigit()):  # str.isdigit() alone accepts digits int() refuses, like "➎"
        raise InvalidInput(f"ttl=`{raw}` is not a number of seconds.", hint="Example: ttl=60")
    return int(raw)


def parse(text: str) -> Command:
    words = _split(text)
    if not words:
        return RequestFormCommand()
    if words[0].lower() in {"help", "-h", "--help"}:
        return HelpCommand()
    verb, rest = words[0].lower(), words[1:]
    if verb == "set":
        positional, options = _options(rest, {"ttl", "reason"})
        if len(positional) < 3:
            raise InvalidInput("`set` needs a name, a type and at least one value.", hint=USAGE)
        name, rtype = normalize_name(positional[0]), RecordType.parse(positional[1])
        rrset = RRset.build(name, rtype, _ttl(options), positional[2:])
        return ChangeCommand((RecordEdit(name, rtype, rrset),), _reason(options))
    if verb == "delete":
        positional, options = _options(rest, {"reason"})
        if len(positional) != 2:
            raise InvalidInput("`delete` needs exactly a name and a type.", hint=USAGE)
        name, rtype = normalize_name(positional[0]), RecordType.parse(positional[1])
        return ChangeCommand((RecordEdit(name, rtype, None),), _reason(options))
    if verb == "status":
        if len(rest) > 1:
            raise InvalidInput("`status` takes at most one request id.", hint="Example: /dns status BG-7K3Q9X")
        return StatusCommand(rest[0].upper() if rest else None)
    if verb == "show":
        if not 1 <= len(rest) <= 2:
            raise InvalidInput("`show` needs a name and an optional type.", hint="Example: /dns show api.example.com A")
        return ShowCommand(normalize_name(rest[0]), RecordType.parse(rest[1]) if len(rest) == 2 else None)
    if verb == "rollback":
        if len(rest) != 1:
            raise InvalidInput(
                "`rollback` needs the id of the request to undo.", hint="Example: /dns rollback BG-7K3Q9X"
            )
        return RollbackCommand(rest[0].upper())
    if verb == "drill":
        return _drill(rest)
    if verb == "readiness":
        if rest:
            raise InvalidInput("`readiness` takes no arguments.", hint="Example: /dns readiness")
        return ReadinessCommand()
    raise InvalidInput(f"Unknown subcommand `{words[0]}`.", hint=USAGE)


def _drill(words: list[str]) -> DrillCommand:
    outage = {"outage", "--simulate-primary-outage"}
    positional, options = _options([w for w in words if w.lower() not in outage], {"path"})
    if len(positional) > 1:
        raise InvalidInput(
            "`drill` takes at most one zone.", hint="Example: /dns drill example.com path=bind-primary (or outage)"
        )
    zone = normalize_name(positional[0]) if positional else None
    return DrillCommand(zone, options.get("path") or None, any(w.lower() in outage for w in words))
