"""`breakglass runbook`: the break-glass runbook, generated from the live config and the signed policy.

Why generated: a hand-written runbook goes stale the day a path, a key or an approver changes. This one is
rebuilt from what the bot itself loads (the zones' change paths in order with their trust paths, the rules'
requesters and approvers, the exact out-of-band commands), so regenerating it after every config or policy
change keeps it true. Markdown for a wiki or a repository, HTML (self-contained, no script) to print.
"""

from __future__ import annotations

import html
import re
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from core.errors import BreakglassError, InvalidInput
from core.limits import percent

if TYPE_CHECKING:
    from approvals.policy import Policy, Rule
    from config import AppConfig, ZoneConfig

KEY = "~/.ssh/id_ed25519"
NO_DRILL = "no drill recorded"


@dataclass(frozen=True)
class PathEntry:
    """One change path, in the order breakglass tries it, with what it depends on."""

    name: str
    kind: str
    endpoint: str
    credentials: str
    identity: str
    credential_source: str
    control_plane: str
    sealed: bool
    vault: str | None  # the Vault address it needs, None when it needs none (a sealed envelope)


@dataclass(frozen=True)
class RuleEntry:
    """One policy rule of the zone, as people need it: who asks, who approves, how many, what it allows."""

    name: str
    covers: str
    requester_groups: tuple[str, ...]
    requesters: tuple[str, ...]
    approver_groups: tuple[str, ...]
    must_include: tuple[str, ...]
    approvers: tuple[str, ...]
    count: int
    rollback_count: int
    drill_count: int
    sealed_count: int
    expires_after: str
    limits: tuple[str, ...]  # TTL bounds, allowed targets, ticket requirement
    emergency: str


@dataclass(frozen=True)
class Step:
    text: str
    command: str = ""  # shown as a code block, ready to copy


@dataclass(frozen=True)
class Scenario:
    title: str
    summary: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class ZoneRunbook:
    name: str
    verified_on: str
    paths: tuple[PathEntry, ...]
    rules: tuple[RuleEntry, ...]
    scenarios: tuple[Scenario, ...]
    last_drill: str
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Runbook:
    generated_at: datetime
    config: str
    policy: str
    policy_sha256: str
    signature: str
    zones: tuple[ZoneRunbook, ...]


def last_drill(settings: AppConfig, zone: str) -> str:
    """The last drill of ``zone``'s change paths, for people. A placeholder until drill history is wired in."""
    return NO_DRILL


# --- building -------------------------------------------------------------------------------------


def build_runbook(settings: AppConfig, config_path: Path, zone: str | None = None) -> Runbook:
    """Raises BreakglassError when the policy is not in force: a runbook from it would not be true."""
    from approvals.policy_file import SignedPolicyFile
    from core.records import normalize_name

    source = SignedPolicyFile(settings.policy.file, settings.policy.signature, settings.policy.trusted_keys)
    try:
        policy = source.current()
    except BreakglassError as error:
        raise InvalidInput(
            f"The policy is not in force ({error.message}); a runbook made from it would be wrong.",
            hint="Fix and sign the policy first (`breakglass policy check`, `breakglass policy sign`).",
        ) from None
    zones = settings.zones
    if zone is not None:
        wanted = normalize_name(zone)
        zones = [z for z in zones if z.name == wanted]
        if not zones:
            names = ", ".join(z.name for z in settings.zones)
            raise InvalidInput(f"Zone {wanted} is not configured.", hint=f"Configured zones: {names}.")
    config = shlex.quote(str(config_path))
    return Runbook(
        generated_at=datetime.now(UTC),
        config=str(config_path),
        policy=str(settings.policy.file),
        policy_sha256=policy.sha256,
        signature=source.verification().message,
        zones=tuple(_zone(settings, policy, z, config) for z in zones),
    )


