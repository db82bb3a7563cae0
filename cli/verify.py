"""`breakglass verify`: the service's verification, standalone, with a live Rich table."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from core.errors import BreakglassError
from core.records import RecordType, RRset, normalize_name
from core.verification import VerificationOutcome, VerificationReport


def _table(report: VerificationReport, title: str) -> Table:
    table = Table("server", "answer", "serves it", "after", title=title)
    for r in report.results:
        after = f"{r.seconds_to_serve:.2f} s" if r.seconds_to_serve is not None else "-"
        table.add_row(str(r.server), r.last_answer.describe(), "yes" if r.served else "[red]no[/red]", after)
    return table


def outcome_json(outcome: VerificationOutcome) -> dict[str, object]:
    return {
        "served_everywhere": outcome.served_everywhere,
        "live": outcome.live,
        "elapsed_seconds": round(outcome.report.elapsed_seconds, 3),
        "servers": [
            {
                "server": str(r.server), "name": r.name, "type": r.rtype.value, "served": r.served,
                "seconds_to_serve": r.seconds_to_serve, "answer": r.last_answer.describe(),
                "status": r.last_answer.status.value,
            }
            for r in outcome.report.results
        ],
        "server_problems": list(outcome.server_problems),
        "probes": [p.describe() for report in outcome.liveness for p in report.results],
        "delegation_warnings": list(outcome.delegation_warnings),
        "resolvers": [{"resolver": str(v.resolver), "follows": v.follows, "answer": v.description}
                      for v in outcome.resolver_views],
    }  # fmt: skip


def run_verify(
    console: Console,
    config_path: Path,
    name: str,
    rtype_text: str,
    values: list[str],
    ttl: int | None,
    absent: bool,
    timeout: float | None,
    as_json: bool,
) -> int:
    import bootstrap
    from config import load_config

    try:
        settings = load_config(config_path)
        service = bootstrap.build_service(settings, bootstrap.build_engine(settings))
        rtype = RecordType.parse(rtype_text)
        fqdn = normalize_name(name)
        show_only = not values and not absent
        desired = None if absent or show_only else RRset.build(fqdn, rtype, ttl or 1, values)
        title = f"{fqdn} {rtype}: " + (
            "what each server answers" if show_only else f"expecting {values or 'no record'}"
        )
        if as_json:
            outcome = service.verify_now(fqdn, rtype, desired, timeout=0 if show_only else timeout,
                                         match_ttl=ttl is not None)  # fmt: skip
        else:
            with Live(console=console, transient=False) as live:
                outcome = service.verify_now(
                    fqdn, rtype, desired, lambda report: live.update(_table(report, title)),
                    timeout=0 if show_only else timeout, match_ttl=ttl is not None,
                )  # fmt: skip
                live.update(_table(outcome.report, title))
    except BreakglassError as error:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {error.user_text()}", highlight=False)
        return 2
    if as_json:
        console.print_json(json.dumps(outcome_json(outcome)))
    else:
        for line in [*outcome.server_problems, *outcome.delegation_warnings]:
            console.print(f"[yellow]warning:[/yellow] {line}", highlight=False)
        for report in outcome.liveness:
            for probe in report.results:
                console.print(f"probe {probe.describe()}", highlight=False)
    if show_only:
        return 0
    ok = outcome.served_everywhere and outcome.live is not False
    if not as_json:
        console.print("[green]every authoritative server serves it[/green]" if ok else "[red]not verified[/red]")
    return 0 if ok else 1
