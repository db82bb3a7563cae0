"""Scaling: time to corrected routing as records per request and concurrent requests grow.

The local stack (cli/localstack.py: OpenBao, BIND primary + secondary with TSIG and NOTIFY)
driven through its service, since one Slack command changes one rrset. The clock starts at
the final approval and stops at the verdict: lease from Vault, re-read and compare, apply,
revoke, verify on both servers, record the outcome. A pause separates runs, so each change
meets a quiet BIND (it spaces back-to-back NOTIFY/IXFR about 0.5 s apart).

* records per request: 1, 10, 100, 1,000 rrsets re-pointed in one request; floor alongside:
  ``nsupdate`` of the same records, then ``dig`` on both servers for the last one.
* concurrent requests: 1, 10, 50 one-record requests, planned and half-approved first, then
  all final approvals at once (one thread each, as the bot's lazy listeners would run them).

    python -m bench.scaling [--sizes 1,10,100,1000] [--concurrency 1,10,50] [--runs 3]
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass

from bench._common import BULK_FAILOVER_RULES, console, percentile, save, show
from bench._floor import floor_change
from cli.localstack import SEED, LocalStack
from core.models import Principal, PrincipalSource, RecordEdit
from core.ports import StoredRequest
from core.records import RecordType, RRset
from sandbox.quiet import QuietNotifier

ZONE = "example.test."
TTL = 300
SETTLE = 1.0


def name(i: int) -> str:
    return f"h{i:04d}.{ZONE}"


def value(generation: int, i: int) -> str:
    """Record data only (never contacted): loopback addresses, unique per generation and record."""
    return f"127.{generation % 250 + 1}.{i // 256}.{i % 256}"


@dataclass(frozen=True)
class Timed:
    final_approval_to_verdict: float
    request_to_verdict: float


class Driver:
    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        people = stack.people
        self.alice, self.bob, self.carol = (
            Principal(PrincipalSource.SLACK, u) for u in (people.alice, people.bob, people.carol)
        )

    def prepare(self, indexes: list[int], generation: int) -> StoredRequest:
        """Plan re-pointing ``indexes`` and give it bob's approval: one approval short of applying."""
        edits = [
            RecordEdit(name(i), RecordType.A, RRset(name(i), RecordType.A, TTL, (value(generation, i),)))
            for i in indexes
        ]
        stored = self.stack.service.request_change(self.alice, edits, f"bench scaling {generation}")
        self.stack.service.approve(stored.request.id, self.bob)
        return stored

    def finish(self, stored: StoredRequest) -> float:
        """carol's final approval and the whole execution; returns its seconds."""
        service = self.stack.service
        started = time.perf_counter()
        assert service.approve(stored.request.id, self.carol).ready_to_apply
        result = service.execute(stored.request.id, QuietNotifier())
        seconds = time.perf_counter() - started
        assert result.stored.state.value == "verified", result.stored.state
        return seconds

    def one(self, indexes: list[int], generation: int) -> Timed:
        started = time.perf_counter()
        stored = self.prepare(indexes, generation)
        final = self.finish(stored)
        return Timed(final, time.perf_counter() - started)


def by_size(stack: LocalStack, driver: Driver, sizes: list[int], runs: int) -> dict[str, dict[str, object]]:
    key_file = stack.bind.run_dir / "key.conf"
    servers = [stack.bind.primary, stack.bind.secondary]
    results: dict[str, dict[str, object]] = {}
    generation = 0
    for size in sizes:
        ours: list[Timed] = []
        floor: list[float] = []
        for _ in range(runs):
            generation += 2
            time.sleep(SETTLE)
            ours.append(driver.one(list(range(size)), generation))
            time.sleep(SETTLE)
            records = [(name(i), TTL, "A", value(generation + 1, i)) for i in range(size)]
            floor.append(floor_change(key_file, stack.bind.primary, servers, ZONE, records).seconds)
        final = [t.final_approval_to_verdict for t in ours]
        total = [t.request_to_verdict for t in ours]
        results[str(size)] = {
            "final_approval_to_verdict": final,
            "request_to_verdict": total,
            "floor": floor,
            "p50": percentile(final, 50),
            "p90": percentile(final, 90),
            "request_p50": percentile(total, 50),
            "floor_p50": percentile(floor, 50),
        }
        console.print(
            f"{size} records: final approval -> verified p50 {percentile(final, 50) * 1000:.0f} ms, "
            f"request -> verified {percentile(total, 50) * 1000:.0f} ms, floor {percentile(floor, 50) * 1000:.0f} ms"
        )
    return results


