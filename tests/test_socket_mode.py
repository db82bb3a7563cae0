"""Socket Mode over a real WebSocket: the bot's SocketModeRunner (slack_sdk's built-in client, see
bot/socket_client.py) dials the local stand-in (FakeSlack answers ``apps.connections.open`` with a
ws://127.0.0.1 URL), which pushes envelopes the way Slack does and records every acknowledgement.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

import bootstrap
from bot.ops import Metrics
from bot.socket_mode import SocketModeError, SocketModeRunner, check_app_token
from cli.localstack import LocalStack
from config import SlackSettings, load_config
from core.errors import InvalidInput
from core.records import RecordType
from core.states import RequestState
from providers.authoritative import DnsAuthoritativeQuerier
from sandbox.fake_slack import SlackCall
from sandbox.fake_socket_mode import ACK_DEADLINE, CONNECTIONS_OPEN, FakeSocketMode
from sandbox.net import free_port, wait_until
from sandbox.openbao import OpenBaoServer
from sandbox.slack_signing import DEFAULT_CHANNEL

APP_TOKEN = "xapp-1-A0BREAKGLASS-1-" + "5e" * 16
WAIT = 60.0  # a condition wait: passing flows return in milliseconds; only a stuck one waits this long
BREAKGLASS = str(Path(sys.executable).parent / "breakglass")


@dataclass
class SocketBot:
    stack: LocalStack
    socket: FakeSocketMode
    runner: SocketModeRunner
    metrics: Metrics


@pytest.fixture(scope="module")
def shared_stack(openbao: OpenBaoServer) -> Iterator[LocalStack]:
    with LocalStack(vault=openbao, verify_timeout=5.0) as stack:
        yield stack


def socket_app(stack: LocalStack) -> tuple[object, Metrics]:
    settings = load_config(stack.config_path)
    metrics = Metrics()
    service = bootstrap.build_service(settings, stack.engine, metrics=metrics)
    slack = SlackSettings(
        bot_token=SecretStr(stack.bot_token), signing_secret=SecretStr("unused"), api_url=stack.fake.api_url
    )
    return bootstrap.build_slack_app(service, slack, settings.audit.slack_channel, outbox=stack.outbox), metrics


@pytest.fixture
def bot(shared_stack: LocalStack) -> Iterator[SocketBot]:
    app, metrics = socket_app(shared_stack)
    with FakeSocketMode(shared_stack.fake, APP_TOKEN) as socket:
        runner = SocketModeRunner(app, APP_TOKEN, metrics=metrics, ping_interval=1)  # type: ignore[arg-type]
        runner.connect()
        try:
            socket.wait_connected()
            yield SocketBot(shared_stack, socket, runner, metrics)
        finally:
            runner.close()  # first: closed from Slack's side first, the client would try to reconnect
            socket.stop()


def ack_text(bot: SocketBot, envelope_id: str) -> str:
    payload = bot.socket.wait_for_ack(envelope_id, timeout=WAIT).payload
    return str((payload or {}).get("text", ""))


def test_commands_are_acked_on_the_socket_with_their_answer(bot: SocketBot) -> None:
    alice = bot.stack.people.alice
    assert "/dns set <name> <type> <value>" in ack_text(bot, bot.socket.command("help", alice))
    assert ack_text(bot, bot.socket.command("frobnicate", alice)).startswith(":warning: Unknown subcommand")
    assert bot.metrics.ack_seconds.labels("socket")._sum.get() > 0  # both acks were timed
    assert bot.stack.fake.calls(CONNECTIONS_OPEN)[-1].token == APP_TOKEN  # opened with the app-level token


def test_a_change_requested_and_approved_over_socket_mode_is_applied_and_verified(bot: SocketBot) -> None:
    stack, people = bot.stack, bot.stack.people
    name = "socket1.example.test."

    def plan_posted(call: SlackCall) -> bool:
        return call.args.get("channel") == DEFAULT_CHANNEL and name in json.dumps(call.args)

    command = bot.socket.command(f'set {name} A 203.0.113.20 ttl=60 reason="INC-20 over socket mode"', people.alice)
    assert "Planning your change" in ack_text(bot, command)
    stack.fake.wait_for("chat.postMessage", timeout=WAIT, predicate=plan_posted)
    approve = stack.fake.find_button(action_id="approve", channel=DEFAULT_CHANNEL)
    bot.socket.wait_for_ack(bot.socket.click(approve, people.bob), timeout=WAIT)
    stack.fake.wait_for("chat.update", timeout=WAIT, predicate=lambda c: "needs 1 more approver" in json.dumps(c.args))
    bot.socket.wait_for_ack(bot.socket.click(approve, people.carol), timeout=WAIT)

    def verdict(call: SlackCall) -> bool:
        return call.args.get("thread_ts") == approve.message_ts and str(call.args.get("text")).startswith("Verified")

    stack.fake.wait_for("chat.postMessage", timeout=WAIT, predicate=verdict)
    status = stack.service.status(str(approve.value))
    assert status.stored.state is RequestState.VERIFIED
    querier = DnsAuthoritativeQuerier(timeout_seconds=1.0)
    for server in (stack.bind.primary, stack.bind.secondary):
        answer = querier.query(server, name, RecordType.A).rrset
        assert answer is not None and answer.values == ("203.0.113.20",)
    assert stack.fake.violations == []


def test_reconnects_when_slack_asks_and_after_the_connection_drops(bot: SocketBot) -> None:
    alice = bot.stack.people.alice
    opened = len(bot.stack.fake.calls(CONNECTIONS_OPEN))
    bot.socket.ask_to_reconnect()
    bot.socket.wait_connected(accepted=2, timeout=WAIT)
    assert "/dns set" in ack_text(bot, bot.socket.command("help", alice))

    bot.socket.drop_connections()
    bot.socket.wait_connected(accepted=3, timeout=WAIT)
    assert "/dns set" in ack_text(bot, bot.socket.command("help", alice))
    assert len(bot.stack.fake.calls(CONNECTIONS_OPEN)) == opened + 2  # a fresh single-use URL each time
    assert bot.socket.refused == 0


def test_a_command_sent_right_after_slack_recycles_the_connection_is_acked_in_time(bot: SocketBot) -> None:
    """Slack sends on the new connection as soon as it is open; the old one goes quiet. The first command
    there must be acked within Slack's window, or the user is told the app did not respond."""
    alice = bot.stack.people.alice
    for _ in range(3):
        accepted = bot.socket.accepted
        bot.socket.ask_to_reconnect()
        bot.socket.wait_connected(accepted=accepted + 1, timeout=WAIT)
        ack = bot.socket.wait_for_ack(bot.socket.command("help", alice), timeout=WAIT)
        assert "/dns set" in str((ack.payload or {}).get("text"))
        assert ack.in_time, f"acked {ack.seconds:.2f} s after it was sent, past Slack's {ACK_DEADLINE:.0f} s"


