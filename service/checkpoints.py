"""A signed audit checkpoint whenever a request or a drill ends.

A checkpoint signs the audit chain head (store/checkpoints.py). Events after the newest
checkpoint can be cut off the end of the chain by someone who can write to the database,
without a gap anyone could see; so every way a request ends (verified or not, failed, denied,
expired) and every drill signs one straight away, through this one function.
"""

from __future__ import annotations

import structlog

from core.errors import BreakglassError
from core.ports import AuditCheckpointer, CheckpointPublisher

log = structlog.get_logger("breakglass.service")


def take_checkpoint(
    checkpointer: AuditCheckpointer | None, publisher: CheckpointPublisher | None, subject: str
) -> BreakglassError | None:
    """Sign the chain head now (the checkpointer keeps its copy) and publish it to ``publisher``.

    ``subject`` is the request or drill that just ended, for the log. Returns why no checkpoint
    was made, if none was (logged here; the outcome stands, and the next checkpoint covers it).
    Without a checkpointer (no ``[audit] signing_key_file``) there is nothing to do.
    """
    if checkpointer is None:
        return None
    try:
        text = checkpointer.checkpoint()
        if publisher is not None:
            publisher.checkpoint(text)
    except BreakglassError as error:
        log.error("audit.checkpoint_failed", request_id=subject, error=error.user_text())
        return error
    return None
