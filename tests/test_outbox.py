"""The durable Slack outbox: Slack rate-limits, errors and goes down; nothing is lost and order is kept.

Messages are written to a real database (SQLite and PostgreSQL) and delivered over HTTP to the
Slack stand-in, which records when each call arrived. The last test runs a whole request while
Slack's Web API is down, approved out of band with SSH keys, and checks the thread once it is back.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk import WebClient
from sqlalchemy import Engine, select

import bot.outbox as outbox_module
from bot.anchor import MessageRef
from bot.ops import Metrics
from bot.outbox import SENDER_LOCK, Kind, OutboxSender, SenderSettings, SlackOutbox
from cli.localstack import AUDIT_CHANNEL, LocalStack
from config.logs import configure_logging
from core.states import RequestState
from sandbox.bot_process import BotProcess
from sandbox.fake_slack import FakeSlack, SlackCall
from sandbox.net import wait_until
from sandbox.openbao import OpenBaoServer
from sandbox.slack_signing import DEFAULT_CHANNEL
from service.changes import RequestStatus
from store.locks import WorkerLock
from store.outbox import SqlOutbox
from store.schema import outbox as outbox_table
from store.sql import make_engine

WAIT = 60.0  # a condition wait: passing flows return in seconds; only a stuck one waits this long
CHANNEL = "C0OPS"
FAST = SenderSettings(poll_seconds=0.1, first_backoff=0.2, max_backoff=1.0)
BREAKGLASS = str(Path(sys.executable).parent / "breakglass")


def no_requests(request_id: str) -> RequestStatus:
    raise AssertionError(f"these tests post to channels only, not about {request_id}")


@pytest.fixture
def engines(database_url: str) -> Iterator[list[Engine]]:
    """Three engines on one database, as three processes would have: a front door and two bots."""
    made = [make_engine(database_url) for _ in range(3)]
    yield made
    for engine in made:
        engine.dispose()


def sender(engine: Engine, fake: FakeSlack, owner: str, settings: SenderSettings = FAST) -> OutboxSender:
    client = WebClient(token=fake.bot_token, base_url=fake.api_url, retry_handlers=[], timeout=5)
    store = SqlOutbox(engine)
    return OutboxSender(store, WorkerLock(engine, SENDER_LOCK), client, no_requests, owner=owner, settings=settings)


def posted_texts(fake: FakeSlack) -> list[str]:
    return [str(c.args["text"]) for c in fake.calls("chat.postMessage") if c.ok]


def depth(metrics: Metrics) -> float:
    """``breakglass_outbox_depth`` as Prometheus scrapes it."""
    families = text_string_to_metric_families(metrics.render()[0].decode())
    return next(s.value for f in families for s in f.samples if s.name == "breakglass_outbox_depth")


def rows(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(outbox_table).order_by(outbox_table.c.id))]


def attempts_at(fake: FakeSlack, text: str) -> list[SlackCall]:
    return [c for c in fake.calls("chat.postMessage") if c.args.get("text") == text]


# --- Slack down, 429, 5xx, permanent errors -----------------------------------------------------


def test_slack_down_for_a_while_then_every_message_is_delivered_once_in_order(
    engines: list[Engine], fake_slack: FakeSlack
) -> None:
    front = SlackOutbox(SqlOutbox(engines[0]))
    metrics = Metrics()
    metrics.count_outbox_with(front.store.counts)
    bot = sender(engines[1], fake_slack, "bot-1").start()
    try:
        front.post(CHANNEL, "before the outage")
        wait_until(lambda: posted_texts(fake_slack) == ["before the outage"], WAIT, "the first message")
        fake_slack.set_down(True)
        expected = [f"during the outage {i}" for i in range(12)]
        for text in expected:
            front.post(CHANNEL, text)
        wait_until(lambda: rows(engines[0])[1]["attempts"] >= 3, WAIT, "three failed attempts on the head")  # type: ignore[operator]
        assert depth(metrics) == 12  # everything waits behind the head while Slack is down
        assert posted_texts(fake_slack) == ["before the outage"]
        fake_slack.set_down(False)
        wait_until(lambda: depth(metrics) == 0, WAIT, "the outbox to drain")
    finally:
        bot.stop()
    assert posted_texts(fake_slack) == ["before the outage", *expected]
    assert [m.text for m in fake_slack.channel_messages(CHANNEL)] == ["before the outage", *expected]
    stored = rows(engines[0])
    assert all(r["sent_at"] is not None and r["failed_at"] is None for r in stored)
    assert int(str(stored[1]["attempts"])) >= 4 and stored[1]["last_error"] == "HTTP 503"  # why it took that long


def test_a_429_waits_the_retry_after_slack_gives(engines: list[Engine], fake_slack: FakeSlack) -> None:
    front = SlackOutbox(SqlOutbox(engines[0]))
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=2)
    bot = sender(engines[1], fake_slack, "bot-1").start()  # its own backoff would retry after 0.2 s
    try:
        front.post(CHANNEL, "limited")
        front.post(CHANNEL, "behind it")
        wait_until(lambda: posted_texts(fake_slack) == ["limited", "behind it"], WAIT, "both messages")
    finally:
        bot.stop()
    refused, delivered = attempts_at(fake_slack, "limited")
    assert (refused.ok, refused.error) == (False, "ratelimited")
    assert delivered.ok and delivered.at - refused.at >= 2.0  # the Retry-After, not the 0.2 s backoff
    (behind,) = attempts_at(fake_slack, "behind it")
    assert behind.at > delivered.at  # nothing overtook the limited message
    assert rows(engines[0])[0]["last_error"] == "HTTP 429 ratelimited"


def test_a_wall_clock_jump_does_not_cut_the_retry_after_short(
    engines: list[Engine], fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue's retry time is wall clock (shared by replicas); NTP stepping it forward must not
    make the sender call a Slack that asked it to wait."""
    jump = timedelta(0)

    class SteppedClock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) + jump

    monkeypatch.setattr(outbox_module, "datetime", SteppedClock)
    front = SlackOutbox(SqlOutbox(engines[0]))
    fake_slack.fail_next("chat.postMessage", status=429, retry_after=2)
    bot = sender(engines[1], fake_slack, "bot-1").start()
    try:
        front.post(CHANNEL, "limited")
        wait_until(lambda: rows(engines[0])[0]["attempts"] == 1, WAIT, "the 429")
        jump = timedelta(seconds=5)  # the wall clock steps forward: by it, the retry is long due
        wait_until(lambda: posted_texts(fake_slack) == ["limited"], WAIT, "the retry")
    finally:
        bot.stop()
    refused, delivered = attempts_at(fake_slack, "limited")
    assert not refused.ok and delivered.ok
    assert delivered.at - refused.at >= 2.0