def by_concurrency(driver: Driver, levels: list[int], runs: int) -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    generation = 1000
    for level in levels:
        each: list[float] = []
        walls: list[float] = []
        for _ in range(runs):
            generation += 1
            time.sleep(SETTLE)
            prepared = [driver.prepare([i], generation) for i in range(level)]
            seconds = [0.0] * level
            barrier = threading.Barrier(level + 1)

            def work(
                k: int, stored: StoredRequest, barrier: threading.Barrier = barrier, out: list[float] = seconds
            ) -> None:
                barrier.wait()
                out[k] = driver.finish(stored)

            threads = [threading.Thread(target=work, args=(k, s)) for k, s in enumerate(prepared)]
            for thread in threads:
                thread.start()
            barrier.wait()
            started = time.perf_counter()
            for thread in threads:
                thread.join()
            walls.append(time.perf_counter() - started)
            each += seconds
        results[str(level)] = {
            "per_request": each,
            "all_verified": walls,
            "p50": percentile(each, 50),
            "p90": percentile(each, 90),
            "all_verified_p50": percentile(walls, 50),
        }
        console.print(
            f"{level} concurrent: each p50 {percentile(each, 50) * 1000:.0f} ms, "
            f"p90 {percentile(each, 90) * 1000:.0f} ms, all verified after {percentile(walls, 50) * 1000:.0f} ms"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100,1000")
    parser.add_argument("--concurrency", default="1,10,50")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    levels = [int(c) for c in args.concurrency.split(",") if c]
    seed = SEED + tuple((name(i), "A", TTL, value(0, i)) for i in range(max(sizes + levels)))
    with LocalStack(seed=seed, verify_timeout=60.0, policy_rules=BULK_FAILOVER_RULES) as stack:
        driver = Driver(stack)
        driver.one([0], 1)  # warm-up
        sizes_result = by_size(stack, driver, sizes, args.runs)
        levels_result = by_concurrency(driver, levels, args.runs)

    show(
        f"Time to corrected routing by records per request, BIND pair, p50 of {args.runs} (ms)",
        ["records", "final approval -> verified", "request -> verified", "floor (nsupdate + dig)", "ratio"],
        [
            [
                size,
                f"{float(r['p50']) * 1000:.0f}",  # type: ignore[arg-type]
                f"{float(r['request_p50']) * 1000:.0f}",  # type: ignore[arg-type]
                f"{float(r['floor_p50']) * 1000:.0f}",  # type: ignore[arg-type]
                f"{float(r['p50']) / float(r['floor_p50']):.2f}x",  # type: ignore[arg-type]
            ]
            for size, r in sizes_result.items()
        ],
    )
    show(
        f"Time to corrected routing by concurrent requests (1 record each), {args.runs} rounds (ms)",
        ["concurrent", "each p50", "each p90", "all verified (p50)"],
        [
            [
                level,
                f"{float(r['p50']) * 1000:.0f}",  # type: ignore[arg-type]
                f"{float(r['p90']) * 1000:.0f}",  # type: ignore[arg-type]
                f"{float(r['all_verified_p50']) * 1000:.0f}",  # type: ignore[arg-type]
            ]
            for level, r in levels_result.items()
        ],
    )
    data = {"runs": args.runs, "by_records": sizes_result, "by_concurrency": levels_result}
    console.print(f"saved {save('scaling', data)}")


if __name__ == "__main__":
    main()
