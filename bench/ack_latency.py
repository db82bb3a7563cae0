"""Ack latency: 50 concurrent signed slash commands and button clicks, bot vs a bare Bolt app.

Both apps run in this process behind the same adapter (Bolt's WSGI handler on waitress,
8 threads) and receive the same signed requests over loopback HTTP. The bare app only
acks; the bot parses, acks, and then does its real work (planning against BIND, posting
to the Slack stand-in) in lazy listeners that compete for the same 2 cores.

    python -m bench.ack_latency [--rounds 5] [--concurrency 50]
Target: bot p99 <= 1.3 x bare Bolt p99.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bench._common import console, save, show, summary
from bot.http import HttpServer
from cli.localstack import LocalStack
from sandbox.fake_slack import Button
from sandbox.slack_signing import SlackClientSimulator


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


def burst(send: Callable[[int], float], concurrency: int) -> list[float]:
    """``concurrency`` requests released at the same instant; returns each one's latency."""
    barrier = threading.Barrier(concurrency)
    latencies: list[float] = [0.0] * concurrency

    def one(i: int) -> None:
        barrier.wait()
        latencies[i] = send(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


ACK_ONLY = False


def measure(sim: SlackClientSimulator, button: Button, users: list[str], rounds: int, n: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"command": [], "click": []}
    for r in range(rounds):

        def command(i: int, r: int = r) -> float:
            text = (
                "help"
                if ACK_ONLY
                else f'set api.example.test A 203.0.113.{(i % 200) + 1} ttl=60 reason="bench {r}-{i}"'
            )
            reply = sim.command(text, users[i % len(users)])
            assert reply.status == 200, reply
            return reply.seconds

        def click(i: int) -> float:
            reply = sim.click(button, users[i % len(users)])
            assert reply.status == 200, reply
            return reply.seconds

        results["command"] += burst(command, n)
        results["click"] += burst(click, n)
    return results


def drain(stack: LocalStack, clicks: int) -> None:
    """Let the bot finish the work it queued after its acks before everything is torn down."""
    stack.fake.wait_for("chat.postEphemeral", count=clicks, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--ack-only", action="store_true", help="measure /dns help (no work after the ack)")
    args = parser.parse_args()
    global ACK_ONLY
    ACK_ONLY = args.ack_only

    with LocalStack() as stack:
        users = [f"U0BENCH{i:03d}" for i in range(args.concurrency)]  # not approvers: clicks are refused
        stack.slack.command('set api.example.test A 203.0.113.250 reason="bench plan"', stack.people.alice)
        stack.fake.wait_for("chat.postMessage", timeout=30)
        button = stack.fake.find_button(action_id="approve")

        bare_server = HttpServer(bare_bolt(stack.signing_secret, stack.fake.api_url, stack.bot_token), port=0)
        bare_server.start_in_background()
        try:
            bare_sim = SlackClientSimulator(bare_server.url, stack.signing_secret, stack.fake)
            measure(bare_sim, button, users, 1, 10)  # warm-up, both sides
            measure(stack.slack, button, users, 1, 10)
            bare = measure(bare_sim, button, users, args.rounds, args.concurrency)
            bot = measure(stack.slack, button, users, args.rounds, args.concurrency)
            drain(stack, args.rounds * args.concurrency + 20)
        finally:
            bare_server.stop()

    rows, data = [], {}
    for kind in ("command", "click"):
        b, o = summary(bare[kind]), summary(bot[kind])
        ratio = o["p99_ms"] / b["p99_ms"]
        data[kind] = {"bare_bolt": b, "breakglass": o, "p99_ratio": ratio}
        rows.append(
            [
                kind,
                f"{b['p50_ms']:.1f}",
                f"{b['p99_ms']:.1f}",
                f"{o['p50_ms']:.1f}",
                f"{o['p99_ms']:.1f}",
                f"{ratio:.2f}x",
                "yes" if ratio <= 1.3 else "NO",
            ]
        )
    show(
        f"Ack latency, {args.concurrency} concurrent signed requests x {args.rounds} rounds (ms)",
        ["request", "bare p50", "bare p99", "bot p50", "bot p99", "p99 ratio", "<= 1.3x"],
        rows,
    )
    console.print(f"saved {save('ack_latency', {'rounds': args.rounds, 'concurrency': args.concurrency, **data})}")


if __name__ == "__main__":
    main()