def test_server_errors_are_retried_with_growing_delays(engines: list[Engine], fake_slack: FakeSlack) -> None:
    front = SlackOutbox(SqlOutbox(engines[0]))
    for status in (500, 503, 500, 502):
        fake_slack.fail_next("chat.postMessage", status=status)
    bot = sender(engines[1], fake_slack, "bot-1", SenderSettings(poll_seconds=0.1, first_backoff=0.2)).start()
    try:
        front.post(CHANNEL, "retried")
        wait_until(lambda: posted_texts(fake_slack) == ["retried"], WAIT, "the message after four 5xx")
    finally:
        bot.stop()
    tries = attempts_at(fake_slack, "retried")
    assert [c.ok for c in tries] == [False, False, False, False, True]
    gaps = [later.at - earlier.at for earlier, later in zip(tries, tries[1:], strict=False)]
    for gap, backoff in zip(gaps, (0.2, 0.4, 0.8, 1.6), strict=True):
        assert gap >= backoff  # 0.2 s, doubling each time
    assert gaps[3] > gaps[0]


def test_a_permanent_error_is_marked_failed_and_later_messages_still_go(
    engines: list[Engine], fake_slack: FakeSlack
) -> None:
    logs = io.StringIO()
    configure_logging(stream=logs)
    front = SlackOutbox(SqlOutbox(engines[0]))
    metrics = Metrics()
    metrics.count_outbox_with(front.store.counts)
    fake_slack.fail_next("chat.postMessage", status=200, error="channel_not_found")
    bot = sender(engines[1], fake_slack, "bot-1").start()
    try:
        front.post("C0GONE", "nowhere to go")
        front.post(CHANNEL, "still delivered")
        wait_until(lambda: posted_texts(fake_slack) == ["still delivered"], WAIT, "the message behind it")
    finally:
        bot.stop()
    lost, sent = rows(engines[0])
    assert lost["failed_at"] is not None and lost["sent_at"] is None and lost["last_error"] == "channel_not_found"
    assert lost["attempts"] == 1  # refused for good: not retried
    assert sent["sent_at"] is not None
    assert depth(metrics) == 0 and b"breakglass_outbox_failed 1.0" in metrics.render()[0]
    (failed,) = [json.loads(line) for line in logs.getvalue().splitlines() if '"outbox.failed"' in line]
    assert failed["error"] == "channel_not_found" and failed["level"] == "error"


