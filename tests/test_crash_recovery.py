"""Crash recovery: a bot killed with SIGKILL at any step of a request, and what the next bot makes of it.

The store tests prove the claim rules on SQLite and PostgreSQL: a request whose bot went silent is
taken over by exactly one of several sweepers at once, and one whose bot still heartbeats is never
taken. The kill tests run ``breakglass serve`` as a real process on PostgreSQL with a failpoint
(service/failpoints.py), let it die of SIGKILL at that step, start a fresh one, and check what
people would: the final state, what both BIND servers serve, that nothing was applied twice, that
no request or event was lost, the audit chain, the unrevoked lease, and the thread in Slack.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest

from cli.localstack import ZONE, LocalStack
from cli.report_html import ReportData, RequestView, render_report
from core.events import Event, EventKind, NewEvent
from core.records import RecordType, RRset
from core.states import IN_FLIGHT, RESTING, RequestState
from providers.authoritative import DnsAuthoritativeQuerier
from sandbox.bot_process import BotProcess, wait_all_ready
from sandbox.fake_slack import Button
from sandbox.openbao import OpenBaoServer
from sandbox.slack_signing import DEFAULT_CHANNEL
from service.claims import WorkClaims
from service.failpoints import ENV, POINTS
from store.audit import AuditLog, EventFilter
from store.sql import SqlRequestStore, make_engine
from tests.fixtures.bind import out_of_band
from tests.fixtures.bot import WAIT, is_plan_post, update_of
from tests.test_store import planned

S = RequestState
STALE_AFTER = 2.0  # seconds; the bots heartbeat every 0.5 s and sweep every 1 s


# --- the claim rules, on SQLite and PostgreSQL ------------------------------------------------------


def _in_flight(store: SqlRequestStore, state: RequestState = S.APPLYING) -> str:
    request, _ = planned(store)
    store.transition(request.id, S.PENDING_APPROVAL, S.APPROVED, NewEvent(request.id, "t", EventKind.QUORUM_REACHED))
    if state is not S.APPROVED:
        store.transition(request.id, S.APPROVED, S.APPLYING, NewEvent(request.id, "t", EventKind.APPLY_STARTED))
    store.claim(request.id, state, "dead-bot")
    return request.id


def _taken_event(request_id: str, owner: str) -> NewEvent:
    return NewEvent(request_id, "system", EventKind.RECOVERY_STARTED, {"owner": owner})


def _later() -> datetime:
    """A cutoff after every write so far: everything written before it counts as silent."""
    time.sleep(0.01)
    return datetime.now(UTC)


def test_a_silent_claim_is_stale_and_a_fresh_claim_or_a_recent_state_change_is_not(store: SqlRequestStore) -> None:
    silent = _in_flight(store)
    cutoff = _later()
    fresh = _in_flight(store)  # claimed after the cutoff
    unclaimed, _ = planned(store)  # moved into flight after the cutoff by a bot that keeps no claims
    store.transition(
        unclaimed.id, S.PENDING_APPROVAL, S.APPROVED, NewEvent(unclaimed.id, "t", EventKind.QUORUM_REACHED)
    )

    found = store.stale(IN_FLIGHT, cutoff)

    assert [c.request_id for c in found] == [silent]
    assert found[0].state is S.APPLYING and found[0].owner == "dead-bot" and found[0].last_seen < cutoff
    later = store.stale(IN_FLIGHT, _later())  # with time, every one of them goes silent
    assert {c.request_id for c in later} == {silent, fresh, unclaimed.id}
    assert [c.owner for c in later if c.request_id == unclaimed.id] == [None]


def test_a_heartbeat_keeps_a_claim_and_reports_the_ones_taken_over(store: SqlRequestStore) -> None:
    kept, lost = _in_flight(store), _in_flight(store)
    cutoff = _later()
    (stale_lost,) = [c for c in store.stale(IN_FLIGHT, cutoff) if c.request_id == lost]
    assert store.take_over(stale_lost, "other-bot", cutoff, _taken_event(lost, "other-bot"))

    assert store.heartbeat("dead-bot", {kept, lost}) == {kept}  # the one taken over is no longer its own

    assert [c.request_id for c in store.stale(IN_FLIGHT, cutoff)] == []  # both beat after the cutoff
    assert store.holds(kept, "dead-bot") and not store.holds(lost, "dead-bot") and store.holds(lost, "other-bot")
    (stale_kept,) = [c for c in store.stale(IN_FLIGHT, _later()) if c.request_id == kept]
    assert not store.take_over(stale_kept, "third-bot", cutoff, _taken_event(kept, "third-bot"))  # it beat since
    assert [e.kind for e in store.events(lost)].count(EventKind.RECOVERY_STARTED) == 1
    assert [e.kind for e in store.events(kept)].count(EventKind.RECOVERY_STARTED) == 0


def test_a_request_that_left_flight_is_never_taken_over(store: SqlRequestStore) -> None:
    request_id = _in_flight(store)
    cutoff = _later()
    (claim,) = store.stale(IN_FLIGHT, cutoff)
    store.transition(request_id, S.APPLYING, S.APPLY_FAILED, NewEvent(request_id, "t", EventKind.APPLY_FAILED))

    assert not store.take_over(claim, "other-bot", cutoff, _taken_event(request_id, "other-bot"))
    assert store.stale(IN_FLIGHT, _later()) == []


def _sweep(store: SqlRequestStore, owner: str, stale_after: float) -> list[str]:
    """One sweeper's round, as service/recovery.py does it: find the stale ones, try to take each."""
    cutoff = datetime.now(UTC) - timedelta(seconds=stale_after)
    taken = []
    for claim in store.stale(IN_FLIGHT, cutoff):
        if store.take_over(claim, owner, cutoff, _taken_event(claim.request_id, owner)):
            taken.append(claim.request_id)
    return taken