def _zone(settings: AppConfig, policy: Policy, zone: ZoneConfig, config: str) -> ZoneRunbook:
    from approvals.explain import explain
    from bootstrap.paths import trust_of
    from config import SealedCredentials

    paths = []
    for path in zone.paths:
        trust = trust_of(settings, path)
        sealed = isinstance(path.credentials, SealedCredentials)
        vault = None if sealed else settings.vault_named(getattr(path.credentials, "vault", "default")).address
        paths.append(PathEntry(
            path.name, path.kind, path.endpoint(), path.credentials.source, trust.identity,
            trust.credential_source, trust.control_plane, sealed, vault,
        ))  # fmt: skip
    rules = tuple(_rule(policy, r) for r in policy.rules if r.zone == zone.name)
    report = explain(policy)
    names = {r.name for r in rules}
    warnings = [str(w) for w in report.warnings if w.subject.startswith("person ") or w.subject[5:] in names]
    if not rules:
        warnings.insert(0, f"no policy rule covers {zone.name}: every request for it is refused")
    servers = ", ".join(zone.authoritative_servers) or "the servers of the zone's NS set (discovered)"
    return ZoneRunbook(
        zone.name, servers, tuple(paths), rules, _scenarios(zone.name, tuple(paths), rules, config),
        last_drill(settings, zone.name), tuple(warnings),
    )  # fmt: skip


def _rule(policy: Policy, rule: Rule) -> RuleEntry:
    from approvals.policy import format_duration

    spec = rule.approvals
    limits = []
    if rule.ttl.min is not None or rule.ttl.max is not None:
        limits.append(f"TTL {rule.ttl.describe()}")
    if rule.targets.networks is not None:
        limits.append("addresses in " + (", ".join(str(n) for n in rule.targets.networks) or "nothing"))
    if rule.targets.hosts is not None:
        limits.append("targets in " + (", ".join(str(h) for h in rule.targets.hosts) or "nothing"))
    if rule.ticket is not None:
        limits.append(f"the reason must hold a ticket matching {rule.ticket.pattern}")
    fraction = policy.max_change_fraction(rule)
    if fraction < 1:
        limits.append(
            f"at most {percent(fraction)} of the zone's rrsets updated or deleted per request "
            f"(zones of {policy.safety.min_zone_rrsets} or more)"
        )
    else:
        limits.append("bulk changes allowed (no share-of-zone limit)")
    emergency = "not allowed"
    if rule.emergency is not None:
        who = ", ".join(sorted(p.name for p in policy.members(rule.emergency.groups))) or "nobody"
        emergency = f"allowed for {who} (every approver is told; mandatory review)"
    return RuleEntry(
        name=rule.name,
        covers=f"{', '.join(str(n) for n in rule.names)} ({', '.join(sorted(t.value for t in rule.types))})",
        requester_groups=rule.requesters,
        requesters=tuple(sorted(p.name for p in policy.members(rule.requesters))),
        approver_groups=spec.approver_groups,
        must_include=spec.must_include,
        approvers=tuple(sorted(p.name for p in policy.members(spec.approver_groups + spec.must_include))),
        count=spec.count,
        rollback_count=spec.rollback_count,
        drill_count=spec.drill_count,
        sealed_count=spec.sealed_count,
        expires_after=format_duration(rule.expires_after),
        limits=tuple(limits),
        emergency=emergency,
    )


def _scenarios(
    zone: str, paths: tuple[PathEntry, ...], rules: tuple[RuleEntry, ...], config: str
) -> tuple[Scenario, ...]:
    c = f"-c {config}"
    counts = ", ".join(
        f"{r.name}: {r.count} from {' / '.join(r.approver_groups)}"
        + (f", at least one from {' and '.join(r.must_include)}" if r.must_include else "")
        for r in rules
    )
    slack_down = Scenario(
        "Slack is down (or the bot cannot reach it)",
        "Request and approve from a terminal. Identity comes from the SSH key pinned to each person in the "
        f"signed policy. Approvals needed: {counts or 'no rule covers this zone'}. The requester never counts.",
        (
            Step("The requester asks for the change (prints the request id and the plan digest):",
                 f'breakglass request set {c} --key {KEY} NAME.{zone} TYPE VALUE --reason "INC-123 what and why"'),
            Step("or, to delete a record:",
                 f'breakglass request delete {c} --key {KEY} NAME.{zone} TYPE --reason "INC-123 what and why"'),
            Step("Each approver, on a machine with the config (the approval that completes the quorum applies "
                 "and verifies the change):", f"breakglass approve ID {c} --key {KEY}"),
            Step("An approver whose key is on another computer: print what to sign on a machine with the config,",
                 f"breakglass approve ID {c} --print-statement"),
            Step("sign it on their own computer (no config, no network),",
                 f"breakglass sign ID --digest DIGEST --decision approve --as YOUR-NAME --key {KEY}"),
            Step("and submit the signed block back on the machine with the config:",
                 f"breakglass approve ID {c} --submit-signature signed.txt"),
            Step("Deny (or, as the requester, withdraw):", f"breakglass deny ID {c} --key {KEY}"),
            *_emergency_step(rules, c),
        ),
    )  # fmt: skip
    sso_down = Scenario(
        "SSO (the identity provider) is down",
        "Nothing changes: breakglass never takes identity from SSO. Slack users are matched by the Slack user "
        "ids pinned in the signed policy, and out-of-band decisions by the SSH keys pinned there. If nobody can "
        "log in to Slack without SSO, follow “Slack is down”.",
        (),
    )
    return slack_down, sso_down, _vault_down(paths, rules, c), _verify_and_roll_back(zone, rules, c)


