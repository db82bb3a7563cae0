"""`breakglass` command line (Typer + Rich)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.audit import audit_app
from cli.drill import drill, readiness
from cli.oob import decide, policy_app, request_app
from cli.runbook import runbook

if TYPE_CHECKING:
    from config import AppConfig
from core.errors import BreakglassError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Emergency DNS changes that still work when SSO does not."
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic).")
config_app = typer.Typer(no_args_is_help=True, help="Configuration checks.")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(policy_app, name="policy")
app.add_typer(request_app, name="request")
app.add_typer(audit_app, name="audit")
app.command()(drill)
app.command()(readiness)
app.command()(runbook)

console = Console()
errors = Console(stderr=True, soft_wrap=True)


@app.callback()
def _logging() -> None:
    """Commands other than `serve` log warnings only, to stderr, readable by people."""
    import logging

    from config.logs import configure_logging

    configure_logging(json_logs=False, level=logging.WARNING)


ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="breakglass TOML config file.", envvar="BREAKGLASS_CONFIG")
]


def _fail(error: BreakglassError) -> typer.Exit:
    errors.print(f"[red]error:[/red] {error.user_text()}", markup=True, highlight=False)
    return typer.Exit(2)


@app.command()
def serve(
    config: ConfigOption,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    socket_mode: Annotated[
        bool,
        typer.Option(
            "--socket-mode",
            help="Connect out to Slack over Socket Mode (needs SLACK_APP_TOKEN) instead of receiving HTTP; "
            "the port then serves only /healthz, /readyz and /metrics.",
        ),
    ] = False,
) -> None:
    """Serve the Slack app: HTTP mode at POST /slack/events, or Socket Mode; plus /healthz, /readyz, /metrics."""
    import os
    import signal

    import bootstrap
    from bot.http import HttpServer
    from bot.ops import Metrics, Ops
    from bot.outbox import SenderSettings
    from bot.socket_mode import SocketModeRunner, check_app_token
    from config import load_config, load_slack_settings

    bootstrap.configure_logging()
    runner: SocketModeRunner | None = None
    try:
        settings = load_config(config)
        slack = bootstrap.load_socket_mode_settings() if socket_mode else load_slack_settings()
        app_token = check_app_token(os.environ.get("SLACK_APP_TOKEN")) if socket_mode else ""
        engine = bootstrap.build_engine(settings)
        metrics = Metrics()
        service = bootstrap.build_service(settings, engine, metrics=metrics)
        outbox = bootstrap.build_outbox(engine)
        slack_app = bootstrap.build_slack_app(
            service, slack, settings.audit.slack_channel, notify=settings.slack.notify, outbox=outbox,
            drills=bootstrap.build_drill_runner(settings, engine, service),
            readiness_reporter=bootstrap.build_readiness_reporter(settings, engine),
        )  # fmt: skip
        ops = Ops(bootstrap.build_readiness(settings, engine, service), metrics)
        server = HttpServer(None if socket_mode else slack_app, host=host, port=port, ops=ops)
        problem = service.policy_problem()
        if problem:
            errors.print(f"[red]breakglass refuses every request until this is fixed:[/red] {problem}")
        if socket_mode:
            runner = SocketModeRunner(slack_app, app_token, metrics=metrics).connect()
    except BreakglassError as error:
        raise _fail(error) from None
    # Delivers Slack messages in order; a dead bot's sender lease lapses when its requests go stale too.
    sender = bootstrap.build_outbox_sender(
        service, outbox, slack, SenderSettings(lease_seconds=settings.recovery.stale_after_seconds)
    ).start()
    recovery = bootstrap.build_recovery(settings, engine, service, outbox).start()  # finishes work a dead bot left
    try:
        if runner is None:
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C: waitress returns
            errors.print(f"breakglass listening on {server.url}")
            server.serve_forever()
            return
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda *_: runner.stop())
        server.start_in_background()
        errors.print(f"breakglass connected to Slack over Socket Mode; probes on {server.base_url}")
        runner.wait()
        server.stop()
    finally:
        recovery.stop()
        sender.stop()  # lets go of the sender lease: another replica delivers at once


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption) -> None:
    """Create or migrate the database schema to the current version."""
    from config import load_config
    from store.migrate import upgrade

    try:
        settings = load_config(config)
        upgrade(settings.database.url)
    except BreakglassError as error:
        raise _fail(error) from None
    console.print("database schema is up to date")


@config_app.command("check")
def config_check(config: ConfigOption) -> None:
    """Validate the config file and show what breakglass manages."""
    from approvals.policy_file import SignedPolicyFile
    from config import load_config

    try:
        settings = load_config(config)
    except BreakglassError as error:
        raise _fail(error) from None
    from bootstrap.paths import trust_of

    for zone in settings.zones:
        servers = ", ".join(zone.authoritative_servers) or "discovered from the zone's NS set"
        console.print(f"[bold]zone {zone.name}[/bold] (verified on {servers})", highlight=False)
        for number, path in enumerate(zone.paths, start=1):
            trust = trust_of(settings, path)
            console.print(f"  {number}. {path.name}: {path.kind} -> {path.endpoint()}", highlight=False)
            console.print(
                f"     credentials {path.credentials.source}; identity {trust.identity}; "
                f"source {trust.credential_source}",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
    problem = SignedPolicyFile(settings.policy.file, settings.policy.signature, settings.policy.trusted_keys).problem()
    if problem:
        console.print(f"[red]policy refused:[/red] {problem}", highlight=False)
    else:
        console.print(f"policy {settings.policy.file}: signed by a trusted key", highlight=False)
    for warning in trust_warnings(settings):
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


def trust_warnings(settings: AppConfig) -> list[str]:
    """Zones whose backup path would fail together with the primary."""
    from bootstrap.paths import trust_of

    warnings = []
    for zone in settings.zones:
        if len(zone.paths) < 2:
            warnings.append(
                f"zone {zone.name} has a single change path; if it fails, routing cannot be corrected. "
                "Add a backup path with a separate trust path."
            )
        for i, first in enumerate(zone.paths):
            for second in zone.paths[i + 1 :]:
                shared = trust_of(settings, first).shared_with(trust_of(settings, second))
                if shared:
                    warnings.append(
                        f"zone {zone.name}: paths {first.name} and {second.name} share {', '.join(shared)}; "
                        "one outage there takes both down."
                    )
    return warnings


@app.command()
def status(
    config: ConfigOption,
    request_id: Annotated[str | None, typer.Argument(help="Request id, e.g. BG-7K3Q9X.")] = None,
) -> None:
    """Show one request with its events, or the most recent requests."""
    import bootstrap
    from config import load_config

    try:
        settings = load_config(config)
        service = bootstrap.build_service(settings, bootstrap.build_engine(settings))
        if request_id is None:
            table = Table("id", "state", "requester", "reason")
            for stored in service.recent(20):
                table.add_row(
                    stored.request.id, stored.state.value, str(stored.request.requester), stored.request.reason
                )
            console.print(table)
            return
        result = service.status(request_id.upper())
    except BreakglassError as error:
        raise _fail(error) from None
    stored = result.stored
    console.print(
        f"[bold]{stored.request.id}[/bold] {stored.state.value}  reason: {stored.request.reason}", highlight=False
    )
    for change in stored.plan.changes:
        before = change.before.describe() if change.before else "(none)"
        after = change.after.describe() if change.after else "(none)"
        console.print(f"  {change.name} {change.rtype}: {before} -> {after}", highlight=False)
    table = Table("seq", "time (UTC)", "event", "actor", "details")
    for event in result.events:
        details = ", ".join(f"{k}={v}" for k, v in event.details.items())
        table.add_row(str(event.seq), f"{event.at:%H:%M:%S.%f}"[:-3], event.kind.value, event.actor, details)
    console.print(table)


@app.command()
def verify(
    config: ConfigOption,
    name: Annotated[str, typer.Argument(help="Record name, e.g. api.example.com.")],
    rtype: Annotated[str, typer.Argument(metavar="TYPE", help="A, AAAA, CNAME, TXT, MX, SRV or NS.")],
    values: Annotated[list[str] | None, typer.Argument(help="Expected values; none: just show the answers.")] = None,
    ttl: Annotated[int | None, typer.Option(help="Expected TTL too (default: values only).")] = None,
    absent: Annotated[bool, typer.Option("--absent", help="Expect the record to be gone.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait (default from config).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Ask every authoritative server directly until each serves the expected values (exit 1 if not)."""
    from cli.verify import run_verify

    raise typer.Exit(run_verify(console, config, name, rtype, values or [], ttl, absent, timeout, as_json))


