"""Several `breakglass serve` replicas on one PostgreSQL database, as real processes.

Slack delivers each command and click to whichever replica its load balancer picks, so any
replica must be able to take any delivery, and a burst of duplicate approval clicks spread
over every replica must still apply the change exactly once: one claim (a conditional UPDATE
that only one transaction can win), one credentials lease, one DNS UPDATE.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dns.message
import dns.query
import dns.rdatatype
import pytest

from bot.commands import ChangeCommand, parse
from cli.localstack import ZONE, LocalStack
from core.events import EventKind
from core.models import Principal, PrincipalSource
from core.records import RecordType, RRset
from core.states import RequestState
from providers.authoritative import DnsAuthoritativeQuerier
from sandbox.bot_process import BotProcess, wait_all_ready
from sandbox.fake_slack import Button, SlackCall
from sandbox.openbao import OpenBaoServer
from sandbox.slack_signing import DEFAULT_CHANNEL, SlackClientSimulator
from store.audit import AuditLog
from tests.fixtures.bot import WAIT, is_plan_post, update_of
from tests.fixtures.store import fresh_postgres_database

pytestmark = pytest.mark.postgres

REPLICAS = 3
BURST = 1000  # approval clicks, almost all duplicates
SENDERS = 48  # concurrent HTTP clients playing Slack's delivery side
DUPLICATE = ("already approved", "approvals are closed")  # what a clicker whose click did not count is told
EXECUTORS = 8  # threads per process, each calling execute() on the same approved request

# One process of the execute() race: build the service as `breakglass serve` does, say "ready", wait for
# "go" on stdin, then call execute() from several threads at once; print how many calls carried it out.
EXECUTE_RACE = f"""
import json, sys, threading
from pathlib import Path
from rich.console import Console
import bootstrap
from cli.console_notifier import ConsoleNotifier
from config import load_config
bootstrap.configure_logging()  # to stderr, as serve does: stdout carries the result
settings = load_config(Path(sys.argv[1]))
service = bootstrap.build_service(settings, bootstrap.build_engine(settings))
notifier = ConsoleNotifier(Console(file=sys.stderr))
carried_out = []
def run():
    carried_out.append(service.execute(sys.argv[2], notifier).outcome is not None)
threads = [threading.Thread(target=run) for _ in range({EXECUTORS})]
print("ready", flush=True)
sys.stdin.readline()
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({{"calls": len(carried_out), "carried_out": sum(carried_out)}}), flush=True)
"""


@dataclass
class Replicas:
    stack: LocalStack
    bots: list[BotProcess]
    slack: list[SlackClientSimulator]  # people in Slack, one simulator per replica it delivers to


@pytest.fixture(scope="module")
def replicas(openbao: OpenBaoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """One database, one BIND pair, one OpenBao, one fake Slack, and three bot processes serving them."""
    logs = tmp_path_factory.mktemp("replicas")
    with (
        fresh_postgres_database() as url,
        LocalStack(vault=openbao, database_url=url, serve_bot=False, verify_timeout=10.0) as stack,
    ):
        bots = [BotProcess.for_stack(stack, name=f"replica-{n}", log_dir=logs) for n in range(1, REPLICAS + 1)]
        try:
            wait_all_ready(bots)
            yield Replicas(stack, bots, [bot.simulator(stack.fake, timeout=WAIT) for bot in bots])
        finally:
            for bot in bots:
                bot.close()


def eventually(check: Callable[[], bool], what: Callable[[], str]) -> None:
    """Wait (up to WAIT) for ``check``; on time-out, fail saying ``what()`` was seen instead."""
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {WAIT:.0f}s; {what()}")
        time.sleep(0.05)


def request_on(replicas: Replicas, replica: int, text: str) -> Button:
    """alice runs a change command through ``replica``; returns the Approve button of its plan message."""
    fake = replicas.stack.fake
    before = len([c for c in fake.calls("chat.postMessage") if is_plan_post(c)])
    reply = replicas.slack[replica].command(text, replicas.stack.people.alice)
    assert reply.status == 200, reply
    fake.wait_for("chat.postMessage", count=before + 1, timeout=WAIT, predicate=is_plan_post)
    return fake.find_button(action_id="approve", channel=DEFAULT_CHANNEL)  # the newest plan message's


def verdict(replicas: Replicas, plan: Button) -> str:
    def final(call: SlackCall) -> bool:
        return call.args.get("thread_ts") == plan.message_ts and str(call.args.get("text", "")).startswith(
            ("Verified", "Recovered", "Verification failed", "Nothing was applied")
        )

    return str(replicas.stack.fake.wait_for("chat.postMessage", timeout=WAIT, predicate=final)[-1].args["text"])


def served(stack: LocalStack, name: str) -> list[RRset | None]:
    querier = DnsAuthoritativeQuerier(timeout_seconds=1.0)
    return [querier.query(s, name, RecordType.A).rrset for s in (stack.bind.primary, stack.bind.secondary)]


def soa_serials(stack: LocalStack) -> list[int]:
    """The zone's SOA serial as the primary and the secondary serve it."""
    serials = []
    for server in (stack.bind.primary, stack.bind.secondary):
        response = dns.query.udp(
            dns.message.make_query(ZONE, dns.rdatatype.SOA), server.host, port=server.port, timeout=2
        )
        serials.append(int(response.answer[0][0].serial))
    return serials