def test_a_refused_token_keeps_messages_waiting_instead_of_failing_them(
    engines: list[Engine], fake_slack: FakeSlack
) -> None:
    front = SlackOutbox(SqlOutbox(engines[0]))
    fake_slack.fail_next("chat.postMessage", status=200, error="invalid_auth")
    bot = sender(engines[1], fake_slack, "bot-1").start()
    try:
        front.post(CHANNEL, "kept")
        wait_until(lambda: posted_texts(fake_slack) == ["kept"], WAIT, "the message once the token works")
    finally:
        bot.stop()
    (row,) = rows(engines[0])
    assert row["failed_at"] is None and row["attempts"] == 2 and row["last_error"] == "invalid_auth"


# --- several replicas on one database ----------------------------------------------------------


def test_two_senders_on_one_database_deliver_each_message_once_and_in_order(
    engines: list[Engine], fake_slack: FakeSlack
) -> None:
    front = SlackOutbox(SqlOutbox(engines[0]))
    first, second = sender(engines[1], fake_slack, "bot-1").start(), sender(engines[2], fake_slack, "bot-2").start()
    expected = [f"message {i}" for i in range(40)]
    try:
        for text in expected[:20]:
            front.post(CHANNEL, text)
        wait_until(lambda: len(posted_texts(fake_slack)) >= 10, WAIT, "the first ten messages")
        holder, other = (first, second) if first.holds_lease else (second, first)
        assert not other.holds_lease  # exactly one delivers
        holder.stop()  # a clean stop lets go of the lease: the other replica takes over at once
        for text in expected[20:]:
            front.post(CHANNEL, text)
        wait_until(lambda: len(posted_texts(fake_slack)) == 40, WAIT, "all forty messages")
        assert other.holds_lease
    finally:
        first.stop()
        second.stop()
    assert posted_texts(fake_slack) == expected  # each once, in order
    assert [c.ok for c in fake_slack.calls("chat.postMessage")] == [True] * 40  # and never sent twice
    assert WorkerLock(engines[0], SENDER_LOCK).holder() == (None, None)  # both stopped cleanly


def test_a_lease_lapses_when_its_holder_stops_renewing_it(engines: list[Engine]) -> None:
    one, two = WorkerLock(engines[1], SENDER_LOCK), WorkerLock(engines[2], SENDER_LOCK)
    assert one.acquire("bot-1", 1.0) is not None
    assert two.acquire("bot-2", 1.0) is None  # held
    assert one.acquire("bot-1", 1.0) is not None  # renewed by its holder
    wait_until(lambda: two.acquire("bot-2", 30.0) is not None, WAIT, "the lease to lapse and be taken over")
    assert one.acquire("bot-1", 1.0) is None  # the old holder knows it lost it
    assert one.holder() is not None and one.holder()[0] == "bot-2"  # type: ignore[index]