def test_reconnects_when_slack_closes_the_connection_without_waiting_for_the_next_ping(
    shared_stack: LocalStack,
) -> None:
    app, _ = socket_app(shared_stack)
    with FakeSocketMode(shared_stack.fake, APP_TOKEN) as socket:
        runner = SocketModeRunner(app, APP_TOKEN, ping_interval=3600)  # type: ignore[arg-type]
        runner.connect()  # with an hour between pings, only the close itself can bring the client back
        try:
            socket.wait_connected()
            socket.drop_connections()
            socket.wait_connected(accepted=2, timeout=WAIT)
            ack = socket.wait_for_ack(socket.command("help", shared_stack.people.alice), timeout=WAIT)
            assert "/dns set" in str((ack.payload or {}).get("text"))
        finally:
            runner.close()
            socket.stop()


@pytest.mark.parametrize("reset", [False, True], ids=["end-of-stream", "reset"])
def test_reconnects_at_once_when_the_connection_is_cut_without_a_close_frame(
    shared_stack: LocalStack, reset: bool
) -> None:
    """A proxy or load balancer that drops the tunnel sends no WebSocket close: the client reads
    end-of-stream (or a reset) and must take that as the connection closed, not wait for its pings."""
    app, _ = socket_app(shared_stack)
    with FakeSocketMode(shared_stack.fake, APP_TOKEN) as socket:
        runner = SocketModeRunner(app, APP_TOKEN, ping_interval=3600)  # type: ignore[arg-type]
        runner.connect()  # with an hour between pings, only noticing the cut itself can bring the client back
        try:
            socket.wait_connected()
            socket.cut_connections(reset=reset)
            socket.wait_connected(accepted=2, timeout=WAIT)
            ack = socket.wait_for_ack(socket.command("help", shared_stack.people.alice), timeout=WAIT)
            assert "/dns set" in str((ack.payload or {}).get("text"))
            assert socket.refused == 0 and socket.accepted == 2  # one fresh connection, no retry storm
        finally:
            runner.close()
            socket.stop()