def status_on(replicas: Replicas, replica: int, request_id: str) -> str:
    """What ``/dns status <id>`` sent to ``replica`` answers (through the command's response_url)."""
    slack = replicas.slack[replica]
    assert slack.command(f"status {request_id}", replicas.stack.people.alice).status == 200
    hook = slack.last_hook
    calls = replicas.stack.fake.wait_for("response_url", timeout=WAIT, predicate=lambda c: c.hook == hook)
    return str(calls[-1].args.get("text", ""))


def applied_here(bot: BotProcess, request_id: str) -> bool:
    """``bot`` logged the verdict on ``request_id``: it carried the request out."""
    return any(line.get("request_id") == request_id for line in bot.events_logged("request.verified"))


def kinds(stack: LocalStack, request_id: str) -> Counter[EventKind]:
    return Counter(e.kind for e in stack.service.status(request_id).events)


def test_any_replica_takes_any_delivery_of_one_request(replicas: Replicas) -> None:
    stack, people = replicas.stack, replicas.stack.people
    plan = request_on(replicas, 0, 'set one.example.test A 203.0.113.21 ttl=60 reason="INC-8 replica one"')
    request_id = plan.value or ""
    assert replicas.slack[1].click(plan, people.bob).status == 200  # approved on replica 2
    stack.fake.wait_for("chat.update", timeout=WAIT, predicate=update_of(plan, "needs 1 more approver"))
    assert "Awaiting approval" in status_on(replicas, 2, request_id)  # replica 3 sees replica 2's approval
    assert replicas.slack[2].click(plan, people.carol).status == 200  # and completes the quorum
    assert verdict(replicas, plan).startswith(("Verified", "Recovered"))
    assert (
        served(stack, "one.example.test.") == [RRset.build("one.example.test.", RecordType.A, 60, ["203.0.113.21"])] * 2
    )
    assert "Verified on every authoritative server" in status_on(replicas, 2, request_id)
    applied_by = [bot.name for bot in replicas.bots if applied_here(bot, request_id)]
    assert applied_by == ["replica-3"]  # the replica whose click completed the quorum carried it out


