"""Memory: RSS of a serving bot (`breakglass serve`) after real work, vs a bare Bolt app on the same adapter.

The bot runs as `breakglass serve` in its own process, configured like the local stack
(cli/localstack.py: OpenBao, BIND primary + secondary, the Slack stand-in). It handles
``--changes`` full requests (/dns set, two approvals, lease, apply, verify) plus refused clicks
and /dns status. The baseline (bench/bare_bolt_server.py) is an ack-only Bolt app on the same
adapter (Bolt's WSGI handler on waitress, 8 threads) that receives as many requests. Both are
measured once idle again: RSS (resident now) and HWM (the peak) from /proc.

    python -m bench.memory [--changes 5]
Target: bot RSS <= 1.5 x bare Bolt RSS.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench._common import console, save, show
from cli.localstack import LocalStack
from sandbox.fake_slack import SlackCall
from sandbox.net import free_port, wait_until
from sandbox.slack_signing import DEFAULT_CHANNEL, SlackClientSimulator

TARGET = 1.5
WAIT = 30.0
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in KiB, from /proc (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(rest.split()[0])
    return fields


@contextmanager
def serving(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command`` (it listens on 127.0.0.1:``port``), wait until it answers, stop it by PID afterwards."""
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
            request = urllib.request.Request(f"http://127.0.0.1:{port}/slack/events", data=b"", method="POST")  # noqa: S310
            try:
                _OPENER.open(request, timeout=1)
            except urllib.error.HTTPError:
                return True  # any HTTP answer (401: unsigned) means it is serving
            return True

        wait_until(up, 30, f"{command[0]} on port {port}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def is_plan_post(call: SlackCall) -> bool:
    return call.args.get("channel") == DEFAULT_CHANNEL and not call.args.get("thread_ts")


def full_change(stack: LocalStack, slack: SlackClientSimulator, value: str) -> None:
    """/dns set by alice, approvals by bob and carol, then wait for the thread to say Verified."""
    fake, people = stack.fake, stack.people
    before = len([c for c in fake.calls("chat.postMessage") if is_plan_post(c)])
    assert slack.command(f'set api.example.test A {value} ttl=60 reason="bench memory"', people.alice).status == 200
    fake.wait_for("chat.postMessage", count=before + 1, timeout=WAIT, predicate=is_plan_post)
    button = fake.find_button(action_id="approve", channel=DEFAULT_CHANNEL)
    assert slack.click(button, people.bob).status == 200
    deadline = time.monotonic() + WAIT
    while not stack.service.status(button.value or "").approvals:  # the same database as the served bot
        assert time.monotonic() < deadline, "bob's approval never arrived"
        time.sleep(0.01)
    assert slack.click(button, people.carol).status == 200

    def verified(call: SlackCall) -> bool:
        return call.args.get("thread_ts") == button.message_ts and str(call.args.get("text", "")).startswith("Verified")

    fake.wait_for("chat.postMessage", timeout=WAIT, predicate=verified)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--clicks", type=int, default=20, help="refused clicks and /dns status commands, each")
    args = parser.parse_args()
    with LocalStack() as stack:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": stack.bot_token,
            "SLACK_SIGNING_SECRET": stack.signing_secret,
            "SLACK_API_URL": stack.fake.api_url,
        }
        bot_port, bare_port = free_port(), free_port()
        breakglass = str(Path(sys.executable).with_name("breakglass"))
        bot_cmd = [breakglass, "serve", "--config", str(stack.config_path), "--port", str(bot_port)]
        bare_cmd = [sys.executable, "-m", "bench.bare_bolt_server", "--port", str(bare_port)]
        with (
            serving(bot_cmd, env, bot_port, stack.workdir / "serve.log") as bot,
            serving(bare_cmd, env, bare_port, stack.workdir / "bare.log") as bare,
        ):
            idle = {"bot": memory_kib(bot.pid), "bare": memory_kib(bare.pid)}
            bot_slack = SlackClientSimulator(
                f"http://127.0.0.1:{bot_port}/slack/events", stack.signing_secret, stack.fake
            )
            bare_slack = SlackClientSimulator(
                f"http://127.0.0.1:{bare_port}/slack/events", stack.signing_secret, stack.fake
            )
            for i in range(args.changes):
                full_change(stack, bot_slack, f"203.0.113.{i + 1}")
            button = stack.fake.find_button(action_id="rollback")
            requests = args.changes * 3
            for i in range(args.clicks):
                assert bot_slack.click(button, f"U0NOBODY{i}").status == 200
                assert bot_slack.command("status", stack.people.alice).status == 200
            stack.fake.wait_for("response_url", count=args.clicks, timeout=WAIT)  # the status replies
            stack.fake.wait_for("chat.postEphemeral", count=args.clicks, timeout=WAIT)  # "you may not..."
            for i in range(requests + args.clicks):
                assert (
                    bare_slack.command(f'set api.example.test A 203.0.113.{i % 200 + 1} reason="x"', "U0X").status
                    == 200
                )
                assert bare_slack.click(button, "U0X").status == 200
            after = {"bot": memory_kib(bot.pid), "bare": memory_kib(bare.pid)}

    ratio = after["bot"]["VmRSS"] / after["bare"]["VmRSS"]
    rows = [
        [
            name,
            f"{idle[name]['VmRSS'] / 1024:.1f}",
            f"{after[name]['VmRSS'] / 1024:.1f}",
            f"{after[name]['VmHWM'] / 1024:.1f}",
        ]
        for name in ("bare", "bot")
    ]
    show(
        f"Memory after {args.changes} full changes + {args.clicks} refused clicks and status commands (MiB)",
        ["process", "RSS idle", "RSS after", "peak (HWM)"],
        rows,
    )
    console.print(f"RSS ratio bot/bare {ratio:.2f}x (target <= {TARGET}x): {'yes' if ratio <= TARGET else 'NO'}")
    data = {"changes": args.changes, "clicks": args.clicks, "idle_kib": idle, "after_kib": after, "rss_ratio": ratio}
    console.print(f"saved {save('memory', data)}")


if __name__ == "__main__":
    main()
