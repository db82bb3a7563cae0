"""Failpoints: named steps where a crash-recovery test kills the bot, as a power cut would.

Inert unless the environment variable ``BREAKGLASS_FAILPOINT`` names the step; then the
process sends itself SIGKILL there: no ``finally`` blocks, no lease revoked, no goodbye.
A testing aid only (docs/operations.md); never set it on a bot that serves people.
"""

from __future__ import annotations

import os
import signal
import sys

ENV = "BREAKGLASS_FAILPOINT"

# In the order a request passes them.
POINTS = (
    "after_approval",  # quorum reached (`approved`), before the work starts
    "after_lease",  # credentials leased, nothing applied yet
    "mid_apply",  # the change reached DNS; APPLIED not recorded, lease not revoked
    "after_apply",  # APPLIED recorded (`verifying`), lease revoked, verification not started
    "mid_verification",  # after the first polling round, before the verdict is recorded
    "after_ending",  # where the request came to rest is recorded (verified, denied...); nobody told yet
)


def failpoint(name: str) -> None:
    """Kill this process here if ``BREAKGLASS_FAILPOINT`` says so."""
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}")
    if os.environ.get(ENV) != name:
        return
    sys.stderr.write(f"breakglass: failpoint {name} reached: killing process {os.getpid()} with SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
