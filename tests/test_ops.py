"""The operations surface, over real sockets: /healthz, /readyz, /metrics, request ids in the logs,
and what the bot does when Slack rate-limits, errors or is down.

The bot here is built exactly as ``breakglass serve`` builds it (bootstrap with metrics and readiness)
on top of a LocalStack's servers: OpenBao, a BIND pair and the Slack stand-in.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

import bootstrap
from bot.http import HttpServer
from bot.ops import Metrics, ObservedStore, Ops, Readiness, database_check, policy_check, vault_check
from cli.localstack import LocalStack
from config import SlackSettings, load_config
from config.logs import configure_logging
from core.events import EventKind, NewEvent
from core.records import RecordType
from core.states import RequestState
from providers.authoritative import DnsAuthoritativeQuerier
from sandbox.fake_slack import SlackCall
from sandbox.net import LOOPBACK, TcpForwarder, free_port, wait_until
from sandbox.openbao import OpenBaoServer
from sandbox.slack_signing import DEFAULT_CHANNEL, SlackClientSimulator, sign, slash_command_body
from service.changes import ChangeService
from store.sql import SqlRequestStore, make_engine
from tests.fixtures.bot import update_of
from tests.test_store import make_request

WAIT = 60.0  # a condition wait: passing flows return in milliseconds; only a stuck one waits this long


@dataclass
class ObservedBot:
    """A bot wired like `breakglass serve` (metrics, readiness) on a LocalStack's servers."""

    stack: LocalStack
    service: ChangeService
    metrics: Metrics
    http: HttpServer
    slack: SlackClientSimulator

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.http.base_url + path, timeout=10) as response:  # noqa: S310
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def readyz(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/readyz")
        return status, json.loads(body)

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        status, body = self.get("/metrics")
        assert status == 200
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body)
            for s in family.samples
        }

    def sample(self, name: str, **labels: str) -> float:
        return self.scrape().get((name, frozenset(labels.items())), 0.0)

    def plan_posts(self) -> list[SlackCall]:
        return [
            c for c in self.stack.fake.calls("chat.postMessage")
            if c.ok and c.args.get("channel") == DEFAULT_CHANNEL and not c.args.get("thread_ts")
        ]  # fmt: skip

    def request(self, name: str, user: str | None = None) -> str:
        """``/dns set`` a new A record; returns the request id once the plan message is shown."""
        before = len(self.plan_posts())
        reply = self.slack.command(
            f'set {name} A 203.0.113.7 ttl=60 reason="INC-7 ops"', user or self.stack.people.alice
        )
        assert reply.status == 200, reply
        wait_until(lambda: len(self.plan_posts()) > before, WAIT, "the plan message")
        return str(self.stack.fake.find_button(action_id="approve", channel=DEFAULT_CHANNEL).value)

    def approve_twice(self, request_id: str) -> str:
        """bob then carol approve; returns the verdict posted in the thread."""
        people = self.stack.people
        button = self.stack.fake.find_button(action_id="approve", value=request_id)
        assert self.slack.click(button, people.bob).status == 200
        self.stack.fake.wait_for("chat.update", timeout=WAIT, predicate=update_of(button, "needs 1 more approver"))
        assert self.slack.click(button, people.carol).status == 200

        def final(call: SlackCall) -> bool:
            text = str(call.args.get("text", ""))
            return call.args.get("thread_ts") == button.message_ts and text.startswith(
                ("Verified", "Recovered", "Verification failed", "Nothing was applied")
            )

        return str(self.stack.fake.wait_for("chat.postMessage", timeout=WAIT, predicate=final)[-1].args["text"])


@contextmanager
def observed_bot(stack: LocalStack) -> Iterator[ObservedBot]:
    settings = load_config(stack.config_path)
    metrics = Metrics()
    service = bootstrap.build_service(settings, stack.engine, metrics=metrics)
    slack = SlackSettings(
        bot_token=SecretStr(stack.bot_token), signing_secret=SecretStr(stack.signing_secret), api_url=stack.fake.api_url
    )
    app = bootstrap.build_slack_app(service, slack, settings.audit.slack_channel, outbox=stack.outbox)
    ops = Ops(bootstrap.build_readiness(settings, stack.engine, service), metrics)
    http = HttpServer(app, port=0, ops=ops).start_in_background()
    try:
        yield ObservedBot(
            stack, service, metrics, http, SlackClientSimulator(http.url, stack.signing_secret, stack.fake)
        )
    finally:
        http.stop()