def test_a_thousand_duplicate_approval_clicks_over_three_replicas_apply_once(replicas: Replicas) -> None:
    stack, people, fake = replicas.stack, replicas.stack.people, replicas.stack.fake
    serials_before = soa_serials(stack)
    plan = request_on(replicas, 0, 'set api.example.test A 203.0.113.77 ttl=60 reason="INC-8 duplicate clicks"')
    request_id = plan.value or ""
    approvers = (people.bob, people.carol)
    told_before = len([c for c in fake.calls("chat.postEphemeral") if c.args.get("user") in approvers])
    deliveries_before = [len(bot.events_logged("slack.delivery")) for bot in replicas.bots]

    def click(n: int) -> int:
        return replicas.slack[n % REPLICAS].click(plan, approvers[n % 2]).status  # all 6 (replica, person) pairs

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=SENDERS) as senders:
        statuses = Counter(senders.map(click, range(BURST)))
    burst_seconds = time.perf_counter() - started
    assert statuses == {200: BURST}  # every click was acknowledged

    def duplicates_told() -> list[SlackCall]:
        return [c for c in fake.calls("chat.postEphemeral") if c.args.get("user") in approvers][told_before:]

    eventually(lambda: len(duplicates_told()) >= BURST - 2, lambda: f"{len(duplicates_told())} clickers told")
    outcome = verdict(replicas, plan)
    settled_seconds = time.perf_counter() - started
    assert outcome.startswith(("Verified", "Recovered")), outcome
    assert len(duplicates_told()) == BURST - 2  # every click but the two that counted was refused, and said so
    for call in duplicates_told():
        assert any(phrase in str(call.args["text"]) for phrase in DUPLICATE), call.args["text"]

    events = stack.service.status(request_id).events
    counted = Counter(e.kind for e in events)
    assert counted[EventKind.APPROVED] == 2 and counted[EventKind.QUORUM_REACHED] == 1
    assert counted[EventKind.APPROVAL_REFUSED] == BURST - 2
    assert counted[EventKind.APPLY_STARTED] == 1 and counted[EventKind.APPLIED] == 1
    apply_leases = [e for e in events if e.kind is EventKind.CREDENTIALS_LEASED and "purpose" not in e.details]
    assert len(apply_leases) == 1 and counted[EventKind.CREDENTIALS_REVOKED] == counted[EventKind.CREDENTIALS_LEASED]
    assert stack.service.status(request_id).stored.state in (RequestState.VERIFIED, RequestState.RECOVERED)
    assert (
        served(stack, "api.example.test.") == [RRset.build("api.example.test.", RecordType.A, 60, ["203.0.113.77"])] * 2
    )
    assert soa_serials(stack) == [s + 1 for s in serials_before]  # one RFC2136 UPDATE: one serial step
    assert AuditLog(stack.engine).verify().ok  # 1,000 appends from three processes: one chain, no gaps, no forks

    taken = [len(bot.events_logged("slack.delivery")) - before for bot, before in zip(replicas.bots, deliveries_before)]
    assert sorted(taken) == sorted(len(range(r, BURST, REPLICAS)) for r in range(REPLICAS))  # each took its share
    applied_by = [bot.name for bot in replicas.bots if applied_here(bot, request_id)]
    assert len(applied_by) == 1
    for bot in replicas.bots:
        assert not [line for line in bot.log_lines() if line.get("level") in ("error", "critical")], bot.name
        assert bot.running, f"{bot.name} exited: {bot.stderr_tail()}"
    assert "Verified on every authoritative server" in status_on(replicas, 2, request_id)
    print(
        f"\n{BURST} clicks over {REPLICAS} replicas: acked in {burst_seconds:.2f}s, settled in {settled_seconds:.2f}s; "
        f"acks {dict(statuses)}; per replica {taken}; applied by {applied_by[0]}"
    )


def test_execute_called_at_once_from_three_processes_claims_the_apply_once(replicas: Replicas) -> None:
    """The claim itself, without the approval logic in front of it: 3 x 8 concurrent execute() calls."""
    stack, people = replicas.stack, replicas.stack.people
    command = parse('set race.example.test A 203.0.113.99 ttl=60 reason="INC-8 execute race"')
    assert isinstance(command, ChangeCommand)
    slack = PrincipalSource.SLACK
    stored = stack.service.request_change(Principal(slack, people.alice), command.edits, command.reason)
    request_id = stored.request.id
    stack.service.approve(request_id, Principal(slack, people.bob))
    assert stack.service.approve(request_id, Principal(slack, people.carol)).ready_to_apply  # and left approved
    serials_before = soa_serials(stack)

    racers = [
        subprocess.Popen(
            [sys.executable, "-c", EXECUTE_RACE, str(stack.config_path), request_id],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        for _ in range(REPLICAS)
    ]
    try:
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
        for racer in racers:  # as close to "at once" as three processes get
            assert racer.stdin is not None
            racer.stdin.write("go\n")
            racer.stdin.flush()
        results = [json.loads(racer.communicate(timeout=WAIT)[0]) for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    assert [r["calls"] for r in results] == [EXECUTORS] * REPLICAS
    assert sum(r["carried_out"] for r in results) == 1  # the other 23 calls found it claimed and returned
    counted = kinds(stack, request_id)
    assert counted[EventKind.APPLY_STARTED] == 1 and counted[EventKind.APPLIED] == 1
    assert stack.service.status(request_id).stored.state in (RequestState.VERIFIED, RequestState.RECOVERED)
    assert soa_serials(stack) == [s + 1 for s in serials_before]