def _emergency_step(rules: tuple[RuleEntry, ...], c: str) -> tuple[Step, ...]:
    allowed = [r.name for r in rules if r.emergency != "not allowed"]
    if not allowed:
        return ()
    text = (
        f"Nobody can approve and the rule allows it ({', '.join(allowed)}): the requester self-approves; every "
        "approver is told and the change is marked for review."
    )
    return (Step(text, f"breakglass approve ID {c} --key {KEY} --emergency"),)


def _vault_down(paths: tuple[PathEntry, ...], rules: tuple[RuleEntry, ...], c: str) -> Scenario:
    vaults = sorted({p.vault for p in paths if p.vault})
    sealed = [p for p in paths if p.sealed]
    steps = [
        Step(f"Change path {p.name} needs {'no Vault' if p.vault is None else 'Vault ' + p.vault}.") for p in paths
    ]
    if sealed:
        needed = ", ".join(f"{r.name}: {r.sealed_count}" for r in rules) or "no rule"
        names = ", ".join(p.name for p in sealed)
        summary = (
            f"breakglass tries the paths in order. When every Vault-backed path has failed, the request waits in "
            f"`needs_elevated_approval`: the sealed envelope ({names}) is opened only with more approvals "
            f"(sealed_count per rule: {needed}). Nothing is applied before that."
        )
        steps += [
            Step("Approvers approve again on the request message in Slack, or from a terminal:",
                 f"breakglass approve ID {c} --key {KEY}"),
            Step("Opening the envelope exposes that credential to the bot: rotate it after the incident "
                 "(the thread and the audit trail say `credentials_must_rotate`)."),
        ]  # fmt: skip
    elif len(vaults) > 1:
        summary = "The paths use different Vaults: with one of them down, breakglass fails over to a path on another."
    else:
        summary = (
            f"Every path of this zone needs Vault {vaults[0] if vaults else ''}: while it is down nothing can be "
            "changed. Add a sealed-envelope path (docs/credentials.md) before you need it."
        )
    return Scenario("Vault is down", summary, tuple(steps))


def _verify_and_roll_back(zone: str, rules: tuple[RuleEntry, ...], c: str) -> Scenario:
    rollback = ", ".join(f"{r.name}: {r.rollback_count}" for r in rules) or "no rule"
    return Scenario(
        "Verify, and roll back",
        "A change counts only once every authoritative server serves it; the thread shows each server's answer "
        f"and when it served it. A rollback is a new request that needs approval (rollback approvals: {rollback}).",
        (
            Step("In Slack, what every server and every change path holds now:", f"/dns show NAME.{zone} TYPE"),
            Step("From a terminal, what every server answers now:", f"breakglass verify {c} NAME.{zone} TYPE"),
            Step("Wait until every server serves the expected values (exit status 1 if not):",
                 f"breakglass verify {c} NAME.{zone} TYPE VALUE"),
            Step("Roll back in Slack (or click Roll back on the request message):", "/dns rollback ID"),
            Step("Without Slack: see what the change replaced, then request those values back out of band:",
                 f"breakglass status {c} ID"),
        ),
    )  # fmt: skip


