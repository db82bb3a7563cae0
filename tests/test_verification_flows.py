"""Verification as responders see it: slow secondaries, IPv6, liveness of the new target, rechecks, rollback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from cli.localstack import LocalStack
from core.events import EventKind
from core.records import RecordType
from core.states import RequestState
from sandbox.net import free_port
from sandbox.openbao import OpenBaoServer
from tests.fixtures.bind import out_of_band
from tests.fixtures.bot import SlackDriver, is_plan_post

NAME = "api.example.test."


def approve_both(stack: LocalStack, slack: SlackDriver, command: str) -> tuple[str, str]:
    """Request as alice, approve as bob and carol; returns the request id and the verdict text."""
    approve = slack.request(stack.people.alice, command)
    slack.click(stack.people.bob, approve)
    slack.click(stack.people.carol, approve)
    return approve.value or "", slack.verdict(approve)


@contextmanager
def listening(port: int) -> Iterator[None]:
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(16)
        yield


def test_without_notify_the_secondary_is_slow_and_the_delay_is_measured(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao, notify=False, verify_timeout=15) as stack:
        slack = SlackDriver(stack)
        request_id, verdict = approve_both(stack, slack, f'set {NAME} A 203.0.113.10 reason="INC-5"')
        assert verdict.startswith("Verified")
        times = {
            e.details["server"]: e.details["seconds"]
            for e in stack.service.status(request_id).events
            if e.kind is EventKind.SERVER_CHECKED
        }
        primary, secondary = times[str(stack.bind.primary)], times[str(stack.bind.secondary)]
        assert isinstance(primary, float) and isinstance(secondary, float)
        assert primary < 0.5  # the primary took the UPDATE itself
        assert secondary > primary + 0.5  # the secondary only learnt it at its next SOA refresh (2 s)
        # While it polled, one progress message in the thread said how far it had got.
        assert any("Checking every authoritative server" in str(c.args.get("text")) for c in stack.fake.calls())


def test_ipv6_addresses_are_verified_as_well_as_ipv4(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao, ipv6=True) as stack:
        slack = SlackDriver(stack)
        _, verdict = approve_both(stack, slack, f'set {NAME} A 203.0.113.10 reason="INC-6"')
        assert verdict.startswith("Verified")
        for server in (stack.bind.primary, stack.bind.secondary, stack.bind.primary_v6, stack.bind.secondary_v6):
            assert f":white_check_mark: `{server}`" in verdict


def test_recovery_needs_a_live_target_and_verify_again_declares_it(openbao: OpenBaoServer) -> None:
    port = free_port()
    probe = f'[[zones.probes]]\nkind = "tcp"\nport = {port}\ntimeout_seconds = 1\n'
    with LocalStack(vault=openbao, zone_tables=probe) as stack:
        slack = SlackDriver(stack)
        request_id, verdict = approve_both(stack, slack, f'set {NAME} A 127.0.0.1 reason="INC-7 move to the standby"')
        assert verdict.startswith("Verified, but the new target is not live")
        status = stack.service.status(request_id)
        assert status.stored.state is RequestState.VERIFIED_NOT_LIVE  # served everywhere, nobody listening
        thread = [str(c.args.get("text")) for c in stack.fake.calls("chat.postMessage") if c.args.get("thread_ts")]
        assert any(t.startswith("Verified, but the new target is not live") and "refused" in t for t in thread)

        with listening(port):
            slack.click(stack.people.bob, stack.fake.find_button(action_id="recheck"))
            stack.fake.wait_for(
                "chat.postMessage", timeout=60, predicate=lambda c: str(c.args.get("text", "")).startswith("Recovered")
            )
        status = stack.service.status(request_id)
        assert status.stored.state is RequestState.RECOVERED
        kinds = [e.kind for e in status.events]
        assert EventKind.RECHECK_REQUESTED in kinds and kinds[-1] is EventKind.RECOVERED


def test_rollback_is_refused_when_someone_changed_the_record_since(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao) as stack:
        slack = SlackDriver(stack)
        request_id, verdict = approve_both(stack, slack, f'set {NAME} A 203.0.113.10 reason="INC-8"')
        assert verdict.startswith("Verified")
        rollback = stack.fake.find_button(action_id="rollback")
        out_of_band(stack.bind, (NAME, "A", 60, ["198.51.100.20"]))
        slack.click(stack.people.bob, rollback)
        refusal = slack.ephemeral_to(stack.people.bob)
        assert f"changed after {request_id} was applied" in refusal and "198.51.100.20" in refusal
        assert len(slack.top_level_posts()) == 1  # no rollback request was created


def test_rollback_by_command_restores_the_previous_value(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao) as stack:
        slack = SlackDriver(stack)
        request_id, verdict = approve_both(stack, slack, f'set {NAME} A 203.0.113.10 reason="INC-9"')
        assert verdict.startswith("Verified")
        slack.command(stack.people.bob, f"rollback {request_id.lower()}")
        stack.fake.wait_for("chat.postMessage", count=2, timeout=60, predicate=is_plan_post)
        approve = stack.fake.find_button(action_id="approve")
        slack.click(stack.people.alice, approve)
        slack.click(stack.people.carol, approve)
        assert slack.verdict(approve).startswith("Verified")
        previous = stack.service.status(request_id).stored.plan.changes[0].before
        assert previous is not None and previous.values == ("192.0.2.10",)
        assert stack.service.verify_now(NAME, RecordType.A, previous).served_everywhere


def test_discovery_verifies_on_the_servers_named_by_the_zone_ns_set(openbao: OpenBaoServer) -> None:
    # The zone's only NS is ns1.example.test. (127.0.0.1); map it to the primary's port. The
    # secondary is not in the NS set, so discovery must not check it: the fixed list would.
    tables = '[zones.verification]\ndiscover = true\nns_ports = {{ "ns1.example.test." = {primary_port} }}\n'
    with LocalStack(vault=openbao, zone_tables=tables) as stack:
        slack = SlackDriver(stack)
        _, verdict = approve_both(stack, slack, f'set {NAME} A 203.0.113.10 reason="INC-10"')
        assert verdict.startswith("Verified")
        assert f"`{stack.bind.primary}`" in verdict and f"`{stack.bind.secondary}`" not in verdict