KeyOpt = Annotated[Path | None, typer.Option("--key", "-k", help="Your SSH private key, pinned to you in the policy.")]
PrintOpt = Annotated[bool, typer.Option("--print-statement", help="Show what to sign on another computer.")]
SubmitOpt = Annotated[
    Path | None, typer.Option("--submit-signature", help="A signed block from `breakglass sign` (- = stdin).")
]
RequestArg = Annotated[str, typer.Argument(help="Request id, e.g. BG-7K3Q9X.")]


@app.command()
def approve(
    config: ConfigOption,
    request_id: RequestArg,
    key: KeyOpt = None,
    print_statement: PrintOpt = False,
    submit_signature: SubmitOpt = None,
    emergency: Annotated[bool, typer.Option(help="Self-approve your own request under the emergency clause.")] = False,
) -> None:
    """Approve out of band (Slack or SSO down) with a statement signed by your SSH key."""
    decide("approve", config, request_id, key, print_statement, submit_signature, emergency)


@app.command()
def deny(
    config: ConfigOption,
    request_id: RequestArg,
    key: KeyOpt = None,
    print_statement: PrintOpt = False,
    submit_signature: SubmitOpt = None,
) -> None:
    """Deny (or, as the requester, withdraw) out of band with a statement signed by your SSH key."""
    decide("deny", config, request_id, key, print_statement, submit_signature, False)


@app.command()
def sign(
    request_id: RequestArg,
    digest: Annotated[str, typer.Option(help="The plan digest shown with the request.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="Your SSH private key.")],
    signer: Annotated[str, typer.Option("--as", help="Your name as written in the policy.")],
    decision: Annotated[str, typer.Option(help="approve or deny.")] = "approve",
) -> None:
    """Sign a decision on this computer (no config, no network) and print the block to send back."""
    from cli.oob import _sign

    if decision not in ("approve", "deny"):
        raise _fail(BreakglassError("--decision must be approve or deny."))
    try:
        console.print(_sign(key, request_id, digest, decision, signer, None), highlight=False, end="")
    except BreakglassError as error:
        raise _fail(error) from None


@app.command()
def demo(
    verbose: Annotated[bool, typer.Option(help="Also print the bot's JSON logs.")] = False,
) -> None:
    """Play an incident end to end on local servers (OpenBao, BIND primary+secondary, a Slack stand-in)."""
    from cli.demo import run_demo

    raise typer.Exit(run_demo(console, verbose=verbose))