def commands(runbook: Runbook) -> list[str]:
    """Every command the runbook tells people to run, in order."""
    return [s.command for z in runbook.zones for sc in z.scenarios for s in sc.steps if s.command]


# --- Markdown --------------------------------------------------------------------------------------


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(runbook: Runbook) -> str:
    out = [
        "# breakglass runbook",
        "",
        f"Generated {runbook.generated_at:%Y-%m-%d %H:%M} UTC from `{runbook.config}` and the signed policy "
        f"`{runbook.policy}` (sha256 `{runbook.policy_sha256[:16]}…`; {runbook.signature}). "
        "Regenerate it after every config or policy change: `breakglass runbook -o FILE`.",
    ]
    for zone in runbook.zones:
        out += ["", f"## Zone {zone.name}", "", f"Verified on: {zone.verified_on}.", f"Last drill: {zone.last_drill}."]
        out += ["", "### Change paths, in the order they are tried", ""]
        out += ["| # | path | kind | talks to | identity | credential source | control plane |", "|---" * 7 + "|"]
        for n, p in enumerate(zone.paths, start=1):
            sealed = " (sealed envelope)" if p.sealed else ""
            row = [str(n), p.name + sealed, p.kind, p.endpoint, p.identity, p.credential_source, p.control_plane]
            out.append("| " + " | ".join(_md(x) for x in row) + " |")
        out += ["", "### Who may request and approve", ""]
        for r in zone.rules:
            out += [
                f"- **{_md(r.name)}** covers {_md(r.covers)}",
                f"  - may request: groups {', '.join(r.requester_groups)} ({', '.join(r.requesters) or 'nobody'})",
                f"  - may approve: groups {', '.join(r.approver_groups + r.must_include)} "
                f"({', '.join(r.approvers) or 'nobody'})",
                f"  - approvals: {r.count}" + (f", at least one from {' and '.join(r.must_include)}" if r.must_include
                                                else "")
                + f"; rollback {r.rollback_count}; drill {r.drill_count}; sealed envelope (sealed_count) "
                f"{r.sealed_count}; expires after {r.expires_after}",
                f"  - limits: {'; '.join(r.limits) or 'none'}; emergency self-approval: {r.emergency}",
            ]  # fmt: skip
        if not zone.rules:
            out.append("- no rule: every request for this zone is refused")
        for scenario in zone.scenarios:
            out += ["", f"### {scenario.title}", "", scenario.summary]
            for n, step in enumerate(scenario.steps, start=1):
                out += ["", f"{n}. {step.text}"]
                if step.command:
                    out += ["", "   ```sh", f"   {step.command}", "   ```"]
        if zone.warnings:
            out += ["", "### Warnings", ""] + [f"- {_md(w)}" for w in zone.warnings]
    return "\n".join(out) + "\n"


# --- HTML ------------------------------------------------------------------------------------------

