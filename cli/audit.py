"""`breakglass audit ...`: verify the hash chain, sign checkpoints, export events, write incident reports.

Exit codes: 0 all good; 1 the audit chain or a checkpoint failed verification; 2 the
command could not run (bad config, unreadable key or database).
"""

from __future__ import annotations

import csv
import json
import sys
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.console import Console
from rich.markup import escape

from core.errors import BreakglassError, InvalidInput

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from sqlalchemy import Engine

    from store.audit import AuditRecord, ChainVerification
    from store.checkpoints import Checkpoint

audit_app = typer.Typer(
    no_args_is_help=True, help="Audit trail: verify the hash chain, sign checkpoints, export events, write reports."
)

console = Console(highlight=False, markup=False, soft_wrap=True)  # recorded text may contain [brackets]
errors = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="breakglass TOML config file.", envvar="BREAKGLASS_CONFIG")
]
CheckpointsOption = Annotated[
    Path | None,
    typer.Option("--checkpoints", help="Signed checkpoints: a JSONL file, or pasted checkpoint lines from Slack."),
]
PublicKeyOption = Annotated[
    Path | None, typer.Option("--public-key", help="Ed25519 public key (PEM) that signed the checkpoints.")
]
WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="Processes for verification (default: automatic).")
]
RequestOption = Annotated[str | None, typer.Option("--request", help="One request id, e.g. BG-7K3Q9X.")]
IncidentOption = Annotated[
    str | None,
    typer.Option(
        "--incident",
        help="Incident tag, e.g. INC-42: every request whose reason names it as a whole word (any case), "
        "and their rollbacks.",
    ),
]


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


def _fail(error: BreakglassError) -> typer.Exit:
    errors.print(f"[red]error:[/red] {escape(error.user_text())}", markup=True)
    return typer.Exit(2)


@dataclass(frozen=True)
class AuditSettings:
    """What the audit commands need from the config file: the database, and optional key and checkpoint files.

    Only ``[database]`` and ``[audit]`` are read, so a reviewer can run these commands with
    a copy of the config whose Vault, policy and zone files they do not have.
    """

    database_url: str
    signing_key_file: Path | None = None
    public_key_file: Path | None = None
    checkpoint_file: Path | None = None


def load_audit_settings(config: Path) -> AuditSettings:
    from config import AuditConfig, ConfigError, DatabaseConfig

    try:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"Cannot read the config file {config}: {exc.strerror}.", hint="Pass --config.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {config} is not valid TOML: {exc}.") from None
    try:
        database = DatabaseConfig.model_validate(raw.get("database", {}))
    except ValueError as exc:
        raise ConfigError(f"The [database] section of {config} is invalid: {exc}.") from None
    try:
        audit = AuditConfig.model_validate(raw.get("audit", {}))
    except ValueError as exc:
        raise ConfigError(f"The [audit] section of {config} is invalid: {exc}.") from None

    def path(value: Path | None) -> Path | None:
        return None if value is None else config.parent / value  # relative to the config file, like the others

    return AuditSettings(
        database.url, path(audit.signing_key_file), path(audit.public_key_file), path(audit.checkpoint_file)
    )


def _engine(settings: AuditSettings) -> Engine:
    from store.sql import make_engine

    return make_engine(settings.database_url)


@audit_app.command("verify")
def verify(
    config: ConfigOption,
    checkpoints: CheckpointsOption = None,
    public_key: PublicKeyOption = None,
    workers: WorkersOption = None,
) -> None:
    """Recompute every event's hash and link, and hold the chain against signed checkpoints."""
    from store.audit import AuditLog

    try:
        settings = load_audit_settings(config)
        signed, key = _checkpoints(settings, checkpoints, public_key)
        engine = _engine(settings)
        try:
            result = AuditLog(engine).verify(signed, key, workers=workers)
        finally:
            engine.dispose()
    except BreakglassError as error:
        raise _fail(error) from None
    _print_verification(result)
    if not result.ok:
        raise typer.Exit(1)


