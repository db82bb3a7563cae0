"""Time to corrected routing: the final approval click -> every authoritative server serves the new rrset.

The whole bot runs on loopback (cli/localstack.py: OpenBao, a BIND primary + secondary with
TSIG and NOTIFY, the Slack stand-in, the bot over HTTP). Each run, alice asks for
``/dns set api.example.test A <new value>``, bob approves, and the clock starts when carol
sends the final approval click; it stops when the bot posts "Verified" in the request's
thread, i.e. after it leased the TSIG key from Vault, applied, revoked the lease and saw the
new rrset on both servers (a responder learns of it no sooner).

The floor, run alternately on the same BIND pair: ``nsupdate -k`` with the same TSIG key,
then ``dig`` polling the primary and then the secondary until both serve the new value.

    python -m bench.routing_time [--runs 20]
Target: p50 <= 2 x the floor's p50.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import datetime

from bench._common import console, percentile, save, show
from bench._floor import floor_change
from cli.localstack import LocalStack
from core.events import EventKind
from sandbox.fake_slack import SlackCall
from sandbox.slack_signing import DEFAULT_CHANNEL

TARGET = 2.0
NAME = "api.example.test."
WAIT = 30.0
SETTLE = (
    1.0  # seconds between changes: BIND spaces back-to-back NOTIFY/IXFR ~0.5 s; an incident's change meets a quiet BIND
)
STAGES = (EventKind.QUORUM_REACHED, EventKind.CREDENTIALS_LEASED, EventKind.APPLIED, EventKind.VERIFIED)


@dataclass(frozen=True)
class Run:
    seconds: float  # final click sent -> "Verified" posted in the thread
    stages: dict[str, float]  # final click sent -> each audit event (seconds)


def is_plan_post(call: SlackCall) -> bool:
    return call.args.get("channel") == DEFAULT_CHANNEL and not call.args.get("thread_ts")


def one_change(stack: LocalStack, value: str, tag: str) -> Run:
    """alice requests, bob approves, carol's click is timed until the thread says Verified."""
    fake, people = stack.fake, stack.people
    before = len([c for c in fake.calls("chat.postMessage") if is_plan_post(c)])
    reply = stack.slack.command(f'set {NAME} A {value} ttl=60 reason="bench {tag}"', people.alice)
    assert reply.status == 200, reply
    fake.wait_for("chat.postMessage", count=before + 1, timeout=WAIT, predicate=is_plan_post)
    button = fake.find_button(action_id="approve", channel=DEFAULT_CHANNEL)
    request_id = button.value or ""
    assert stack.slack.click(button, people.bob).status == 200
    deadline = time.monotonic() + WAIT
    while not stack.service.status(request_id).approvals:  # bob's approval is in before carol's click
        assert time.monotonic() < deadline, f"bob's approval of {request_id} never arrived"
        time.sleep(0.005)

    def verified(call: SlackCall) -> bool:
        return call.args.get("thread_ts") == button.message_ts and str(call.args.get("text", "")).startswith(
            ("Verified", "Recovered")
        )

    clicked_wall, clicked = time.time(), time.monotonic()
    assert stack.slack.click(button, people.carol).status == 200
    done = fake.wait_for("chat.postMessage", timeout=WAIT, predicate=verified)[-1]
    events = stack.service.status(request_id).events
    stages = {e.kind.value: _seconds_since(clicked_wall, e.at) for e in events if e.kind in STAGES and e.kind.value}
    return Run(done.at - clicked, stages)


def _seconds_since(wall: float, at: datetime) -> float:
    return at.timestamp() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    ours: list[Run] = []
    floor: list[float] = []
    floor_update: list[float] = []
    with LocalStack(verify_timeout=10.0) as stack:
        key_file = stack.bind.run_dir / "key.conf"
        servers = [stack.bind.primary, stack.bind.secondary]
        one_change(stack, "203.0.113.200", "warm-up")
        floor_change(key_file, stack.bind.primary, servers, "example.test.", [(NAME, 60, "A", "203.0.113.201")])
        for i in range(args.runs):
            time.sleep(SETTLE)
            ours.append(one_change(stack, f"203.0.113.{i + 1}", str(i)))
            time.sleep(SETTLE)
            result = floor_change(
                key_file, stack.bind.primary, servers, "example.test.", [(NAME, 60, "A", f"198.51.100.{i + 1}")]
            )
            floor.append(result.seconds)
            floor_update.append(result.update_seconds)

    bot = [r.seconds for r in ours]
    rows = []
    data: dict[str, object] = {"runs": args.runs}
    for label, samples in (("breakglass (click -> Verified)", bot), ("floor (nsupdate + dig)", floor)):
        rows.append([label, f"{percentile(samples, 50) * 1000:.0f}", f"{percentile(samples, 90) * 1000:.0f}"])
    ratio = percentile(bot, 50) / percentile(floor, 50)
    stage_p50 = {
        kind.value: percentile([r.stages[kind.value] for r in ours if kind.value in r.stages], 50) for kind in STAGES
    }
    data.update(
        breakglass_seconds=bot,
        floor_seconds=floor,
        floor_nsupdate_seconds=floor_update,
        breakglass_p50=percentile(bot, 50),
        breakglass_p90=percentile(bot, 90),
        floor_p50=percentile(floor, 50),
        floor_p90=percentile(floor, 90),
        p50_ratio=ratio,
        p90_ratio=percentile(bot, 90) / percentile(floor, 90),
        stages_p50_seconds=stage_p50,
    )
    show(
        f"Time to corrected routing, BIND primary + secondary, {args.runs} runs each (ms)",
        ["path", "p50", "p90"],
        rows,
    )
    stages = ", ".join(f"{k} {v * 1000:.0f}" for k, v in stage_p50.items())
    console.print(f"breakglass p50 from the click to each audit event (ms): {stages}")
    console.print(f"floor p50: nsupdate alone {percentile(floor_update, 50) * 1000:.0f} ms")
    console.print(f"ratio p50 {ratio:.2f}x (target <= {TARGET}x): {'yes' if ratio <= TARGET else 'NO'}")
    console.print(f"saved {save('routing_time', data)}")


if __name__ == "__main__":
    main()
