"""Draw docs/benchmarks.png from the latest results in bench/results/ (run the benchmarks first).

python -m bench.chart
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from bench._common import RESULTS, console  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.png"
OURS, BASE, EXTRA = "#c0392b", "#7f8c8d", "#2980b9"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def missing(ax: Axes, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "not measured yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def bars(ax: Axes, labels: list[str], series: dict[str, tuple[list[float], str]], unit: str) -> None:
    width = 0.8 / len(series)
    for k, (name, (values, color)) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        drawn = ax.bar(xs, values, width, label=name, color=color)
        ax.bar_label(drawn, fmt="%.0f" if max(values) >= 10 else "%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(unit)
    ax.legend(fontsize=7)


def ack(ax: Axes) -> None:
    data = load("ack_latency")
    title = "1. Ack latency, 50 concurrent (target bot p99 <= 1.3x)"
    if data is None:
        return missing(ax, title)
    labels = ["command p50", "command p99", "click p50", "click p99"]
    bare = [data[k]["bare_bolt"][p] for k in ("command", "click") for p in ("p50_ms", "p99_ms")]
    bot = [data[k]["breakglass"][p] for k in ("command", "click") for p in ("p50_ms", "p99_ms")]
    bars(ax, labels, {"bare Bolt": (bare, BASE), "breakglass": (bot, OURS)}, "ms")
    ax.set_title(
        f"{title}\np99 ratio: command {data['command']['p99_ratio']:.1f}x, click {data['click']['p99_ratio']:.1f}x"
    )


def routing(ax: Axes) -> None:
    data = load("routing_time")
    title = "2. Final click -> both BIND servers serve it (target <= 2x floor)"
    if data is None:
        return missing(ax, title)
    bot = [data["breakglass_p50"] * 1000, data["breakglass_p90"] * 1000]
    floor = [data["floor_p50"] * 1000, data["floor_p90"] * 1000]
    bars(
        ax,
        ["p50", "p90"],
        {"floor: nsupdate + dig": (floor, BASE), "breakglass (Vault lease incl.)": (bot, OURS)},
        "ms",
    )
    ax.set_title(f"{title}\np50 ratio {data['p50_ratio']:.2f}x")


def bulk(ax: Axes) -> None:
    data = load("bulk_failover")
    title = "3. Bulk failover, 1,000 records (target <= 0.5x octoDNS)"
    if data is None:
        return missing(ax, title)
    paths = list(data["paths"])
    stages = [
        ("plan_p50", "plan", "#e6b0aa"),
        ("approvals_p50", "approvals", "#f1948a"),
        ("apply_p50", "apply", "#c0392b"),
        ("queries", "verify: DNS queries", "#922b21"),
        ("recording_p50", "verify: audit events", "#4a1a14"),
    ]
    for p in paths:
        data["paths"][p]["queries"] = data["paths"][p]["verify_p50"] - data["paths"][p].get("recording_p50", 0.0)
    bottom = [0.0] * len(paths)
    xs = [i - 0.2 for i in range(len(paths))]
    for key, label, color in stages:
        values = [data["paths"][p].get(key, 0.0) for p in paths]
        ax.bar(xs, values, 0.4, bottom=bottom, label=f"breakglass: {label}", color=color)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    octo = [data["paths"][p]["octodns_p50"] for p in paths]
    drawn = ax.bar([i + 0.2 for i in range(len(paths))], octo, 0.4, label="octoDNS sync (no verify)", color=BASE)
    ax.bar_label(drawn, fmt="%.2f", fontsize=7)
    for x, total in zip(xs, bottom, strict=True):
        ax.text(x, total, f"{total:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(paths)), paths)
    ax.set_ylabel("seconds")
    ax.legend(fontsize=6)
    ratios = ", ".join(f"{p} {data['paths'][p]['ratio']:.1f}x" for p in paths)
    ax.set_title(f"{title}\nratio: {ratios}")


def memory(ax: Axes) -> None:
    data = load("memory")
    title = "5. RSS after serving requests (target <= 1.5x)"
    if data is None:
        return missing(ax, title)
    after = data["after_kib"]
    values = [after["bare"]["VmRSS"] / 1024, after["bot"]["VmRSS"] / 1024]
    drawn = ax.bar(["bare Bolt + waitress", "breakglass serve"], values, color=[BASE, OURS])
    ax.bar_label(drawn, fmt="%.0f MiB", fontsize=8)
    ax.set_ylabel("MiB")
    ax.set_title(f"{title}\nratio {data['rss_ratio']:.2f}x")


def scaling_records(ax: Axes) -> None:
    data = load("scaling")
    title = "6a. Final approval -> verified, by records per request"
    if data is None:
        return missing(ax, title)
    sizes = [int(s) for s in data["by_records"]]
    ours = [data["by_records"][str(s)]["p50"] * 1000 for s in sizes]
    floor = [data["by_records"][str(s)]["floor_p50"] * 1000 for s in sizes]
    ax.plot(sizes, ours, "o-", color=OURS, label="breakglass (verifies every rrset on both servers)")
    ax.plot(sizes, floor, "s--", color=BASE, label="floor: nsupdate + dig (last record only)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("records re-pointed in one request")
    ax.set_ylabel("ms (p50)")
    ax.legend(fontsize=7)
    ax.set_title(title)


def scaling_concurrency(ax: Axes) -> None:
    data = load("scaling")
    title = "6b. Final approval -> verified, by concurrent requests"
    if data is None:
        return missing(ax, title)
    levels = [int(c) for c in data["by_concurrency"]]
    for key, label, color in (("p50", "each request p50", OURS), ("p90", "each request p90", "#78281f")):
        ax.plot(levels, [data["by_concurrency"][str(c)][key] * 1000 for c in levels], "o-", color=color, label=label)
    walls = [data["by_concurrency"][str(c)]["all_verified_p50"] * 1000 for c in levels]
    ax.plot(levels, walls, "s--", color=EXTRA, label="until the last one is verified")
    ax.set_xlabel("concurrent one-record requests")
    ax.set_ylabel("ms")
    ax.legend(fontsize=7)
    ax.set_title(title)


def audit(ax: Axes) -> None:
    data = load("audit_verify")
    title = "4. Audit chain verification, 1M events (target <= 3x sha256)"
    if data is None:
        return missing(ax, title)
    seconds = data["seconds"]
    labels = ["sha256 alone", "verify, 1 process", "verify, 2 processes", "CLI (incl. start-up)"]
    values = [seconds["sha256"], seconds["verify_1_process"], seconds["verify_2_processes"], seconds["cli"]]
    drawn = ax.bar(labels, values, color=[BASE, OURS, OURS, EXTRA])
    ax.bar_label(drawn, fmt="%.2f s", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("seconds")
    ax.set_title(f"{title}\nratio {data['ratio_1']:.2f}x (1 process), {data['ratio_2']:.2f}x (2)")


def targets(ax: Axes) -> None:
    """The targets and this run's results, as a table in the last panel."""
    rows = []
    ack_ = load("ack_latency")
    if ack_:
        worst = max(ack_["command"]["p99_ratio"], ack_["click"]["p99_ratio"])
        rows.append(["1. ack p99 vs bare Bolt", "<= 1.3x", f"{worst:.1f}x"])
    routing_ = load("routing_time")
    if routing_:
        rows.append(["2. time to corrected routing vs floor", "<= 2x", f"{routing_['p50_ratio']:.2f}x"])
    bulk_ = load("bulk_failover")
    if bulk_:
        worst = max(r["ratio"] for r in bulk_["paths"].values())
        best = min(r["ratio"] for r in bulk_["paths"].values())
        rows.append(["3. bulk failover vs octoDNS", "<= 0.5x", f"{best:.1f}x - {worst:.1f}x"])
    audit_ = load("audit_verify")
    if audit_:
        rows.append(
            ["4. audit verify vs sha256", "<= 3x", f"{audit_['ratio_1']:.1f}x (2 proc: {audit_['ratio_2']:.1f}x)"]
        )
    memory_ = load("memory")
    if memory_:
        rows.append(["5. RSS vs bare Bolt", "<= 1.5x", f"{memory_['rss_ratio']:.1f}x"])
    ax.set_axis_off()
    ax.set_title("Targets and this run")
    if rows:
        table = ax.table(
            cellText=rows, colLabels=["benchmark", "target", "measured"], loc="center", cellLoc="left",
            colWidths=[0.58, 0.14, 0.28],
        )  # fmt: skip
        table.auto_set_font_size(False)
        table.set_fontsize(9)
        table.scale(1, 2)


def main() -> None:
    fig, axes = plt.subplots(4, 2, figsize=(14, 19))
    for draw, ax in zip(
        (ack, routing, bulk, audit, memory, scaling_records, scaling_concurrency), axes.flat, strict=False
    ):
        draw(ax)
    targets(axes.flat[-1])
    machine = load("routing_time") or {}
    fig.suptitle(
        f"breakglass benchmarks on loopback, {machine.get('cpus', '?')} shared cores (bench/, docs/benchmarks.md)",
        fontsize=13,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, dpi=80)
    console.print(f"saved {OUT}")


if __name__ == "__main__":
    main()