def test_reconnects_once_slack_is_back_after_an_outage(bot: SocketBot) -> None:
    fake = bot.stack.fake
    fake.set_down(True)
    try:
        bot.socket.drop_connections()
        wait_until(lambda: not bot.runner.connected, WAIT, "the client to notice the dropped connection")
    finally:
        fake.set_down(False)
    bot.socket.wait_connected(accepted=2, timeout=WAIT)
    assert "/dns set" in ack_text(bot, bot.socket.command("help", bot.stack.people.alice))


def test_a_refused_app_token_is_explained_without_echoing_it(shared_stack: LocalStack) -> None:
    app, _ = socket_app(shared_stack)
    wrong = "xapp-1-A0BREAKGLASS-1-" + "0" * 32
    with FakeSocketMode(shared_stack.fake, APP_TOKEN):
        runner = SocketModeRunner(app, wrong)  # type: ignore[arg-type]
        try:
            with pytest.raises(SocketModeError) as refused:
                runner.connect()
        finally:
            runner.close()
    assert "Slack refused to open a Socket Mode connection (invalid_auth)" in refused.value.user_text()
    assert "SLACK_APP_TOKEN" in refused.value.user_text() and wrong not in refused.value.user_text()


@pytest.mark.parametrize(
    ("token", "says"),
    [(None, "SLACK_APP_TOKEN is not set"), ("", "SLACK_APP_TOKEN is not set"), ("xoxb-123", "not an app-level token")],
)
def test_the_app_token_must_be_an_app_level_token(token: str | None, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as bad:
        check_app_token(token)
    assert "xoxb-123" not in bad.value.user_text()


def _serve_env(stack: LocalStack, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update({"SLACK_BOT_TOKEN": stack.bot_token, "SLACK_API_URL": stack.fake.api_url, **extra})
    return env


def test_breakglass_serve_socket_mode_connects_answers_and_serves_only_the_probes(shared_stack: LocalStack) -> None:
    port = free_port()
    command = [BREAKGLASS, "serve", "--socket-mode", "--config", str(shared_stack.config_path)]
    with FakeSocketMode(shared_stack.fake, APP_TOKEN) as socket:
        accepted = socket.accepted
        process = subprocess.Popen(  # no SLACK_SIGNING_SECRET: Socket Mode deliveries are not signed
            [*command, "--port", str(port)], env=_serve_env(shared_stack, SLACK_APP_TOKEN=APP_TOKEN),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            socket.wait_connected(accepted=accepted + 1, timeout=WAIT)
            assert "/dns set" in str((socket.wait_for_ack(socket.command("help", "U0ALICE")).payload or {})["text"])
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: _status(base + "/healthz") == 200, WAIT, "the probes")
            assert _status(base + "/readyz") == 200
            assert _status(base + "/slack/events") == 404  # nothing listens for signed HTTP deliveries
            with urllib.request.urlopen(base + "/metrics", timeout=10) as response:  # noqa: S310
                assert 'breakglass_slack_ack_seconds_count{transport="socket"} 1.0' in response.read().decode()
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=WAIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, stderr
    assert "connected to Slack over Socket Mode" in stderr and APP_TOKEN not in stderr


def test_breakglass_serve_socket_mode_without_an_app_token_says_what_to_set(shared_stack: LocalStack) -> None:
    result = subprocess.run(
        [BREAKGLASS, "serve", "--socket-mode", "--config", str(shared_stack.config_path)],
        env=_serve_env(shared_stack), capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "SLACK_APP_TOKEN is not set" in result.stderr and "connections:write" in result.stderr


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
