"""Ack latency: 50 concurrent signed slash commands and button clicks, bot vs a bare Bolt app.

Both apps run in this process behind the same adapter (Bolt's WSGI handler on waitress,
8 threads) and receive the same signed requests over loopback HTTP from a load generator
in another process (bench/_loadgen.py), as Slack's would come from elsewhere. The bare app
only acks; the bot parses, acks, and then does its real work (planning against BIND,
posting to the Slack stand-in) in lazy listeners that compete for the same 2 cores.

Rounds interleave the two apps (bare burst, bot burst, ...) so that load from other work
on the machine falls on both alike; after each bot burst the script waits for the bot to
finish the work the burst queued, so every burst starts from an idle bot.

    python -m bench.ack_latency [--rounds 10] [--concurrency 50] [--ack-only]
Target: bot p99 <= 1.3 x bare Bolt p99.
"""

from __future__ import annotations

import argparse

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bench._common import console, save, show, summary
from bench._loadgen import LoadGenerator
from bot.http import HttpServer
from cli.localstack import LocalStack
from sandbox.fake_slack import Button, FakeSlack
from sandbox.slack_signing import block_action_body, slash_command_body

TARGET = 1.3
WARM_UP = 10  # requests of each kind sent to each app before measuring
DRAIN_TIMEOUT = 60.0


def bare_bolt(signing_secret: str, api_url: str, token: str) -> App:
    """What any Bolt app costs: signature check, routing, an empty ack."""
    app = App(
        signing_secret=signing_secret,
        client=WebClient(token=token, base_url=api_url),
        process_before_response=True,
        token_verification_enabled=False,
    )

    def ack_only(ack: Ack) -> None:
        ack()

    app.command("/dns")(ack_only)
    app.action("approve")(ack_only)
    return app


def command_bodies(fake: FakeSlack, requesters: list[str], count: int, tag: str, ack_only: bool) -> list[bytes]:
    """``count`` slash commands by the policy's requesters, each with its own response_url, as Slack sends them."""
    bodies = []
    for i in range(count):
        user = requesters[i % len(requesters)]
        text = "help" if ack_only else f'set api.example.test A 203.0.113.{(i % 200) + 1} ttl=60 reason="bench {tag}"'
        hook = fake.hooks_url(f"bench-{tag}-{i}", channel="C0OPS", user=user)
        bodies.append(
            slash_command_body("/dns", text, user_id=user, response_url=hook, trigger_id=fake.issue_trigger_id(user))
        )
    return bodies


def click_bodies(fake: FakeSlack, button: Button, users: list[str], tag: str) -> list[bytes]:
    """Every user clicks Approve on the same plan message (they are not approvers: refused after the ack)."""
    bodies = []
    for i, user in enumerate(users):
        hook = fake.hooks_url(f"bench-click-{tag}-{i}", channel=button.channel, user=user)
        bodies.append(block_action_body(button, user, hook, trigger_id=fake.issue_trigger_id(user)))
    return bodies


class Bench:
    """Sends bursts to both apps and waits for the bot's after-ack work between bursts."""

    def __init__(self, stack: LocalStack, bare_url: str, load: LoadGenerator, ack_only: bool) -> None:
        self.stack, self.bare_url, self.load, self.ack_only = stack, bare_url, load, ack_only

    def burst(self, url: str, bodies: list[bytes]) -> list[float]:
        seconds, statuses = self.load.burst(url, self.stack.signing_secret, bodies)
        assert all(s == 200 for s in statuses), statuses
        return seconds

    def commands(self, url: str, count: int, tag: str) -> list[float]:
        fake, people = self.stack.fake, self.stack.people
        before = len(fake.calls("chat.postMessage"))
        requesters = [people.alice, people.bob, people.carol]
        seconds = self.burst(url, command_bodies(fake, requesters, count, tag, self.ack_only))
        if url != self.bare_url and not self.ack_only:  # each command is planned and posts its plan message
            fake.wait_for("chat.postMessage", count=before + count, timeout=DRAIN_TIMEOUT)
        return seconds

    def clicks(self, url: str, button: Button, users: list[str], tag: str) -> list[float]:
        fake = self.stack.fake
        before = len(fake.calls("chat.postEphemeral"))
        seconds = self.burst(url, click_bodies(fake, button, users, tag))
        if url != self.bare_url:  # each refused click gets an ephemeral "you are not an approver"
            fake.wait_for("chat.postEphemeral", count=before + len(users), timeout=DRAIN_TIMEOUT)
        return seconds


def run(rounds: int, concurrency: int, ack_only: bool) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {
        "command": {"bare": [], "bot": []},
        "click": {"bare": [], "bot": []},
    }
    with LocalStack() as stack, LoadGenerator() as load:
        users = [f"U0BENCH{i:03d}" for i in range(concurrency)]  # not approvers: clicks are refused
        stack.slack.command('set api.example.test A 203.0.113.250 reason="bench plan"', stack.people.alice)
        stack.fake.wait_for("chat.postMessage", timeout=30)
        button = stack.fake.find_button(action_id="approve")
        bare_server = HttpServer(bare_bolt(stack.signing_secret, stack.fake.api_url, stack.bot_token), port=0)
        bare_server.start_in_background()
        try:
            bench = Bench(stack, bare_server.url, load, ack_only)
            apps = {"bare": bare_server.url, "bot": stack.http.url}
            for name, url in apps.items():  # warm-up, both sides
                bench.commands(url, WARM_UP, f"warm-{name}")
                bench.clicks(url, button, users[:WARM_UP], f"warm-{name}")
            for r in range(rounds):
                for name, url in apps.items():
                    samples["command"][name] += bench.commands(url, concurrency, f"{r}-{name}")
                for name, url in apps.items():
                    samples["click"][name] += bench.clicks(url, button, users, f"{r}-{name}")
        finally:
            bare_server.stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--ack-only", action="store_true", help="measure /dns help (no work after the ack)")
    args = parser.parse_args()
    samples = run(args.rounds, args.concurrency, args.ack_only)

    rows, data = [], {}
    for kind in ("command", "click"):
        b, o = summary(samples[kind]["bare"]), summary(samples[kind]["bot"])
        ratio = o["p99_ms"] / b["p99_ms"]
        data[kind] = {"bare_bolt": b, "breakglass": o, "p99_ratio": ratio, "p50_ratio": o["p50_ms"] / b["p50_ms"]}
        rows.append(
            [
                kind,
                f"{b['p50_ms']:.1f}",
                f"{b['p99_ms']:.1f}",
                f"{o['p50_ms']:.1f}",
                f"{o['p99_ms']:.1f}",
                f"{ratio:.2f}x",
                "yes" if ratio <= TARGET else "NO",
            ]
        )
    show(
        f"Ack latency, {args.concurrency} concurrent signed requests x {args.rounds} rounds (ms)",
        ["request", "bare p50", "bare p99", "bot p50", "bot p99", "p99 ratio", f"<= {TARGET}x"],
        rows,
    )
    extra = {"rounds": args.rounds, "concurrency": args.concurrency, "ack_only": args.ack_only}
    console.print(f"saved {save('ack_latency' + ('_ack_only' if args.ack_only else ''), {**extra, **data})}")


if __name__ == "__main__":
    main()
