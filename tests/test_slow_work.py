"""Slow work (applying and verifying can take minutes) must never hold up quick work for other people.

Bolt runs every listener's post-ack work on one small thread pool (5 threads by default). If
carrying out a change ran there, five changes verifying against a lagging server would stall
every other command and click of every other person until one of them timed out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cli.localstack import LocalStack
from core.states import RequestState
from sandbox.openbao import OpenBaoServer
from tests.fixtures.bot import WAIT, SlackDriver

STUCK = 6  # more changes verifying at once than Bolt has listener threads


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_changes_stuck_verifying_do_not_hold_up_a_new_request(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao, verify_timeout=45) as stack:
        slack, p = SlackDriver(stack), stack.people
        plans = [
            slack.request(p.alice, f'set stuck{i}.example.test A 192.0.2.{i + 1} reason="INC-7 lagging secondary"')
            for i in range(STUCK)
        ]
        ids = [plan.value or "" for plan in plans]
        stack.bind.stop_secondary()  # every verification now waits for a server that does not answer
        for plan in plans:
            slack.click(p.bob, plan)
            slack.click(p.carol, plan)

        def states() -> list[RequestState]:
            return [stack.service.status(request_id).stored.state for request_id in ids]

        wait_until(lambda: all(s is RequestState.VERIFYING for s in states()), 30, f"{STUCK} changes verifying")

        slack.request(p.alice, 'set fresh.example.test A 192.0.2.99 reason="INC-8 another incident"')

        assert states() == [RequestState.VERIFYING] * STUCK  # the new plan did not wait for any of them
        stack.bind.start_secondary()  # let them finish, so nothing outlives the test
        wait_until(lambda: all(s is RequestState.VERIFIED for s in states()), WAIT, "the stuck changes to verify")