_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fff}
main{max-width:76rem;margin:0 auto;padding:1rem 1.25rem 3rem}
h1{font-size:1.6rem}h2{margin-top:2.2rem;border-bottom:2px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f6}pre{background:#f4f4f6;padding:.5rem .75rem;overflow-x:auto;white-space:pre-wrap}
.muted{color:#666}.warn{color:#8a4b00}.scenario{page-break-inside:avoid}
@media print{main{max-width:none}pre{border:1px solid #ccc}}
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _prose(text: str) -> str:
    """Escaped text, with `code` spans (as written for Markdown) set as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def to_html(runbook: Runbook) -> str:
    body = [
        "<h1>breakglass runbook</h1>",
        f'<p class="muted">Generated {runbook.generated_at:%Y-%m-%d %H:%M} UTC from <code>{_e(runbook.config)}'
        f"</code> and the signed policy <code>{_e(runbook.policy)}</code> (sha256 <code>"
        f"{runbook.policy_sha256[:16]}…</code>; {_e(runbook.signature)}). Regenerate it after every config or "
        "policy change.</p>",
    ]
    for zone in runbook.zones:
        body += [
            f'<section class="zone" data-zone="{_e(zone.name)}"><h2>Zone {_e(zone.name)}</h2>',
            f"<p>Verified on: {_e(zone.verified_on)}.<br>Last drill: {_e(zone.last_drill)}.</p>",
            "<h3>Change paths, in the order they are tried</h3>",
            _paths_table(zone.paths),
            "<h3>Who may request and approve</h3>",
            _rules_table(zone.rules),
            *(_scenario_html(s) for s in zone.scenarios),
        ]
        if zone.warnings:
            body.append('<h3>Warnings</h3><ul class="warn">' + "".join(f"<li>{_e(w)}</li>" for w in zone.warnings))
            body.append("</ul>")
        body.append("</section>")
    head = (
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>breakglass runbook</title><style>{_CSS}</style>"
    )
    return f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head><body><main>{"".join(body)}</main></body></html>\n'


def _table(headers: list[str], rows: list[str]) -> str:
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>" + "".join(rows) + "</table>"


def _cells(*values: str) -> str:
    return "".join(f"<td>{v}</td>" for v in values)


def _paths_table(paths: tuple[PathEntry, ...]) -> str:
    rows = [
        f'<tr data-path="{_e(p.name)}">'
        + _cells(
            str(n),
            _e(p.name) + (" (sealed envelope)" if p.sealed else ""),
            _e(p.kind),
            _e(p.endpoint),
            _e(p.identity),
            _e(p.credential_source),
            _e(p.control_plane),
        )  # fmt: skip
        + "</tr>"
        for n, p in enumerate(paths, start=1)
    ]
    return _table(["#", "path", "kind", "talks to", "identity", "credential source", "control plane"], rows)


def _people(groups: tuple[str, ...], people: tuple[str, ...]) -> str:
    return f"{_e(', '.join(groups))}<br><span class=muted>{_e(', '.join(people) or 'nobody')}</span>"


def _rules_table(rules: tuple[RuleEntry, ...]) -> str:
    rows = [
        f'<tr data-rule="{_e(r.name)}">'
        + _cells(
            _e(r.name),
            _e(r.covers),
            _people(r.requester_groups, r.requesters),
            _people(r.approver_groups + r.must_include, r.approvers),
            str(r.count) + (_e(", one from " + " and ".join(r.must_include)) if r.must_include else ""),
            str(r.rollback_count),
            str(r.drill_count),
            str(r.sealed_count),
            _e(r.expires_after),
            f"{_e('; '.join(r.limits) or 'none')}<br>emergency: {_e(r.emergency)}",
        )  # fmt: skip
        + "</tr>"
        for r in rules
    ] or ['<tr><td colspan="10">no rule: every request for this zone is refused</td></tr>']
    headers = ["rule", "covers", "may request", "may approve", "approvals", "rollback", "drill", "sealed_count"]
    return _table([*headers, "expires", "limits"], rows)


def _scenario_html(scenario: Scenario) -> str:
    steps = "".join(
        f"<li>{_prose(s.text)}" + (f"<pre><code>{_e(s.command)}</code></pre>" if s.command else "") + "</li>"
        for s in scenario.steps
    )
    listing = f"<ol>{steps}</ol>" if steps else ""
    return f'<div class="scenario"><h3>{_e(scenario.title)}</h3><p>{_prose(scenario.summary)}</p>{listing}</div>'


# --- the command ----------------------------------------------------------------------------------

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="breakglass TOML config file.", envvar="BREAKGLASS_CONFIG")
]


def runbook(
    config: ConfigOption,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE (.md or .html); default: Markdown on stdout.")
    ] = None,
    zone: Annotated[str | None, typer.Option(help="Only this zone.")] = None,
) -> None:
    """Write the break-glass runbook from the live config and signed policy (regenerate after every change)."""
    from config import load_config

    console, errors = Console(), Console(stderr=True, soft_wrap=True)
    try:
        if output is not None and output.suffix.lower() not in (".md", ".html", ".htm"):
            raise InvalidInput(f"Cannot tell the format of {output}.", hint="Name it runbook.md or runbook.html.")
        book = build_runbook(load_config(config), config, zone)
    except BreakglassError as error:
        errors.print(f"[red]error:[/red] {error.user_text()}", highlight=False)
        raise typer.Exit(2) from None
    if output is None:
        console.print(to_markdown(book), highlight=False, markup=False, end="")
        return
    output.write_text(to_html(book) if output.suffix.lower() in (".html", ".htm") else to_markdown(book))
    errors.print(f"wrote {output}", highlight=False)