def _checkpoints(
    settings: AuditSettings, checkpoints: Path | None, public_key: Path | None
) -> tuple[list[Checkpoint], Ed25519PublicKey | None]:
    """(checkpoints, public key) from the options, else from [audit] in the config; both or neither."""
    from store.checkpoints import load_public_key, read_checkpoints

    checkpoints = checkpoints or settings.checkpoint_file
    public_key = public_key or settings.public_key_file
    if checkpoints is None and public_key is None:
        return [], None
    if checkpoints is None or public_key is None:
        raise InvalidInput(
            "--checkpoints and --public-key go together: a checkpoint is only worth its signature.",
            hint="Pass both (or set audit.checkpoint_file and audit.public_key_file), or neither.",
        )
    return read_checkpoints(checkpoints), load_public_key(public_key)


def _print_verification(result: ChainVerification) -> None:
    console.print(f"audit chain: {result.events} events, last seq {result.head.seq}, head hash {result.head.hash}")
    for check in result.checkpoints:
        state = "ok" if check.signature_valid and check.matches else "BAD"
        console.print(
            f"  checkpoint seq {check.checkpoint.seq} signed {check.checkpoint.at:%Y-%m-%d %H:%M:%S} UTC "
            f"by key {check.checkpoint.key_id}: {state}: {check.text}"
        )
    if not result.checkpoints:
        console.print(
            "[yellow]note:[/yellow] no checkpoints given: events cut off the end, or a chain rebuilt with fresh "
            "hashes, cannot be detected without them (--checkpoints FILE --public-key FILE).",
            markup=True,
        )
    if result.ok:
        covered = f"; events 1-{result.covered_seq} match signed checkpoints" if result.covered_seq else ""
        console.print(
            f"[green]OK[/green]: every event matches its hash and follows the one before it{covered}.", markup=True
        )
        return
    if result.first_bad_seq is not None:
        console.print(f"[red]FAILED[/red]: first bad sequence number: {result.first_bad_seq}", markup=True)
    else:
        console.print("[red]FAILED[/red]: a checkpoint does not verify with this public key.", markup=True)
    for problem in result.problems:
        console.print(f"  seq {problem.seq}: {problem.text}")


@audit_app.command("checkpoint")
def checkpoint(
    config: ConfigOption,
    private_key: Annotated[
        Path | None, typer.Option("--private-key", help="Ed25519 signing key (PEM); default audit.signing_key_file.")
    ] = None,
    checkpoints: Annotated[
        Path | None, typer.Option("--checkpoints", help="Append to this JSONL file; default audit.checkpoint_file.")
    ] = None,
) -> None:
    """Sign the current chain head, append it to the checkpoint file and print it (run from cron too)."""
    from store.audit import AuditLog, Checkpointer
    from store.checkpoints import CheckpointLog, CheckpointSigner, load_private_key

    try:
        settings = load_audit_settings(config)
        key_file = private_key or settings.signing_key_file
        if key_file is None:
            raise InvalidInput("No signing key.", hint="Pass --private-key FILE or set audit.signing_key_file.")
        signer = CheckpointSigner(load_private_key(key_file))
        file = checkpoints or settings.checkpoint_file
        engine = _engine(settings)
        try:
            made = Checkpointer(AuditLog(engine), signer, CheckpointLog(file) if file else None).checkpoint()
        finally:
            engine.dispose()
    except BreakglassError as error:
        raise _fail(error) from None
    console.print(made.to_text(), soft_wrap=True)


def _parse_time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{option} {text!r} is not a date or time.", hint="Use ISO 8601, e.g. 2025-03-01 or 2025-03-01T09:30:00Z."
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _request_ids(engine: Engine, request: str | None, incident: str | None) -> tuple[str, ...] | None:
    """The requests selected by --request or --incident; None when neither was given."""
    from store.audit import AuditLog

    if request is not None and incident is not None:
        raise InvalidInput("Give --request or --incident, not both.")
    if request is not None:
        return (request.strip().upper(),)
    if incident is not None:
        return tuple(AuditLog(engine).requests_for_incident(incident))
    return None


