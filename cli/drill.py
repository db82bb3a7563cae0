"""`breakglass drill` and `breakglass readiness`.

Exit codes. drill: 0 every drilled zone passed; 1 a path failed, or the policy refused a zone;
2 the drill could not run (bad config, unknown zone, policy refused outright).
readiness: 0; 1 a finding is at or above --fail-on; 2 the report could not be built.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape as markup_escape
from rich.table import Table

from core.errors import BreakglassError, InvalidInput

if TYPE_CHECKING:
    from core.ports import DrillRecord
    from service.drills import DrillReport
    from service.readiness import ReadinessReport

console = Console(highlight=False, soft_wrap=True)
errors = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="breakglass TOML config file.", envvar="BREAKGLASS_CONFIG")
]


def _fail(error: BreakglassError) -> typer.Exit:
    errors.print(f"[red]error:[/red] {markup_escape(error.user_text())}")
    return typer.Exit(2)


# --- drill ----------------------------------------------------------------------------------------


def drill(
    config: ConfigOption,
    zone: Annotated[str | None, typer.Option(help="Drill this zone only (default: every zone).")] = None,
    path: Annotated[
        str | None, typer.Option(help="Drill this change path only (a sealed one only when named).")
    ] = None,
    simulate_primary_outage: Annotated[
        bool, typer.Option("--simulate-primary-outage", help="Take the first path out and prove the failover.")
    ] = False,
    key: Annotated[
        Path | None, typer.Option("--key", "-k", help="Your SSH private key: the drill runs as you (signed).")
    ] = None,
    signer: Annotated[str | None, typer.Option("--as", help="Your name in the policy (default: found by key).")] = None,
    reason: Annotated[str, typer.Option(help="Why, for the audit trail (default: `breakglass drill <id>`).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Write a canary TXT record through each change path, verify it everywhere, remove it; time every phase.

    Runs as the owner of --key (a signed request statement), else as the config's [drills] actor.
    """
    import bootstrap
    from approvals.statements import SignedStatement
    from cli.oob import _sign
    from config import load_config
    from service.drills import DrillRequest

    def sign(drill_id: str, digest: str) -> SignedStatement:
        assert key is not None
        return SignedStatement.from_text(_sign(key, drill_id, digest, "request", signer, config))

    def progress(text: str) -> None:
        if not as_json:
            errors.print(text, markup=False)

    try:
        settings = load_config(config)
        engine = bootstrap.build_engine(settings)
        try:
            service = bootstrap.build_service(settings, engine)
            runner = bootstrap.build_drill_runner(settings, engine, service)
            request = DrillRequest(zone, path, simulate_primary_outage, reason)
            if key is not None:
                report = runner.run_signed(request, sign, progress)
            elif settings.drills.actor is not None:
                report = runner.run_as_configured(settings.drills.actor, request, progress)
            else:
                raise InvalidInput(
                    "Say who runs the drill.",
                    hint="Pass --key with your SSH key (pinned to you in the policy), "
                    "or set [drills] actor in the config for scheduled drills.",
                )
        finally:
            engine.dispose()
    except BreakglassError as error:
        raise _fail(error) from None
    if as_json:
        console.print_json(json.dumps(drill_to_dict(report)))
    else:
        print_drill(report)
    if not report.passed:
        raise typer.Exit(1)


def print_drill(report: DrillReport) -> None:
    outage = " with a simulated primary outage" if report.simulated_outage else ""
    verdict = "[green]passed[/green]" if report.passed else "[red]FAILED[/red]"
    console.print(f"drill [bold]{report.drill_id}[/bold] by {markup_escape(report.actor)}{outage}: {verdict}")
    for zone in report.zones:
        if zone.refused is not None:
            console.print(
                f"{zone.zone}: [red]refused by the policy[/red], nothing written: {markup_escape(zone.refused)}"
            )
            continue
        console.print(f"{zone.zone}: approval {markup_escape(zone.approval)}")
        table = Table()
        table.add_column("path", no_wrap=True)
        for heading in ("outcome", "lease", "apply", "propagation", "cleanup", "to routing"):
            table.add_column(heading)
        for record in zone.paths:
            table.add_row(
                record.path,
                record.outcome.value,
                _ms(record.lease_seconds),
                _ms(record.apply_seconds),
                _ms(record.propagation_seconds),
                _ms(record.cleanup_seconds),
                "-" if record.routing_seconds is None else f"{record.routing_seconds:.2f} s",
            )
        console.print(table)
        for record in zone.paths:
            if record.detail:
                console.print(f"  {record.path}: {markup_escape(record.detail)}")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _record_dict(record: DrillRecord) -> dict[str, object]:
    return {
        "path": record.path, "outcome": record.outcome.value, "started_at": record.started_at.isoformat(),
        "simulated_outage": record.simulated_outage, "lease_seconds": record.lease_seconds,
        "apply_seconds": record.apply_seconds, "propagation_seconds": record.propagation_seconds,
        "cleanup_seconds": record.cleanup_seconds, "routing_seconds": record.routing_seconds, "detail": record.detail,
    }  # fmt: skip


def drill_to_dict(report: DrillReport) -> dict[str, object]:
    return {
        "drill_id": report.drill_id,
        "actor": report.actor,
        "simulated_outage": report.simulated_outage,
        "passed": report.passed,
        "zones": [
            {
                "zone": z.zone,
                "passed": z.passed,
                "rule": z.rule,
                "approval": z.approval,
                "refused": z.refused,
                "paths": [_record_dict(r) for r in z.paths],
            }
            for z in report.zones
        ],  # fmt: skip
    }


