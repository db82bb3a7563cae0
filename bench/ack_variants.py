"""Why the bot acks slower than a bare Bolt app, and what the cheap fixes buy (the ack-latency investigation).

Two measurements:

1. ``dispatch``: CPU per ``App.dispatch`` of one signed command and one click, called directly
   (no HTTP, lazy listeners handed to an executor that drops them), for the bare app, the bot,
   and the bot without Bolt's deep copy of each request for its lazy listeners. Low-noise:
   it shows what the ack path itself costs.
2. ``variants``: bench/ack_latency.py (50 concurrent requests, load from another process) with
   the bot changed at run time in a fresh process per variant, variants alternating:
   ``as-is``; ``executor-2`` (Bolt's lazy-listener executor capped at 2 threads instead of 5:
   less after-ack work competes with the acks for the GIL); ``no-deepcopy`` (Bolt builds each
   lazy listener's request by re-parsing the body AND deep-copying it: keep the re-parse only);
   ``both``.

These are experiments on Bolt internals, not the bot's configuration: see docs/benchmarks.md
for what was adopted and why.

    python -m bench.ack_variants [--repeats 2] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from bench._common import console, percentile, save, show

VARIANTS = ("as-is", "executor-2", "no-deepcopy", "both")


def patch_bot(variant: str) -> None:
    """Make bootstrap.build_slack_app apply ``variant`` to every bot app it builds in this process."""
    import bootstrap

    original = bootstrap.build_slack_app

    def build(*args: Any, **kwargs: Any) -> Any:
        app = original(*args, **kwargs)
        runner: Any = app.listener_runner  # Bolt internals, on purpose
        if variant in ("executor-2", "both"):  # the bot wraps Bolt's executor in bot.ops.ContextExecutor
            capped = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lazy")
            runner.listener_executor._inner = capped
            runner.lazy_listener_runner.executor._inner = capped
        if variant in ("no-deepcopy", "both"):
            runner._build_lazy_request = types.MethodType(_lazy_request_without_deepcopy, runner)
        return app

    bootstrap.build_slack_app = build


def _lazy_request_without_deepcopy(self: Any, request: Any, lazy_func_name: str) -> Any:
    """Bolt's ThreadListenerRunner._build_lazy_request minus ``create_copy``: ``to_copyable`` already
    builds a new request from the raw body, so the deep copy after it copies a fresh object again."""
    copied = request.to_copyable()
    copied.lazy_only = True
    copied.lazy_function_name = lazy_func_name
    copied.context["listener_runner"] = self
    if request.context.get_thread_context is not None:
        copied.context["get_thread_context"] = request.context.get_thread_context
    if request.context.save_thread_context is not None:
        copied.context["save_thread_context"] = request.context.save_thread_context
    return copied


class _Dropping(Executor):
    """An executor that drops its work: dispatch alone is timed, not the lazy listeners."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(None)
        return future


def dispatch_costs(count: int) -> dict[str, dict[str, float]]:
    """Microseconds of CPU per dispatch: bare Bolt, the bot, the bot without the deep copy."""
    from pydantic import SecretStr
    from slack_bolt.request import BoltRequest

    import bootstrap
    from bench.ack_latency import bare_bolt
    from cli.localstack import LocalStack
    from config import SlackSettings
    from sandbox.slack_signing import block_action_body, sign, slash_command_body

    costs: dict[str, dict[str, float]] = {}
    with LocalStack() as stack:
        stack.slack.command('set api.example.test A 203.0.113.250 reason="bench plan"', stack.people.alice)
        stack.fake.wait_for("chat.postMessage", timeout=30)
        button = stack.fake.find_button(action_id="approve")
        slack = SlackSettings(
            bot_token=SecretStr(stack.bot_token),
            signing_secret=SecretStr(stack.signing_secret),
            api_url=stack.fake.api_url,
        )
        bodies = {
            "command": slash_command_body(
                "/dns",
                'set api.example.test A 203.0.113.7 reason="x"',
                user_id="U0X",
                response_url="http://127.0.0.1:1/h",
            ),
            "click": block_action_body(button, "U0X", "http://127.0.0.1:1/h"),
        }
        apps = {"bare Bolt": bare_bolt(stack.signing_secret, stack.fake.api_url, stack.bot_token)}
        for name in ("bot", "bot without the deep copy"):
            app = bootstrap.build_slack_app(stack.service, slack, outbox=stack.outbox)
            runner: Any = app.listener_runner  # Bolt internals, on purpose
            runner.listener_executor = _Dropping()
            runner.lazy_listener_runner.executor = _Dropping()
            if name != "bot":
                runner._build_lazy_request = types.MethodType(_lazy_request_without_deepcopy, runner)
            apps[name] = app
        for name, app in apps.items():
            costs[name] = {}
            for kind, body in bodies.items():
                requests = []
                for _ in range(count):
                    headers = {**sign(stack.signing_secret, body, int(time.time()))}
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                    requests.append(
                        BoltRequest(body=body.decode(), headers={k.lower(): [v] for k, v in headers.items()})
                    )
                started = time.process_time()
                for request in requests:
                    assert app.dispatch(request).status == 200
                costs[name][kind] = (time.process_time() - started) / count * 1e6
    return costs


def run_variant(variant: str, rounds: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.ack_variants", "--one", variant, "--rounds", str(rounds)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def one(variant: str, rounds: int) -> None:
    """In a fresh process: patch the bot, run the ack benchmark, print the samples as JSON."""
    patch_bot(variant)
    from bench.ack_latency import run

    print(json.dumps(run(rounds, 50, ack_only=False)))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--dispatches", type=int, default=2000)
    parser.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.rounds)
        return

    costs = dispatch_costs(args.dispatches)
    show(
        "CPU per App.dispatch, lazy listeners dropped (microseconds)",
        ["app", "command", "click"],
        [[name, f"{c['command']:.0f}", f"{c['click']:.0f}"] for name, c in costs.items()],
    )
    samples: dict[str, dict[str, dict[str, list[float]]]] = {}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            result = run_variant(variant, args.rounds)
            into = samples.setdefault(variant, {k: {"bare": [], "bot": []} for k in ("command", "click")})
            for kind in ("command", "click"):
                for app in ("bare", "bot"):
                    into[kind][app] += result[kind][app]
    rows = []
    summary: dict[str, dict[str, float]] = {}
    for variant, by_kind in samples.items():
        row = [variant]
        summary[variant] = {}
        for kind in ("command", "click"):
            bare, bot = by_kind[kind]["bare"], by_kind[kind]["bot"]
            p50, p99 = percentile(bot, 50) * 1000, percentile(bot, 99) * 1000
            ratio = percentile(bot, 99) / percentile(bare, 99)
            summary[variant].update({f"{kind}_bot_p50_ms": p50, f"{kind}_bot_p99_ms": p99, f"{kind}_p99_ratio": ratio})
            row += [f"{p50:.1f}", f"{p99:.1f}", f"{ratio:.2f}x"]
        rows.append(row)
    show(
        f"Ack latency by variant, 50 concurrent x {args.rounds} rounds x {args.repeats} repeats (ms)",
        ["variant", "command p50", "command p99", "p99 vs bare", "click p50", "click p99", "p99 vs bare"],
        rows,
    )
    console.print(f"saved {save('ack_variants', {'dispatch_us': costs, 'variants': summary})}")


if __name__ == "__main__":
    main()