def test_eight_threads_sweeping_at_once_take_each_stale_request_exactly_once(store: SqlRequestStore) -> None:
    ids = [_in_flight(store, state) for state in (S.APPROVED, S.APPLYING, S.APPLYING)]
    time.sleep(0.2)
    barrier = threading.Barrier(8)
    won: list[list[str]] = [[] for _ in range(8)]

    def sweeper(n: int) -> None:
        barrier.wait()
        won[n] = _sweep(store, f"sweeper-{n}", 0.1)

    threads = [threading.Thread(target=sweeper, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(i for taken in won for i in taken) == sorted(ids)
    for request_id in ids:
        assert [e.kind for e in store.events(request_id)].count(EventKind.RECOVERY_STARTED) == 1
        (owner,) = [f"sweeper-{n}" for n, taken in enumerate(won) if request_id in taken]
        assert store.holds(request_id, owner)


def _sweep_in_process(url: str, owner: str, barrier: Any, results: Any) -> None:
    """Child process: its own engine and connection, then sweep together with the others."""
    engine = make_engine(url)
    try:
        store = SqlRequestStore(engine)
        store.stale(IN_FLIGHT, datetime.now(UTC))  # connect before the start line, so the race is on the UPDATE
        barrier.wait(timeout=60)
        results.put(_sweep(store, owner, 0.1))
    except BaseException as exc:
        results.put(repr(exc))
    finally:
        engine.dispose()


def test_four_processes_sweeping_at_once_take_a_stale_request_exactly_once(
    store: SqlRequestStore, database_url: str
) -> None:
    request_id = _in_flight(store)
    time.sleep(0.2)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [
        ctx.Process(target=_sweep_in_process, args=(database_url, f"proc-{n}", barrier, results)) for n in range(4)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(timeout=30)

    assert sorted(outcomes, key=len) == [[], [], [], [request_id]]
    assert [e.kind for e in store.events(request_id)].count(EventKind.RECOVERY_STARTED) == 1


def test_a_request_whose_bot_heartbeats_is_never_taken_while_sweepers_keep_trying(store: SqlRequestStore) -> None:
    request_id = _in_flight(store)
    stale_after = 0.4
    work = WorkClaims(store, owner="live-bot", interval=stale_after / 4)
    taken: list[str] = []
    rounds = 0
    with work.holding(request_id, S.APPLYING):
        deadline = time.monotonic() + 5 * stale_after  # long enough to be stale five times over without a beat
        while time.monotonic() < deadline:
            taken += _sweep(store, "sweeper", stale_after)
            rounds += 1
            time.sleep(0.02)
    work.stop()

    assert rounds > 20 and taken == []
    assert store.holds(request_id, "live-bot")
    time.sleep(stale_after + 0.1)  # and once the bot stops beating, the request is taken over
    assert _sweep(store, "sweeper", stale_after) == [request_id]


def _at_rest(store: SqlRequestStore, state: RequestState = S.APPLY_FAILED) -> str:
    request_id = _in_flight(store)
    store.transition(request_id, S.APPLYING, state, NewEvent(request_id, "t", EventKind.APPLY_FAILED))
    return request_id


def test_a_request_at_rest_is_untold_until_announced_once(store: SqlRequestStore) -> None:
    told, untold = _at_rest(store), _at_rest(store)
    in_flight = _in_flight(store)
    assert store.announce(told, S.APPLY_FAILED)
    window = (_later(), datetime.now(UTC) - timedelta(days=1))

    assert store.unannounced(RESTING, *window) == [untold]  # not the told one, not the one still in flight
    assert store.unannounced(RESTING, window[0] - timedelta(seconds=5), window[1]) == []  # too recent to judge
    assert not store.announce(told, S.APPLY_FAILED)  # once only
    assert not store.announce(in_flight, S.APPLY_FAILED)  # not where it is
    assert not store.announce(untold, S.VERIFIED)
    assert store.unannounced(RESTING, *window) == [untold]


def test_eight_threads_announcing_one_ending_at_once_let_exactly_one_tell_it(store: SqlRequestStore) -> None:
    request_id = _at_rest(store)
    barrier = threading.Barrier(8)
    won: list[bool] = [False] * 8

    def announcer(n: int) -> None:
        barrier.wait()
        won[n] = store.announce(request_id, S.APPLY_FAILED)

    threads = [threading.Thread(target=announcer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert won.count(True) == 1
    assert store.unannounced(RESTING, _later(), datetime.now(UTC) - timedelta(days=1)) == []


# --- kill -9 at each step, then a fresh bot -------------------------------------------------------------

NAME = "api.example.test."
OLD = RRset.build(NAME, RecordType.A, 300, ["192.0.2.10"])
NEW = RRset.build(NAME, RecordType.A, 60, ["203.0.113.10"])
SET_NEW = f'set {NAME} A 203.0.113.10 ttl=60 reason="INC-77 primary LB down"'


@dataclass(frozen=True)
class Expected:
    killed_in: RequestState  # the state the dead bot left the request in
    final: RequestState
    applied: bool  # the change reached DNS (once)
    lease_left: bool  # the dead bot held a lease it never revoked
    ends_with: str  # the last thread message starts with this


EXPECTED = {
    "after_approval": Expected(S.APPROVED, S.VERIFIED, True, False, "Verified"),
    "after_lease": Expected(S.APPLYING, S.APPLY_FAILED, False, True, "Nothing was applied: breakglass stopped before"),
    "mid_apply": Expected(S.APPLYING, S.VERIFIED, True, True, "Verified"),
    "after_apply": Expected(S.VERIFYING, S.VERIFIED, True, False, "Verified"),
    "mid_verification": Expected(S.VERIFYING, S.VERIFIED, True, False, "Verified"),
}
TOLD_LATE = "after_ending"  # the request came to rest; the bot died before telling anyone (its own test)
assert (*EXPECTED, TOLD_LATE) == POINTS


def recovery_config(stack: LocalStack) -> tuple[str, str]:
    return stack.default_path(), f"[recovery]\nstale_after_seconds = {STALE_AFTER}\n"


@pytest.fixture
def crash_stack(openbao: OpenBaoServer, postgres_url: str) -> Iterator[LocalStack]:
    """BIND pair, OpenBao, fake Slack and a fresh PostgreSQL database; the bots are started by each test."""
    with LocalStack(
        vault=openbao, database_url=postgres_url, serve_bot=False, verify_timeout=10.0, configure=recovery_config
    ) as stack:
        yield stack


def served(stack: LocalStack) -> list[RRset | None]:
    querier = DnsAuthoritativeQuerier(timeout_seconds=1.0)
    return [querier.query(s, NAME, RecordType.A).rrset for s in (stack.bind.primary, stack.bind.secondary)]


def soa_serials(stack: LocalStack) -> list[int]:
    serials = []
    for server in (stack.bind.primary, stack.bind.secondary):
        query = dns.message.make_query(ZONE, dns.rdatatype.SOA)
        serials.append(int(dns.query.udp(query, server.host, port=server.port, timeout=2).answer[0][0].serial))
    return serials


def eventually(check: Callable[[], bool], what: Callable[[], str], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f}s; {what()}")
        time.sleep(0.05)


def thread_texts(stack: LocalStack, plan: Button) -> list[str]:
    return [
        str(c.args.get("text", ""))
        for c in stack.fake.calls("chat.postMessage")
        if c.args.get("thread_ts") == plan.message_ts
    ]


def request_and_approve(stack: LocalStack, bot: BotProcess) -> Button:
    """alice asks through ``bot``; bob and carol approve (carol's click completes the quorum)."""
    slack, people = bot.simulator(stack.fake, timeout=WAIT), stack.people
    assert slack.command(SET_NEW, people.alice).status == 200
    stack.fake.wait_for("chat.postMessage", timeout=WAIT, predicate=is_plan_post)
    plan = stack.fake.find_button(action_id="approve", channel=DEFAULT_CHANNEL)
    assert slack.click(plan, people.bob).status == 200
    stack.fake.wait_for("chat.update", timeout=WAIT, predicate=update_of(plan, "needs 1 more approver"))
    assert slack.click(plan, people.carol).status == 200
    return plan


def killed_at_failpoint(stack: LocalStack, point: str) -> Button:
    """Request and approve through a bot that kills itself at ``point``; returns the plan's Approve button."""
    with BotProcess.for_stack(stack, name="doomed", extra_env={ENV: point}) as doomed:
        plan = request_and_approve(stack, doomed)
        eventually(lambda: not doomed.running, lambda: f"the bot is still running: {doomed.stderr_tail()}")
        assert doomed.kill() == -9  # it died of SIGKILL, at the failpoint
        assert f"failpoint {point} reached" in doomed.stderr()
    return plan


def html_report(stack: LocalStack, request_id: str) -> str:
    """The post-incident report (`breakglass audit report --request ID`) of one request."""
    store, log = SqlRequestStore(stack.engine), AuditLog(stack.engine)
    view = RequestView(store.get(request_id), tuple(store.approvals(request_id)))
    records = tuple(log.records(EventFilter(request_ids=(request_id,))))
    return render_report(ReportData(request_id, request_id, (view,), records, log.verify(), datetime.now(UTC)))


def apply_lease(events: list[Event]) -> Event:
    (lease,) = [e for e in events if e.kind is EventKind.CREDENTIALS_LEASED and "purpose" not in e.details]
    return lease


@pytest.mark.postgres
@pytest.mark.parametrize("point", EXPECTED)
def test_a_bot_killed_at_each_step_is_recovered_by_the_next_without_applying_twice(
    crash_stack: LocalStack, point: str
) -> None:
    stack, expected = crash_stack, EXPECTED[point]
    started = time.perf_counter()
    serials_before = soa_serials(stack)
    plan = killed_at_failpoint(stack, point)
    request_id = plan.value or ""
    killed_at = time.perf_counter()

    left = stack.service.status(request_id)
    assert left.stored.state is expected.killed_in
    events_before = [(e.seq, e.kind) for e in left.events]

    with BotProcess.for_stack(stack, name="restarted") as restarted:
        eventually(
            lambda: stack.service.status(request_id).stored.state is expected.final,
            lambda: f"{request_id} is {stack.service.status(request_id).stored.state}: {restarted.stderr_tail()}",
        )
        stack.fake.wait_for(
            "chat.postMessage", timeout=WAIT,
            predicate=lambda c: c.args.get("thread_ts") == plan.message_ts
            and str(c.args.get("text", "")).startswith(expected.ends_with),
        )  # fmt: skip
        recovered_at = time.perf_counter()
        assert not [line for line in restarted.log_lines() if line.get("level") in ("error", "critical")]
        assert [line["request_id"] for line in restarted.events_logged("recovery.taken_over")] == [request_id]

    status = stack.service.status(request_id)
    events = list(status.events)
    counted = Counter(e.kind for e in events)
    # Nothing lost: the request and every event the dead bot wrote are still there, in order, chained.
    assert [(e.seq, e.kind) for e in events[: len(events_before)]] == events_before
    assert AuditLog(stack.engine).verify().ok
    (taken,) = [e for e in events if e.kind is EventKind.RECOVERY_STARTED]
    assert taken.details["state"] == expected.killed_in.value and taken.seq > events_before[-1][0]

    # Never applied twice: one apply attempt, at most one APPLIED, one serial step or none.
    assert counted[EventKind.APPLY_STARTED] == 1
    assert counted[EventKind.APPLIED] == (1 if expected.applied else 0)
    assert served(stack) == ([NEW, NEW] if expected.applied else [OLD, OLD])
    assert soa_serials(stack) == [s + (1 if expected.applied else 0) for s in serials_before]
    if point == "mid_apply":
        (applied,) = [e for e in events if e.kind is EventKind.APPLIED]
        assert applied.details["found_on_recovery"] is True
    if expected.killed_in is S.VERIFYING or point == "mid_apply":
        (verdict,) = [e for e in events if e.kind is EventKind.VERIFIED]
        assert verdict.details["measured_from"] == "recovery"

    # The lease the dead bot never revoked is reported: audit event and thread line, with its TTL expiry.
    texts = thread_texts(stack, plan)
    (intro,) = [t for t in texts if f"breakglass stopped while {request_id} was `{expected.killed_in.value}`" in t]
    unrevoked = [e for e in events if e.kind is EventKind.LEASE_UNREVOKED]
    if expected.lease_left:
        lease = apply_lease(events)
        assert [e.details["lease_id"] for e in unrevoked] == [lease.details["lease_id"]]
        ttl = timedelta(seconds=int(str(lease.details["ttl_seconds"])))
        assert unrevoked[0].details["expires_at"] == (lease.at + ttl).isoformat()
        assert f"(lease {lease.details['lease_id']}) were never revoked because the bot stopped" in intro
        assert f"expire by their TTL at {lease.at + ttl:%H:%M:%S} UTC" in intro
    else:
        assert unrevoked == [] and "never revoked" not in intro
        assert counted[EventKind.CREDENTIALS_REVOKED] == counted[EventKind.CREDENTIALS_LEASED]
    if not expected.applied:
        assert "Request the change again" in texts[-1]
    report = html_report(stack, request_id)  # the new event kinds render in the post-incident report
    assert "recovery started by system" in report and f"Final state: {expected.final.value}" in report
    assert ("lease unrevoked by system" in report) is expected.lease_left
    print(
        f"\n{point}: killed {killed_at - started:.1f}s after start, recovered {recovered_at - killed_at:.1f}s later "
        f"(restart + {STALE_AFTER:.0f}s stale threshold); test {time.perf_counter() - started:.1f}s"
    )


@pytest.mark.postgres
def test_a_record_changed_by_someone_else_after_a_crash_mid_apply_fails_naming_what_to_check(
    crash_stack: LocalStack,
) -> None:
    stack = crash_stack
    plan = killed_at_failpoint(stack, "after_lease")
    request_id = plan.value or ""
    other = RRset.build(NAME, RecordType.A, 120, ["198.51.100.7"])
    out_of_band(stack.bind, (NAME, "A", 120, ["198.51.100.7"]))  # another operator acts while the bot is down
    eventually(lambda: served(stack) == [other, other], lambda: f"served: {served(stack)}")
    serials = soa_serials(stack)

    with BotProcess.for_stack(stack, name="restarted") as restarted:
        eventually(
            lambda: stack.service.status(request_id).stored.state is S.APPLY_FAILED,
            lambda: f"{request_id} is {stack.service.status(request_id).stored.state}: {restarted.stderr_tail()}",
        )
        (told,) = stack.fake.wait_for(
            "chat.postMessage", timeout=WAIT,
            predicate=lambda c: c.args.get("thread_ts") == plan.message_ts
            and str(c.args.get("text", "")).startswith(":warning: breakglass stopped while applying"),
        )  # fmt: skip

    text = str(told.args["text"])
    assert "whether the change reached DNS cannot be told" in text and "198.51.100.7 (ttl 120)" in text
    assert f"`breakglass verify {NAME} A 203.0.113.10`" in text  # exactly what to check, and how
    assert served(stack) == [other, other] and soa_serials(stack) == serials  # the bot applied nothing
    events = stack.service.status(request_id).events
    (failed,) = [e for e in events if e.kind is EventKind.APPLY_FAILED]
    assert failed.details["recovery"] == "unknown"
    assert [e for e in events if e.kind is EventKind.APPLIED] == []
    assert AuditLog(stack.engine).verify().ok


@pytest.mark.postgres
def test_a_live_bot_verifying_longer_than_the_threshold_is_never_taken_over_by_another(
    openbao: OpenBaoServer, postgres_url: str
) -> None:
    with LocalStack(
        vault=openbao, database_url=postgres_url, serve_bot=False, verify_timeout=3 * STALE_AFTER,
        configure=recovery_config,
    ) as stack:  # fmt: skip
        working, watching = BotProcess.for_stack(stack, name="working"), BotProcess.for_stack(stack, name="watching")
        try:
            wait_all_ready([working, watching])
            stack.bind.stop_secondary()  # verification polls for the whole timeout: 3x the stale threshold
            plan = request_and_approve(stack, working)
            request_id = plan.value or ""
            eventually(
                lambda: stack.service.status(request_id).stored.state is S.VERIFICATION_FAILED,
                lambda: f"{request_id} is {stack.service.status(request_id).stored.state}",
            )
            events = stack.service.status(request_id).events
            assert [e for e in events if e.kind is EventKind.RECOVERY_STARTED] == []
            assert watching.events_logged("recovery.taken_over") == [] and working.running and watching.running
            assert [line["request_id"] for line in working.events_logged("request.verification_failed")] == [request_id]
            verifying = [e for e in events if e.kind in (EventKind.APPLIED, EventKind.VERIFICATION_FAILED)]
            assert (verifying[1].at - verifying[0].at).total_seconds() >= 2 * STALE_AFTER  # it really was that long
        finally:
            working.close()
            watching.close()


@pytest.mark.postgres
def test_a_bot_killed_before_telling_the_thread_how_a_request_ended_leaves_the_telling_to_the_next(
    crash_stack: LocalStack,
) -> None:
    stack = crash_stack
    plan = killed_at_failpoint(stack, TOLD_LATE)
    request_id = plan.value or ""
    assert stack.service.status(request_id).stored.state is S.VERIFIED  # recorded, but nobody was told
    assert not [t for t in thread_texts(stack, plan) if t.startswith("Verified")]
    lead = f"{request_id} is `verified`, but the bot that got it there stopped before telling this thread"

    with BotProcess.for_stack(stack, name="restarted") as restarted:
        stack.fake.wait_for(
            "chat.postMessage", timeout=WAIT,
            predicate=lambda c: c.args.get("thread_ts") == plan.message_ts and lead in str(c.args.get("text", "")),
        )  # fmt: skip
        stack.fake.wait_for("chat.update", timeout=WAIT, predicate=update_of(plan, "Verified on every authoritative"))
        time.sleep(3 * STALE_AFTER)  # three more sweeps: none tells it again
        assert [line["request_id"] for line in restarted.events_logged("recovery.untold_ending")] == [request_id]
        assert restarted.events_logged("recovery.taken_over") == []  # it was at rest: nothing to take over
        assert not [line for line in restarted.log_lines() if line.get("level") in ("error", "critical")]

    assert len([t for t in thread_texts(stack, plan) if lead in t]) == 1
    status = stack.service.status(request_id)
    assert status.stored.state is S.VERIFIED and served(stack) == [NEW, NEW]
    assert Counter(e.kind for e in status.events)[EventKind.APPLIED] == 1
    assert AuditLog(stack.engine).verify().ok