@audit_app.command("export")
def export(
    config: ConfigOption,
    since: Annotated[str | None, typer.Option("--since", help="From this time (inclusive; UTC unless given).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this time (exclusive).")] = None,
    request: RequestOption = None,
    incident: IncidentOption = None,
    output_format: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = ExportFormat.jsonl,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
) -> None:
    """Export events with their hashes; every line can be re-hashed on its own (docs/audit.md)."""
    from store.audit import AuditLog, EventFilter

    try:
        settings = load_audit_settings(config)
        since_at, until_at = _parse_time(since, "--since"), _parse_time(until, "--until")
        engine = _engine(settings)
        try:
            ids = _request_ids(engine, request, incident)
            records = AuditLog(engine).records(EventFilter(since_at, until_at, ids))
        finally:
            engine.dispose()
    except BreakglassError as error:
        raise _fail(error) from None
    if ids == ():
        errors.print(f"no request's reason mentions {incident}; nothing to export.")
    if output is None:
        _write(records, output_format, sys.stdout)
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as stream:
            _write(records, output_format, stream)
    except OSError as exc:
        raise _fail(InvalidInput(f"Cannot write {output}: {exc.strerror}.")) from None
    errors.print(f"wrote {len(records)} events to {output}")


CSV_COLUMNS = ("seq", "at", "request_id", "actor", "kind", "details", "prev_hash", "hash")


def _write(records: list[AuditRecord], output_format: ExportFormat, stream: TextIO) -> None:
    if output_format is ExportFormat.jsonl:
        for record in records:
            stream.write(json.dumps(record.as_dict(), sort_keys=True, separators=(",", ":")) + "\n")
        return
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow([r.seq, r.at_iso, r.request_id, r.actor, r.kind, r.details_json, r.prev_hash, r.hash])


@audit_app.command("report")
def report(
    config: ConfigOption,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")],
    request: RequestOption = None,
    incident: IncidentOption = None,
    checkpoints: CheckpointsOption = None,
    public_key: PublicKeyOption = None,
    workers: WorkersOption = None,
) -> None:
    """Write a self-contained HTML post-incident report: timeline, requests, approvals, verification.

    Exits 1 (after writing the report) if the audit chain fails verification.
    """
    from cli.report_html import ReportData, RequestView, render_report
    from store.audit import AuditLog, EventFilter
    from store.sql import SqlRequestStore

    try:
        if request is None and incident is None:
            raise InvalidInput("Say what to report on.", hint="Pass --request ID or --incident TAG.")
        settings = load_audit_settings(config)
        signed, key = _checkpoints(settings, checkpoints, public_key)
        engine = _engine(settings)
        try:
            ids = _request_ids(engine, request, incident) or ()
            if not ids:
                raise InvalidInput(f"No request's reason mentions {incident}.", hint="Check the tag, e.g. INC-42.")
            store = SqlRequestStore(engine)
            views = tuple(RequestView(store.get(i), tuple(store.approvals(i))) for i in ids)
            log = AuditLog(engine)
            records = tuple(log.records(EventFilter(request_ids=ids)))
            verification = log.verify(signed, key, workers=workers)
        finally:
            engine.dispose()
    except BreakglassError as error:
        raise _fail(error) from None
    if incident:
        incident = incident.upper()
        title = f"Incident {incident}"
        selection = f"requests whose reason mentions {incident}, and their rollbacks: {', '.join(ids)}"
    else:
        title, selection = f"Request {ids[0]}", f"request {ids[0]}"
    data = ReportData(title, selection, views, records, verification, datetime.now(UTC))
    try:
        output.write_text(render_report(data), encoding="utf-8")
    except OSError as exc:
        raise _fail(InvalidInput(f"Cannot write {output}: {exc.strerror}.")) from None
    state = (
        "chain intact" if verification.ok else f"chain FAILED verification (first bad seq {verification.first_bad_seq})"
    )
    console.print(f"wrote {output}: {len(views)} request(s), {len(records)} events; {state}")
    if not verification.ok:
        raise typer.Exit(1)