@pytest.fixture(scope="module")
def shared_stack(openbao: OpenBaoServer) -> Iterator[LocalStack]:
    with LocalStack(vault=openbao, verify_timeout=5.0) as stack:
        yield stack


@pytest.fixture
def bot(shared_stack: LocalStack) -> Iterator[ObservedBot]:
    with observed_bot(shared_stack) as observed:
        yield observed


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything logged during the test, as the bot logs it in production (JSON lines)."""
    buffer = io.StringIO()
    configure_logging(stream=buffer)
    yield buffer


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


# --- probes ---------------------------------------------------------------------------------


def test_healthz_and_readyz_say_ready_when_database_vault_and_policy_are(bot: ObservedBot) -> None:
    assert bot.get("/healthz") == (200, "ok\n")
    status, body = bot.readyz()
    assert status == 200
    assert body["ready"] is True and body["not_ready"] == []
    assert set(body["checks"]) == {"database", "vault:default", "policy"}
    assert body["checks"]["vault:default"]["detail"] == f"Vault at {bot.stack.vault.address} is unsealed"
    assert body["checks"]["policy"]["detail"] == "signed by a trusted key"
    assert bot.get("/nothing-here")[0] == 404


def test_readyz_is_503_naming_an_unsigned_policy_until_it_is_restored(bot: ObservedBot) -> None:
    policy = bot.stack.policy_path
    original = policy.read_bytes()
    try:
        policy.write_bytes(original + b"\n# edited after signing\n")
        status, body = bot.readyz()
        assert status == 503
        assert body["not_ready"] == ["policy"]
        assert "modified" in body["checks"]["policy"]["detail"]
    finally:
        policy.write_bytes(original)
    assert bot.readyz()[0] == 200


def test_readiness_names_a_sealed_then_a_stopped_vault() -> None:
    with OpenBaoServer() as vault:
        check = Readiness([vault_check("default", vault.address, 2.0)])
        assert check.check().ready
        vault.client().sys.seal()
        sealed = check.check()
        assert not sealed.ready
        assert sealed.checks[0].detail == f"Vault at {vault.address} is sealed"
        vault.stop()
        stopped = check.check().checks[0]
        assert (stopped.ok, stopped.detail) == (False, f"Vault at {vault.address} is unreachable (ConnectionError)")


def test_readyz_answers_within_its_bound_naming_every_dependency_that_is_not_ready() -> None:
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never answers: a hung Vault
        silent.bind((LOOPBACK, 0))
        silent.listen(8)
        hung = f"http://{LOOPBACK}:{silent.getsockname()[1]}"
        down_db = make_engine(f"postgresql://root@{LOOPBACK}:{free_port()}/test")
        readiness = Readiness(
            [
                database_check(down_db),
                vault_check("default", hung, 0.5),
                vault_check("backup", f"http://{LOOPBACK}:{free_port()}", 0.5),
                policy_check(lambda: "The policy file was modified after it was signed."),
            ],
            timeout=3.0,
        )
        http = HttpServer(None, port=0, ops=Ops(readiness)).start_in_background()
        try:
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{http.base_url}/readyz", timeout=10)  # noqa: S310
            body = json.loads(refused.value.read())
            no_slack = urllib.request.Request(f"{http.base_url}/slack/events", data=b"x", method="POST")
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(no_slack, timeout=10)  # noqa: S310
        finally:
            http.stop()
            down_db.dispose()
    assert refused.value.code == 503
    assert body["ready"] is False
    assert body["not_ready"] == ["database", "vault:default", "vault:backup", "policy"]
    checks = body["checks"]
    assert checks["database"]["detail"] == "the database cannot be reached (OperationalError)"
    assert checks["vault:default"]["detail"] == f"Vault at {hung} did not answer within 0.5 s"
    assert "is unreachable (ConnectionError)" in checks["vault:backup"]["detail"]
    assert checks["policy"]["detail"] == "The policy file was modified after it was signed."
    assert missing.value.code == 404  # an ops-only server (Socket Mode) does not take Slack requests


# --- metrics --------------------------------------------------------------------------------


def test_metrics_count_requests_by_state_and_time_acks_apply_and_verification(bot: ObservedBot) -> None:
    before = bot.scrape()
    verified_before = before.get(("breakglass_requests", frozenset({("state", "verified")})), 0.0)
    request_id = bot.request("metrics1.example.test")
    assert bot.sample("breakglass_requests", state="pending_approval") >= 1
    assert bot.approve_twice(request_id).startswith("Verified")

    after = bot.scrape()

    def value(name: str, **labels: str) -> float:
        return after.get((name, frozenset(labels.items())), 0.0)

    assert value("breakglass_requests", state="verified") == verified_before + 1
    assert value("breakglass_database_up") == 1
    assert value("breakglass_apply_seconds_count", path="bind-primary") == 1
    assert 0 < value("breakglass_apply_seconds_sum", path="bind-primary") < 10
    assert value("breakglass_verification_seconds_count", outcome="verified") == 1
    assert value("breakglass_slack_ack_seconds_count", transport="http") == 3  # one command, two clicks
    assert value("breakglass_slack_requests_total", transport="http", status="200") == 3
    assert bot.service.status(request_id).stored.state is RequestState.VERIFIED
    wait_until(lambda: bot.sample("breakglass_outbox_depth") == 0, WAIT, "the audit checkpoint to be delivered")
    assert bot.sample("breakglass_outbox_failed") == 0


def test_the_metrics_see_every_event_of_a_batch(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    metrics = Metrics()
    store = ObservedStore(SqlRequestStore(engine), metrics)
    request, plan = make_request()
    store.create(request, plan, NewEvent(request.id, "slack:U0ALICE", EventKind.PLANNED))
    failed = [
        NewEvent(request.id, "system", EventKind.PATH_FAILED, {"path": path, "kind": "ProviderError"})
        for path in ("bind-primary", "bind-primary", "powerdns")
    ]
    try:
        store.append_many([*failed, NewEvent(request.id, "system", EventKind.APPLIED, {"path": "powerdns"})])
    finally:
        engine.dispose()

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert sample("breakglass_path_failures_total", path="bind-primary", kind="ProviderError") == 2
    assert sample("breakglass_path_failures_total", path="powerdns", kind="ProviderError") == 1
    assert sample("breakglass_apply_seconds_count", path="powerdns") == 1


def test_vault_down_is_not_ready_counts_a_path_failure_and_applies_nothing() -> None:
    with LocalStack() as stack, observed_bot(stack) as bot:  # its own OpenBao: stopping it disturbs no one
        request_id = bot.request("vaultdown.example.test")
        stack.vault.stop()
        status, body = bot.readyz()
        assert (status, body["not_ready"]) == (503, ["vault:default"])
        verdict = bot.approve_twice(request_id)
        assert verdict.startswith("Nothing was applied")
        assert bot.sample("breakglass_path_failures_total", path="bind-primary", kind="CredentialError") == 1
        assert bot.sample("breakglass_requests", state="apply_failed") == 1
        assert bot.sample("breakglass_apply_seconds_count", path="bind-primary") == 0


@pytest.mark.postgres
def test_database_down_is_not_ready_and_a_click_is_refused_saying_so(
    openbao: OpenBaoServer, empty_postgres_url: str
) -> None:
    proxy = TcpForwarder(5432)  # PostgreSQL behind a forwarder we can cut
    url = empty_postgres_url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")
    try:
        with LocalStack(vault=openbao, database_url=url) as stack, observed_bot(stack) as bot:
            request_id = bot.request("dbdown.example.test")
            proxy.stop()
            stack.engine.dispose()  # drop pooled connections: the database is gone
            status, body = bot.readyz()
            assert (status, body["not_ready"]) == (503, ["database"])
            assert bot.sample("breakglass_database_up") == 0
            button = stack.fake.find_button(action_id="approve", value=request_id)
            assert bot.slack.click(button, stack.people.bob).status == 200  # the ack needs no database
            told = stack.fake.wait_for(
                "chat.postEphemeral", timeout=WAIT, predicate=lambda c: c.args["user"] == "U0BOB"
            )
            assert "database" in told[-1].args["text"]
            querier = DnsAuthoritativeQuerier(timeout_seconds=1.0)
            assert querier.query(stack.bind.primary, "dbdown.example.test.", RecordType.A).rrset is None
    finally:
        proxy.stop()


def test_a_scrape_still_answers_when_the_database_does_not() -> None:
    metrics = Metrics()
    metrics.count_requests_with(lambda: {"verified": 2})
    assert b'breakglass_requests{state="verified"} 2.0' in metrics.render()[0]
    down = make_engine(f"postgresql://root@{LOOPBACK}:{free_port()}/test")
    try:
        from bot.ops import request_counts

        metrics.count_requests_with(lambda: request_counts(down))
        text = metrics.render()[0].decode()
    finally:
        down.dispose()
    assert "breakglass_database_up 0.0" in text and "breakglass_requests{" not in text


# --- logs -----------------------------------------------------------------------------------


def test_log_lines_carry_the_delivery_id_into_the_work_done_after_the_ack(bot: ObservedBot, logs: io.StringIO) -> None:
    stack = bot.stack
    body = slash_command_body(
        "/dns", 'set logs1.example.test A 203.0.113.8 reason="INC-8 logs"', user_id=stack.people.alice,
        response_url=stack.fake.hooks_url("logs-1", channel=DEFAULT_CHANNEL, user=stack.people.alice),
    )  # fmt: skip
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Request-Id": "edge-7f3a9c"}
    headers.update(sign(stack.signing_secret, body, int(__import__("time").time())))
    before = len(bot.plan_posts())
    request = urllib.request.Request(bot.http.url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.headers["X-Request-Id"] == "edge-7f3a9c"
    wait_until(lambda: len(bot.plan_posts()) > before, WAIT, "the plan message")
    request_id = stack.fake.find_button(action_id="approve", channel=DEFAULT_CHANNEL).value
    bot.approve_twice(str(request_id))

    lines = log_lines(logs)
    (delivery,) = [line for line in lines if line["event"] == "slack.delivery" and line["delivery_id"] == "edge-7f3a9c"]
    assert delivery["status"] == 200 and delivery["transport"] == "http"
    (planned,) = [line for line in lines if line["event"] == "request.planned" and line["request_id"] == request_id]
    assert planned["delivery_id"] == "edge-7f3a9c"  # logged in the lazy listener, after the ack
    assert planned["slack_user"] == stack.people.alice
    (verified,) = [line for line in lines if line["event"] == "request.verified"]
    assert verified["slack_user"] == stack.people.carol  # the click that completed the quorum
    assert verified["delivery_id"] != "edge-7f3a9c" and len(verified["delivery_id"]) == 16


def test_secrets_are_redacted_from_structlog_and_library_log_lines(logs: io.StringIO) -> None:
    token = "xoxb-1234567890-abcdefghijkl"
    structlog.get_logger("t").info("calling", bot_token=token, secret_id="4f1c-secret", detail=f"sent {token} to x")
    logging.getLogger("slack_sdk.web").warning("retrying with Authorization: Bearer %s", "xapp-1-A0B1C2D3E4")
    text = logs.getvalue()
    assert "xoxb-1234567890" not in text and "4f1c-secret" not in text and "xapp-1-A0B1C2" not in text
    lines = log_lines(logs)  # other tests' stopping threads may log here too: pick this test's two lines
    (structured,) = [line for line in lines if line["event"] == "calling"]
    (library,) = [line for line in lines if line.get("logger") == "slack_sdk.web"]
    assert structured["bot_token"] == structured["secret_id"] == "[redacted]"
    assert structured["detail"] == "sent [redacted] to x"
    assert library["logger"] == "slack_sdk.web" and library["level"] == "warning"
    assert library["event"] == "retrying with Authorization: Bearer [redacted]"


# --- Slack misbehaving ----------------------------------------------------------------------


def test_a_rate_limited_post_is_retried_after_retry_after(bot: ObservedBot) -> None:
    bot.stack.fake.fail_next("chat.postMessage", status=429, retry_after=1)
    bot.request("ratelimit.example.test")
    limited, posted = bot.stack.fake.calls("chat.postMessage")[-2:]
    assert (limited.ok, limited.error) == (False, "ratelimited")
    assert posted.ok and "ratelimit.example.test" in json.dumps(posted.args)
    assert posted.at - limited.at >= 1.0  # it waited the Retry-After Slack asked for


def test_a_slack_server_error_on_update_is_retried(bot: ObservedBot) -> None:
    request_id = bot.request("servererror.example.test")
    bot.stack.fake.fail_next("chat.update", status=500)
    assert bot.approve_twice(request_id).startswith("Verified")
    updates = [c for c in bot.stack.fake.calls("chat.update") if request_id in json.dumps(c.args) or not c.ok]
    assert [c.error for c in updates if not c.ok] == ["fatal_error"]
    shown = [m for m in bot.stack.fake.channel_messages(DEFAULT_CHANNEL) if request_id in json.dumps(m.blocks)]
    assert shown and '"approve"' not in json.dumps(shown[0].blocks)  # the retried update removed the buttons


def test_slack_down_keeps_the_plan_message_in_the_outbox_and_posts_it_once_slack_is_back(
    bot: ObservedBot, logs: io.StringIO
) -> None:
    fake, people = bot.stack.fake, bot.stack.people
    known = {s.request.id for s in bot.service.recent(100)}
    fake.set_down(True)
    try:
        reply = bot.slack.command('set slackdown.example.test A 203.0.113.9 reason="INC-9 slack down"', people.alice)
        assert reply.status == 200 and "Planning your change" in reply.body  # the ack does not need Slack's API
        wait_until(lambda: "outbox.retry_later" in logs.getvalue(), WAIT, "a failed delivery of the plan message")
        (new,) = [s for s in bot.service.recent(100) if s.request.id not in known]
        assert new.state is RequestState.PENDING_APPROVAL and new.anchor is None  # stored, not shown yet
        assert bot.sample("breakglass_outbox_depth") >= 1  # waiting in the outbox
    finally:
        fake.set_down(False)
    request_id = new.request.id
    posted = fake.wait_for(
        "chat.postMessage", timeout=WAIT, predicate=lambda c: c.ok and request_id in json.dumps(c.args)
    )[-1]
    assert posted.args["channel"] == DEFAULT_CHANNEL and not posted.args.get("thread_ts")
    wait_until(lambda: bot.sample("breakglass_outbox_depth") == 0, WAIT, "the outbox to drain")
    anchor = bot.service.status(request_id).stored.anchor
    assert anchor is not None and anchor.startswith(f"slack:{DEFAULT_CHANNEL}:")  # the delivery set it
    assert fake.find_button(action_id="approve", value=request_id).channel == DEFAULT_CHANNEL

    assert bot.slack.command(f"status {new.request.id}", people.alice).status == 200
    hook = bot.slack.last_hook
    said = fake.wait_for("response_url", timeout=WAIT, predicate=lambda c: c.hook == hook)[-1].args["text"]
    assert new.request.id in said and "Awaiting approval" in said


def test_slack_api_down_for_the_first_command_after_a_start_still_acks_it(bot: ObservedBot) -> None:
    """The ack never depends on Slack's Web API: authorisation is local (no auth.test)."""
    bot.stack.fake.set_down(True)
    try:
        reply = bot.slack.command("help", bot.stack.people.alice)
    finally:
        bot.stack.fake.set_down(False)
    assert reply.status == 200 and "emergency DNS changes" in reply.body
    assert not bot.stack.fake.calls("auth.test")
    assert bot.slack.command("status", bot.stack.people.alice).status == 200
    assert "Planning" in bot.slack.command('set afterdown.example.test A 203.0.113.9 reason="INC-9"', "U0ALICE").body


# --- container ------------------------------------------------------------------------------


def test_the_image_copies_every_package_the_project_installs() -> None:
    """A package missing from the Dockerfile fails `pip install .` in the image (probes once did)."""
    root = Path(__file__).resolve().parents[1]
    packages = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    copied = set(re.findall(r"^COPY (\w+) \1$", (root / "Dockerfile").read_text(), flags=re.MULTILINE))
    assert copied == {p.split(".")[0] for p in packages}