@pytest.mark.postgres
def test_serve_processes_hand_the_sender_over_on_a_clean_stop(openbao: OpenBaoServer, postgres_url: str) -> None:
    """Two `breakglass serve` replicas: one delivers; stopped with SIGTERM it lets go of the lease, and the other
    delivers the rest, each message once and in order."""
    with LocalStack(vault=openbao, database_url=postgres_url, serve_bot=False) as stack:
        lease = WorkerLock(stack.engine, SENDER_LOCK)

        def held_by(bot: BotProcess) -> bool:
            holder = lease.holder()
            return holder is not None and f":{bot.pid}:" in str(holder[0])

        with BotProcess.for_stack(stack, name="first") as first:
            wait_until(lambda: held_by(first), WAIT, "the first replica to take the sender lease")
            with BotProcess.for_stack(stack, name="second") as second:
                for i in range(5):
                    stack.outbox.post(CHANNEL, f"via the first {i}")
                wait_until(lambda: len(posted_texts(stack.fake)) == 5, WAIT, "the first five messages")
                assert first.stop() == 0  # SIGTERM: a clean stop
                assert not held_by(first)  # it let go; it did not leave the lease to lapse
                for i in range(5):
                    stack.outbox.post(CHANNEL, f"via the second {i}")
                wait_until(lambda: len(posted_texts(stack.fake)) == 10, WAIT, "the other five messages")
                assert held_by(second)

                def delivered_by() -> list[int]:  # a sender logs a message just after Slack took it
                    return [len(bot.events_logged("outbox.sent")) for bot in (first, second)]

                wait_until(lambda: sum(delivered_by()) >= 10, WAIT, "both replicas to log what they sent")
                assert delivered_by() == [5, 5]
        expected = [f"via the first {i}" for i in range(5)] + [f"via the second {i}" for i in range(5)]
        assert posted_texts(stack.fake) == expected


# --- a whole request while Slack is down -------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BREAKGLASS, *args], capture_output=True, text=True, timeout=90)


def test_slack_down_during_a_whole_request_loses_nothing_and_threads_it_in_order(openbao: OpenBaoServer) -> None:
    """Requested in Slack, approved with SSH keys while Slack's API is down, applied and verified by the
    command line; once Slack is back the plan message is posted, and everything follows in its thread."""
    with LocalStack(vault=openbao, verify_timeout=5.0) as stack:
        fake, people, config = stack.fake, stack.people, str(stack.config_path)
        metrics = Metrics()
        metrics.count_outbox_with(stack.outbox.store.counts)
        fake.set_down(True)
        try:
            reply = stack.slack.command(
                'set api.example.test A 203.0.113.10 ttl=60 reason="INC-77 LB down"', people.alice
            )
            assert reply.status == 200 and "Planning your change" in reply.body
            wait_until(lambda: bool(stack.service.recent(1)), WAIT, "the request to be planned")
            request_id = stack.service.recent(1)[0].request.id
            by_bob = cli("approve", request_id, "--config", config, "--key", str(stack.keys["bob"]))
            assert by_bob.returncode == 0 and "1 more approver" in by_bob.stdout, by_bob.stderr
            by_carol = cli("approve", request_id, "--config", config, "--key", str(stack.keys["carol"]))
            assert by_carol.returncode == 0 and "is now verified" in by_carol.stdout, by_carol.stderr
            assert stack.service.status(request_id).stored.anchor is None  # nothing reached Slack yet
            assert depth(metrics) >= 10
            assert not [c for c in fake.calls("chat.postMessage") if c.ok]
        finally:
            fake.set_down(False)
        wait_until(lambda: depth(metrics) == 0, WAIT, "the outbox to drain once Slack is back")

        ref = MessageRef.decode(stack.service.status(request_id).stored.anchor)
        assert ref is not None and ref.channel == DEFAULT_CHANNEL
        (plan,) = [m for m in fake.channel_messages(DEFAULT_CHANNEL) if m.ts == ref.ts]
        shown = json.dumps(plan.blocks)
        assert request_id in shown and "Verified on every authoritative server" in shown  # its state now
        assert '"approve"' not in shown  # no stale buttons on a message posted late

        queued = [r for r in rows(stack.engine) if r["request_id"] == request_id]
        assert all(r["sent_at"] is not None and r["failed_at"] is None for r in queued)
        said = [json.loads(str(r["payload_json"]))["text"] for r in queued if r["kind"] == Kind.THREAD]
        thread = [m.text for m in fake.thread(ref.channel, ref.ts)]
        assert thread == said  # every thread message, once each, in the order it was written
        assert "`key:bob` approved" in thread[0] and "still needed: 1 more approver" in thread[0]
        assert "`key:carol` approved" in thread[1] and "applying it now" in thread[1]
        assert any(t.startswith("Leasing break-glass credentials") for t in thread[2:-1])
        assert thread[-1].startswith("Verified on every authoritative server")
        checkpoints = [m.text for m in fake.channel_messages(AUDIT_CHANNEL)]
        assert len(checkpoints) == 1 and checkpoints[0].startswith("`")  # the signed chain head, after all that
        assert stack.service.status(request_id).stored.state is RequestState.VERIFIED
        assert fake.violations == []