# --- readiness ------------------------------------------------------------------------------------


def readiness(
    config: ConfigOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    as_html: Annotated[bool, typer.Option("--html", help="Print the report as one self-contained HTML page.")] = False,
    fail_on: Annotated[
        str | None,
        typer.Option(help="Exit 1 when a finding is at or above this severity: info, low, medium, high, critical."),
    ] = None,
) -> None:
    """Per critical record: change paths, trust paths, last drills against the RTO, approvers, findings."""
    import bootstrap
    from config import load_config
    from service.readiness import Severity

    try:
        if as_json and as_html:
            raise InvalidInput("Choose one of --json and --html.")
        threshold = None if fail_on is None else Severity.parse(fail_on)
        settings = load_config(config)
        engine = bootstrap.build_engine(settings)
        try:
            report = bootstrap.build_readiness_reporter(settings, engine).report()
        finally:
            engine.dispose()
    except BreakglassError as error:
        raise _fail(error) from None
    if as_json:
        console.print_json(json.dumps(report.to_dict()))
    elif as_html:
        console.file.write(readiness_html(report))
    else:
        console.print(report.to_text(), markup=False)
    if threshold is not None and report.at_or_above(threshold):
        if not as_json and not as_html:
            errors.print(f"{len(report.at_or_above(threshold))} finding(s) at or above {threshold.value}")
        raise typer.Exit(1)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d1d1f; max-width: 75rem; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; width: 100%; }
th, td { border: 1px solid #d2d2d7; padding: .3rem .5rem; text-align: left; vertical-align: top; font-size: .9rem; }
th { background: #f5f5f7; }
.critical { background: #ffd7d5; } .high { background: #ffe6cc; } .medium { background: #fff4c2; }
.low, .info { background: #eef6ff; } .miss { color: #b00020; font-weight: bold; }
"""


def readiness_html(report: ReadinessReport) -> str:
    """One page, inline CSS, no script; every configured or recorded text is escaped."""
    from service.readiness import Finding

    def findings_table(findings: tuple[Finding, ...]) -> str:
        if not findings:
            return "<p>No findings.</p>"
        rows = "".join(
            f'<tr class="{f.severity.value}"><td>{f.severity.value}</td><td>{escape(f.kind.value)}</td>'
            f"<td>{escape(f.subject)}</td><td>{escape(f.message)}</td><td>{escape('; '.join(f.controls))}</td>"
            f"<td>{escape(f.action)}</td></tr>"
            for f in findings
        )
        head = "<tr><th>severity</th><th>finding</th><th>subject</th><th>what</th><th>control</th><th>what to do</th>"
        return f"<table>{head}</tr>{rows}</table>"

    worst = report.worst()
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>breakglass readiness</title>",
        f"<style>{_CSS}</style></head><body><h1>breakglass readiness</h1>",
        f"<p>Generated {report.generated_at:%Y-%m-%d %H:%M} UTC. Worst finding: "
        f"{'none' if worst is None else worst.value}. A drill older than {report.settings.stale_after_days} days "
        f"counts as stale; {report.settings.approval_estimate_seconds:g} s are added to drilled times for "
        "approvals (drills do not wait for people).</p>",
        findings_table(report.general) if report.general else "",
    ]
    for item in report.records:
        r = item.record
        parts.append(
            f"<h2>{escape(r.name)} {r.rtype.value}</h2><p>Service {escape(r.service)}, RTO {r.rto_seconds:g} s, "
            f"zone {escape(item.zone)}. Leads to: {escape(', '.join(r.leads_to) or 'nothing listed')}.</p>"
        )
        rows = []
        for p in item.paths:
            drill = p.last_drill
            last = "never" if drill is None else f"{escape(drill.drill_id)} on {drill.started_at:%Y-%m-%d %H:%M}"
            if p.facts.sealed:
                last = "sealed envelope: not drilled"
            if p.time_to_routing is None:
                routing = "-"
            else:
                miss = ' class="miss"' if p.time_to_routing > r.rto_seconds else ""
                routing = f"<span{miss}>{p.time_to_routing:.2f} s</span>"
            age = "unknown" if p.credential_age_days is None else f"{p.credential_age_days:.0f} days"
            trust = p.facts.trust
            rows.append(
                f"<tr><td>{escape(p.facts.name)}</td><td>{escape(p.facts.kind)}</td><td>{escape(trust.identity)}</td>"
                f"<td>{escape(trust.credential_source)}</td><td>{escape(trust.control_plane)}</td><td>{last}</td>"
                f"<td>{routing}</td><td>{age}</td></tr>"
            )
        parts.append(
            "<table><tr><th>path</th><th>kind</th><th>identity</th><th>credential source</th><th>control plane</th>"
            "<th>last successful drill</th><th>time to corrected routing</th><th>credential age</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        if item.coverage is not None:
            c = item.coverage
            parts.append(
                f"<p>Approvers: rule {escape(c.rule)} needs {c.needed}; {c.available} available besides the "
                f"requester ({escape(', '.join(c.eligible))}); {c.spare} may be absent.</p>"
            )
        parts.append(findings_table(item.findings))
    parts.append("</body></html>\n")
    return "".join(parts)
