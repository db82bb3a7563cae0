"""Socket Mode after a reconnect: how soon the first envelope on the new connection is acked.

The Socket Mode stand-in (sandbox/fake_socket_mode.py) ends the connection four ways: the two
Slack uses, ``asked`` (a ``disconnect`` message; the client opens a new connection and Slack sends
there only) and ``dropped`` (Slack closes the connection with a close frame), and the two a proxy or
load balancer dropping the tunnel does, with no close frame: ``cut`` (end-of-stream, a TCP FIN) and
``reset`` (a TCP RST). As soon as the new connection has said hello, the stand-in sends a slash
command and times it until its ack comes back, as Slack would (Slack allows 3 s). It also times the
reconnect itself (the stand-in's message or close -> the new connection open), the CPU time this
process used meanwhile (a reader spinning on a dead socket shows as about 1 s per second), and
``close()`` at the end (what SIGTERM waits for).

Two clients, alternating, each in this process with a Bolt app that only acks:
``stock`` is slack_bolt's SocketModeHandler on slack_sdk's built-in client, as breakglass used it;
``breakglass`` is bot.socket_mode.SocketModeRunner (bot/socket_client.py).

    python -m bench.socket_reconnect [--asked 50] [--dropped 10] [--cut 2] [--reset 4] [--ping-interval 10]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bench._common import percentile, save, show
from bot.socket_mode import SocketModeRunner
from sandbox.fake_slack import FakeSlack
from sandbox.fake_socket_mode import ACK_DEADLINE, FakeSocketMode

BOT_TOKEN = "xoxb-1-bench"  # noqa: S105 (the stand-in's, not a secret)  # nosec B105
APP_TOKEN = "xapp-1-A0BREAKGLASS-1-" + "5e" * 16
CLIENTS = ("stock", "breakglass")
WAIT = 60.0
WAIT_RECONNECT = 600.0  # slack_sdk's own client takes about 6 x ping_interval after a cut


@dataclass
class Samples:
    reconnect: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    ack: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)


def ack_only_app(fake: FakeSlack) -> App:
    app = App(
        signing_secret="unused",  # noqa: S106  # nosec B106
        client=WebClient(token=BOT_TOKEN, base_url=fake.api_url),
        token_verification_enabled=False,
    )

    def ack_only(ack: Ack) -> None:
        ack()

    app.command("/dns")(ack_only)
    return app


def open_client(which: str, app: App, ping_interval: float) -> Callable[[], None]:
    """Connect ``which`` client; returns its close()."""
    if which == "stock":
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(app, APP_TOKEN, ping_interval=ping_interval)
        handler.connect()  # type: ignore[no-untyped-call]  # slack_bolt leaves it untyped
        return handler.close
    runner = SocketModeRunner(app, APP_TOKEN, ping_interval=ping_interval).connect()
    return runner.close


def one_round(which: str, kind: str, count: int, ping_interval: float, into: Samples) -> None:
    """``count`` reconnects of ``kind`` for a freshly connected ``which`` client."""
    with FakeSlack(BOT_TOKEN) as fake, FakeSocketMode(fake, APP_TOKEN) as socket:
        close = open_client(which, ack_only_app(fake), ping_interval)
        try:
            socket.wait_connected(timeout=WAIT)
            for _ in range(count):
                accepted = socket.accepted
                started, cpu = time.monotonic(), time.process_time()
                end_connection(socket, kind)
                socket.wait_connected(accepted=accepted + 1, timeout=WAIT_RECONNECT)
                into.reconnect.append(time.monotonic() - started)
                into.cpu.append(time.process_time() - cpu)
                sent = socket.push("slash_commands", {"command": "/dns", "text": "help", "user_id": "U0BENCH"})
                into.ack.append(socket.wait_for_ack(sent, timeout=WAIT).seconds)
        finally:
            started = time.monotonic()
            close()
            into.close.append(time.monotonic() - started)


def end_connection(socket: FakeSocketMode, kind: str) -> None:
    if kind == "asked":
        socket.ask_to_reconnect()
    elif kind == "dropped":
        socket.drop_connections()
    else:
        socket.cut_connections(reset=kind == "reset")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--asked", type=int, default=50, help="Reconnects Slack asks for, per client.")
    parser.add_argument("--dropped", type=int, default=10, help="Connections Slack closes, per client.")
    parser.add_argument("--cut", type=int, default=2, help="Connections ended by a FIN, no close frame, per client.")
    parser.add_argument("--reset", type=int, default=4, help="Connections reset (RST), no close frame, per client.")
    parser.add_argument("--rounds", type=int, default=2, help="Each client this many times, alternating.")
    parser.add_argument("--ping-interval", type=float, default=10, help="The client's ping interval (s).")
    args = parser.parse_args()
    kinds = {"asked": args.asked, "dropped": args.dropped, "cut": args.cut, "reset": args.reset}
    kinds = {kind: total for kind, total in kinds.items() if total > 0}
    samples = {(which, kind): Samples() for which in CLIENTS for kind in kinds}
    for _ in range(args.rounds):
        for kind, total in kinds.items():
            for which in CLIENTS:
                one_round(which, kind, -(-total // args.rounds), args.ping_interval, samples[which, kind])

    rows, results = [], {}
    for (which, kind), got in samples.items():
        late = sum(seconds > ACK_DEADLINE for seconds in got.ack)
        results[f"{which}/{kind}"] = {
            "ack_s": got.ack, "reconnect_s": got.reconnect, "reconnect_cpu_s": got.cpu, "close_s": got.close,
            "acks_past_3s": late,
        }  # fmt: skip
        rows.append([
            which, kind, str(len(got.ack)),
            f"{percentile(got.ack, 50) * 1000:.0f}", f"{percentile(got.ack, 99) * 1000:.0f}",
            f"{max(got.ack) * 1000:.0f}", f"{late}",
            f"{percentile(got.reconnect, 50) * 1000:.0f}", f"{max(got.reconnect) * 1000:.0f}",
            f"{percentile(got.cpu, 50) * 1000:.0f}", f"{max(got.cpu) * 1000:.0f}", f"{max(got.close) * 1000:.0f}",
        ])  # fmt: skip
    show(
        f"Socket Mode: first envelope after a reconnect (ping_interval {args.ping_interval:g} s)",
        ["client", "reconnect", "n", "ack p50 ms", "ack p99 ms", "ack max ms", f"acks > {ACK_DEADLINE:g} s",
         "reconnect p50 ms", "reconnect max ms", "CPU p50 ms", "CPU max ms", "close() max ms"],
        rows,
    )  # fmt: skip
    path = save("socket_reconnect", {"ping_interval_s": args.ping_interval, "results": results})
    print(f"raw samples: {path}")


if __name__ == "__main__":
    main()
