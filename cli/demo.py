"""`breakglass demo`: an incident played end to end, as people would, on local servers."""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from cli.localstack import LocalStack
from core.errors import BreakglassError
from core.records import RecordType, RRset
from providers.authoritative import DnsAuthoritativeQuerier
from sandbox.fake_slack import Button, SlackCall
from sandbox.slack_signing import DEFAULT_CHANNEL, Reply

NAME = "api.example.test."
NEW_VALUE, OLD_VALUE = "203.0.113.10", "192.0.2.10"
WAIT = 30.0


class DemoFailed(Exception):
    """A step did not do what a person would expect."""


@dataclass
class Timings:
    acks: dict[str, float] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)


class Incident:
    def __init__(self, stack: LocalStack, console: Console) -> None:
        self.stack, self.console, self.fake, self.people = stack, console, stack.fake, stack.people
        self.timings = Timings()

    # --- helpers ------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.console.print(f"\n[bold cyan]▶ {text}[/bold cyan]")

    def show(self, who: str, text: str) -> None:
        self.console.print(Panel(text, title=who, title_align="left", expand=False), highlight=False)

    def _ack(self, label: str, reply: Reply) -> str:
        if reply.status != 200:
            raise DemoFailed(f"{label}: the bot answered HTTP {reply.status}")
        self.timings.acks[label] = reply.seconds
        try:
            return str(json.loads(reply.body).get("text", "")) if reply.body else ""
        except json.JSONDecodeError:
            return reply.body

    def command(self, user: str, text: str) -> str:
        name = self.people.names[user]
        self.console.print(f"[bold]{name}[/bold]: /dns {text}", highlight=False)
        answer = self._ack(f"/dns {text.split()[0]} ({name})", self.stack.slack.command(text, user))
        if answer:
            self.show(f"only visible to {name}", answer)
        return answer

    def click(self, user: str, button: Button) -> float:
        name = self.people.names[user]
        self.console.print(f"[bold]{name}[/bold] clicks [{button.text}] on {button.value}", highlight=False)
        clicked_at = time.monotonic()
        self._ack(f"click {button.text} ({name})", self.stack.slack.click(button, user))
        return clicked_at

    def refusal_for(self, user: str, expect: str) -> None:
        call = self.fake.wait_for("chat.postEphemeral", timeout=WAIT, predicate=lambda c: c.args.get("user") == user)
        text = str(call[-1].args.get("text", ""))
        self.show(f"only visible to {self.people.names[user]}", text)
        if expect not in text:
            raise DemoFailed(f"expected a refusal saying {expect!r}, got {text!r}")

    def message(self, ts: str) -> str:
        for message in self.fake.channel_messages(DEFAULT_CHANNEL):
            if message.ts == ts:
                return self.fake.render_text(message)
        raise DemoFailed(f"message {ts} is not in the channel")

    def wait_verified(self, plan_ts: str, clicked_at: float, label: str) -> None:
        def verdict(call: SlackCall) -> bool:
            text = str(call.args.get("text", ""))
            return call.args.get("thread_ts") == plan_ts and text.startswith(("Verif", "Recovered"))

        (call,) = self.fake.wait_for("chat.postMessage", timeout=WAIT, predicate=verdict)
        self.timings.phases[label] = call.at - clicked_at
        for reply in self.fake.thread(DEFAULT_CHANNEL, plan_ts):
            self.show("thread reply from breakglass", self.fake.render_text(reply))
        self.show("the request message now", self.message(plan_ts))
        if not str(call.args.get("text", "")).startswith("Verified on every authoritative server"):
            raise DemoFailed(f"{label}: verification failed: {call.args.get('text')}")

    def served(self, value: str, ttl: int) -> None:
        """Ask both BIND servers ourselves, independently of the bot."""
        querier = DnsAuthoritativeQuerier(timeout_seconds=1.0)
        expected = RRset.build(NAME, RecordType.A, ttl, [value])
        for server in (self.stack.bind.primary, self.stack.bind.secondary):
            answer = querier.query(server, NAME, RecordType.A)
            self.console.print(f"  independent check: {server} answers {answer.describe()}", highlight=False)
            if answer.rrset != expected:
                raise DemoFailed(f"{server} serves {answer.describe()}, expected {expected.describe()}")

    def plan_button(self, count: int) -> Button:
        calls = self.fake.wait_for(
            "chat.postMessage",
            count=count,
            timeout=WAIT,
            predicate=lambda c: c.args.get("channel") == DEFAULT_CHANNEL and not c.args.get("thread_ts"),
        )
        ts_calls = [m for m in self.fake.channel_messages(DEFAULT_CHANNEL)]
        if len(ts_calls) < count or len(calls) < count:
            raise DemoFailed("the plan message did not appear")
        newest = ts_calls[-1]
        self.show("breakglass posted in #ops", self.fake.render_text(newest))
        return self.fake.find_button(action_id="approve", channel=DEFAULT_CHANNEL)

    def wait_update(self, ts: str, says: str) -> None:
        self.fake.wait_for(
            "chat.update", timeout=WAIT, predicate=lambda c: c.args.get("ts") == ts and says in json.dumps(c.args)
        )

    # --- the incident ------------------------------------------------------------------

    def play(self) -> Timings:
        p = self.people
        self.say("03:12 — the primary load balancer is down. alice asks to point api at the standby.")
        self.command(p.alice, f'set {NAME} A {NEW_VALUE} ttl=60 reason="INC-42: primary LB down, fail over to standby"')
        approve = self.plan_button(1)

        self.say("mallory (not an approver) and alice (the requester) try to approve: both refused.")
        self.click(p.mallory, approve)
        self.refusal_for(p.mallory, "You are not an approver for this change")
        self.click(p.alice, approve)
        self.refusal_for(p.alice, "You requested this change")

        self.say("bob approves; carol approves. breakglass leases credentials, applies, verifies.")
        self.click(p.bob, approve)
        self.wait_update(approve.message_ts, "needs 1 more approver")
        clicked = self.click(p.carol, approve)
        self.wait_verified(approve.message_ts, clicked, "final approval → verified on both servers")
        self.served(NEW_VALUE, 60)

        self.say("Later: the primary is back. bob asks to roll back; alice and carol approve.")
        rollback = self.fake.find_button(action_id="rollback", channel=DEFAULT_CHANNEL)
        self.click(p.bob, rollback)
        approve_rollback = self.plan_button(2)
        self.click(p.alice, approve_rollback)
        self.wait_update(approve_rollback.message_ts, "needs 1 more approver")
        clicked = self.click(p.carol, approve_rollback)
        self.wait_verified(approve_rollback.message_ts, clicked, "rollback approval → verified on both servers")
        self.served(OLD_VALUE, 300)
        if self.fake.violations:
            raise DemoFailed(f"Slack would have refused some calls: {self.fake.violations}")
        return self.timings


def _report(console: Console, timings: Timings) -> None:
    table = Table("what", "time", title="Timings (this machine, loopback)")
    for label, seconds in timings.acks.items():
        table.add_row(f"ack of {label}", f"{seconds * 1000:.1f} ms")
    for label, seconds in timings.phases.items():
        table.add_row(label, f"{seconds * 1000:.0f} ms")
    console.print(table)


def run_demo(console: Console, *, verbose: bool = False) -> int:
    log = sys.stderr if verbose else io.StringIO()
    try:
        console.print("Starting OpenBao, BIND primary + secondary, a Slack stand-in and the bot on 127.0.0.1…")
        with LocalStack(log_stream=log) as stack:
            console.print(
                f"  OpenBao {stack.vault.address} · BIND primary {stack.bind.primary} · "
                f"secondary {stack.bind.secondary} · bot {stack.http.url}",
                highlight=False,
            )
            timings = Incident(stack, console).play()
    except (DemoFailed, TimeoutError, LookupError, RuntimeError, BreakglassError) as error:
        console.print(f"\n[bold red]demo failed:[/bold red] {error}", highlight=False)
        return 1
    console.print("\n[bold green]✔ change verified on every server, rolled back, rollback verified.[/bold green]")
    _report(console, timings)
    return 0
