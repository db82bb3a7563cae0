"""`breakglass audit ...`: verify the hash chain, sign checkpoints, export events, write incident reports.

Exit codes: 0 all good; 1 the audit chain or a checkpoint failed verification; 2 the
command could not run (bad config, unreadable key or database).
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.console import Console

from core.errors import BreakglassError, InvalidInput

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from sqlalchemy import Engine

    from store.audit import AuditRecord, ChainVerification
    from store.checkpoints import Checkpoint

audit_app = typer.Typer(
    no_args_is_help=True, help="Audit trail: verify the hash chain, sign checkpoints, export events, write reports."
)

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

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
    errors.print(f"[red]error:[/red] {error.user_text()}", markup=True)
    return typer.Exit(2)


def _engine(config: Path) -> Engine:
    from config import load_config
    from store.sql import make_engine

    return make_engine(load_config(config).database.url)


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
        engine = _engine(config)
        try:
            result = AuditLog(engine).verify(*_checkpoints(checkpoints, public_key), workers=workers)
        finally:
            engine.dispose()
    except BreakglassError as error:
        raise _fail(error) from None
    _print_verification(result)
    if not result.ok:
        raise typer.Exit(1)


def _checkpoints(checkpoints: Path | None, public_key: Path | None) -> tuple[list[Checkpoint], Ed25519PublicKey | None]:
    """(checkpoints, public key) from the options; both or neither."""
    from store.checkpoints import load_public_key, read_checkpoints

    if (checkpoints is None) != (public_key is None):
        raise InvalidInput(
            "--checkpoints and --public-key go together: checkpoints are only worth their signature.",
            hint="Pass both, or neither to check the chain alone.",
        )
    if checkpoints is None or public_key is None:
        return [], None
    return list(read_checkpoints(checkpoints)), load_public_key(public_key)


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
        console.print("[red]FAILED[/red]: a checkpoint does not verify.", markup=True)
    for problem in result.problems:
        console.print(f"  seq {problem.seq}: {problem.text}")


@audit_app.command("checkpoint")
def checkpoint(
    config: ConfigOption,
    private_key: Annotated[Path, typer.Option("--private-key", help="Ed25519 signing key (PEM).")],
    checkpoints: Annotated[
        Path | None, typer.Option("--checkpoints", help="Append the checkpoint to this JSONL file.")
    ] = None,
) -> None:
    """Sign the current chain head and print it (run it from cron for periodic checkpoints)."""
    from store.audit import AuditLog, Checkpointer
    from store.checkpoints import CheckpointLog, CheckpointSigner, load_private_key

    try:
        signer = CheckpointSigner(load_private_key(private_key))
        engine = _engine(config)
        try:
            log = CheckpointLog(checkpoints) if checkpoints else None
            made = Checkpointer(AuditLog(engine), signer, log).checkpoint()
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
    from store.audit import AuditLog

    if request is not None and incident is not None:
        raise InvalidInput("Give --request or --incident, not both.")
    if request is not None:
        return (request.upper(),)
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
    """Export events with their hashes (each line can be re-hashed on its own)."""
    from store.audit import AuditLog, EventFilter

    try:
        selection = EventFilter(_parse_time(since, "--since"), _parse_time(until, "--until"))
        engine = _engine(config)
        try:
            ids = _request_ids(engine, request, incident)
            records = AuditLog(engine).records(EventFilter(selection.since, selection.until, ids))
        finally:
            engine.dispose()
    except BreakglassError as error:
        raise _fail(error) from None
    if ids == ():
        errors.print(f"no request mentions {incident}; nothing to export.")
    if output is None:
        _write(records, output_format, sys.stdout)
    else:
        with output.open("w", encoding="utf-8", newline="") as stream:
            _write(records, output_format, stream)
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
    """Write a self-contained HTML post-incident report: timeline, requests, approvals, verification."""
    from cli.report_html import ReportData, RequestView, render_report
    from store.audit import AuditLog, EventFilter
    from store.sql import SqlRequestStore

    if request is None and incident is None:
        raise _fail(InvalidInput("Say what to report on.", hint="Pass --request ID or --incident TAG."))
    try:
        engine = _engine(config)
        try:
            ids = _request_ids(engine, request, incident) or ()
            if not ids:
                raise InvalidInput(f"No request's reason mentions {incident}.", hint="Check the tag, e.g. INC-42.")
            store = SqlRequestStore(engine)
            views = tuple(RequestView(store.get(i), tuple(store.approvals(i))) for i in ids)
            log = AuditLog(engine)
            records = tuple(log.records(EventFilter(request_ids=ids)))
            verification = log.verify(*_checkpoints(checkpoints, public_key), workers=workers)
        finally:
            engine.dispose()
    except BreakglassError as error:
        raise _fail(error) from None
    title = f"Incident {incident}" if incident else f"Request {ids[0]}"
    selection = (
        f"requests whose reason mentions {incident} ({', '.join(ids)}) and their rollbacks"
        if incident
        else f"request {ids[0]}"
    )
    data = ReportData(title, selection, views, records, verification, datetime.now(UTC))
    try:
        output.write_text(render_report(data), encoding="utf-8")
    except OSError as exc:
        raise _fail(InvalidInput(f"Cannot write {output}: {exc.strerror}.")) from None
    state = "chain intact" if verification.ok else f"chain FAILED verification at seq {verification.first_bad_seq}"
    console.print(f"wrote {output}: {len(views)} request(s), {len(records)} events; {state}")
    if not verification.ok:
        raise typer.Exit(1)
