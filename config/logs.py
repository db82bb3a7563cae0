"""structlog set-up, shared by the bot and the command line (kept light: no adapters imported).

Every line carries the ids bound with ``bind_log_ids`` (the Slack delivery id, the breakglass
request id), so one incident's lines can be found together; values under secret-looking keys
and anything shaped like a Slack or Vault token are replaced before a line is written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"
# Keys whose string values are never logged, whatever the caller passed.
_SECRET_KEY = re.compile(r"token|secret|password|passwd|api[_-]?key|authorization|private[_-]?key", re.IGNORECASE)
# Values that are secrets wherever they appear: Slack bot/user/app tokens, Vault service/batch tokens.
_SECRET_VALUE = re.compile(r"\b(?:xox[abposr]-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}|hv[sbr]\.[A-Za-z0-9_-]{20,})")


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: a safety net under the rule that nothing secret is passed to a logger."""
    for key, value in list(event_dict.items()):
        if isinstance(value, str | bytes) and _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
        elif isinstance(value, str) and _SECRET_VALUE.search(value):
            event_dict[key] = _SECRET_VALUE.sub(REDACTED, value)
    return event_dict


def bind_log_ids(**ids: str | None) -> None:
    """Bind ids for the rest of the current context; callers run each delivery in its own context copy."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in ids.items() if v})


def configure_logging(json_logs: bool = True, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Logs go to stderr (never stdout, which carries command output): JSON for machines, or key=value.

    Libraries that log through the standard ``logging`` module (Bolt, slack_sdk) are rendered the
    same way, with the same context ids, instead of as bare text.
    """
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    handler = _route_stdlib_logging(shared, renderer, level, stream or sys.stderr)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=lambda *_: _LineLogger(handler),
        cache_logger_on_first_use=False,
    )


class _StdlibHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so configuring again replaces it."""


class _LineLogger:
    """structlog's output: each line in one write, under the stdlib handler's lock.

    Why: both write to one stream from many threads. structlog's own PrintLogger writes the line and
    its newline separately, under another lock, so a library's line could land in between and turn
    two JSON lines into one unparsable line.
    """

    def __init__(self, handler: _StdlibHandler) -> None:
        self._handler = handler

    def msg(self, message: str) -> None:
        with self._handler.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            self._handler.stream.write(message + "\n")
            self._handler.flush()

    debug = info = warning = warn = error = critical = exception = fatal = failure = err = log = msg


def _route_stdlib_logging(
    shared: list[structlog.typing.Processor], renderer: structlog.typing.Processor, level: int, stream: TextIO
) -> _StdlibHandler:
    handler = _StdlibHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(level, logging.INFO))  # library DEBUG output can include request bodies
    return handler
