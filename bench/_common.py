"""Shared bits of the benchmark scripts: percentiles, tables and saving results."""

from __future__ import annotations

import json
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"

# The local stack's policy with a pre-agreed bulk failover: the benches re-point most of the zone in
# one request, which the policy's "too much change" limit (30 % by default) refuses unless a rule allows it.
BULK_FAILOVER_RULES = """
  - name: bulk-failover
    zone: example.test
    names: ["*"]
    types: [A, AAAA, CNAME, TXT, MX, SRV, NS]
    requesters: [sre]
    approvals:
      count: 2
      approvers: [sre]
    expires_after: 30m
    max_change_fraction: 1.0
"""

console = Console(width=150)  # wide tables stay readable when piped to a file


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lower, upper = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (k - lower)


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "mean_ms": statistics.fmean(samples) * 1000,
    }


def show(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    console.print(table)


def save(name: str, data: dict[str, object]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"measured_at": datetime.now(UTC).isoformat(), "machine": platform.machine(), "cpus": _cpus(), **data}
    path.write_text(json.dumps(payload, indent=2))
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))
