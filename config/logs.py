"""structlog set-up, shared by the bot and the command line (kept light: no adapters imported)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure_logging(json_logs: bool = True, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Logs go to stderr (never stdout, which carries command output): JSON for machines, or key=value."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
