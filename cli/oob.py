"""Out-of-band commands: the policy, and requests and decisions signed with a person's SSH key.

They work when Slack or SSO is down: identity comes from the key pinned in the signed
policy, never from an identity provider.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from core.errors import BreakglassError, InvalidInput
from core.models import RecordEdit

if TYPE_CHECKING:
    from bot.notifier import SlackThreadNotifier
    from core.ports import StoredRequest
    from service.changes import ApprovalOutcome, ChangeService

policy_app = typer.Typer(no_args_is_help=True, help="The signed approval policy.")
request_app = typer.Typer(no_args_is_help=True, help="Request a change without Slack (signed with your SSH key).")

console = Console()
errors = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="breakglass TOML config file.", envvar="BREAKGLASS_CONFIG")
]
KeyOption = Annotated[
    Path, typer.Option("--key", "-k", help="Your SSH private key (its public half is in the policy).")
]


def _fail(error: BreakglassError) -> typer.Exit:
    errors.print(f"[red]error:[/red] {error.user_text()}", highlight=False)
    return typer.Exit(2)


def _read_key(path: Path) -> tuple[bytes, bytes | None]:
    """The key bytes and, if it is encrypted, a passphrase (BREAKGLASS_KEY_PASSPHRASE or a prompt)."""
    from approvals.statements import load_ssh_private_key

    try:
        data = path.expanduser().read_bytes()
    except OSError as error:
        raise InvalidInput(f"Cannot read the key {path}: {error.strerror}.") from None
    try:
        load_ssh_private_key(data)
        return data, None
    except InvalidInput:
        pass
    passphrase = os.environ.get("BREAKGLASS_KEY_PASSPHRASE")
    if passphrase is None and sys.stdin.isatty():
        passphrase = typer.prompt(f"Passphrase for {path}", hide_input=True)
    return data, (passphrase or "").encode() or None


def _sign(key: Path, request_id: str, digest: str, decision: str, signer: str | None, config: Path | None) -> str:
    """A signed statement block; the signer's name comes from --as or from the policy by key fingerprint."""
    from approvals.statements import Decision, Statement, private_key_fingerprint, sign_statement

    data, passphrase = _read_key(key)
    fingerprint = private_key_fingerprint(data, passphrase)
    if signer is None:
        signer = _name_for(fingerprint, config)
    statement = Statement(request_id.upper(), digest, Decision(decision), datetime.now(UTC), signer, fingerprint)
    return sign_statement(statement, data, passphrase).to_text()


def _name_for(fingerprint: str, config: Path | None) -> str:
    if config is None:
        raise InvalidInput("Say who you are with --as NAME (your name in the policy), or pass --config.")
    from approvals.policy_file import SignedPolicyFile
    from config import load_config

    settings = load_config(config)
    policy = SignedPolicyFile(settings.policy.file, settings.policy.signature, settings.policy.trusted_keys).current()
    person = policy.person_by_fingerprint(fingerprint)
    if person is None:
        raise InvalidInput(f"Key {fingerprint} is not pinned to anyone in the policy.", hint="Use your own key.")
    return person.name


def _service(config: Path) -> ChangeService:
    import bootstrap
    from config import load_config

    settings = load_config(config)
    return bootstrap.build_service(settings, bootstrap.build_engine(settings))


def _service_and_thread(config: Path) -> tuple[ChangeService, SlackThreadNotifier]:
    """The service, and a notifier that queues for the request's Slack thread in the outbox.

    Slack may be down (that is why this runs): what is queued is posted, in order, once a bot
    is running and Slack answers again.
    """
    import bootstrap
    from bot.notifier import SlackThreadNotifier
    from config import load_config

    settings = load_config(config)
    engine = bootstrap.build_engine(settings)
    thread = SlackThreadNotifier(bootstrap.build_outbox(engine), settings.audit.slack_channel)
    return bootstrap.build_service(settings, engine), thread


# --- policy --------------------------------------------------------------------------------


@policy_app.command("sign")
def policy_sign(
    policy: Annotated[Path, typer.Argument(help="The policy YAML file.")],
    key: Annotated[Path, typer.Option("--key", "-k", help="The policy signing key (OpenSSH Ed25519 private key).")],
) -> None:
    """Write POLICY.sig, a detached Ed25519 signature over the exact file bytes."""
    from approvals.policy import load_policy
    from approvals.signing import sign_policy

    try:
        body = policy.read_bytes()
        load_policy(body, source=str(policy))  # never sign a policy that does not load
        data, passphrase = _read_key(key)
        signature = sign_policy(body, data, passphrase)
    except (BreakglassError, OSError) as error:
        raise _fail(error if isinstance(error, BreakglassError) else InvalidInput(str(error))) from None
    target = policy.with_name(policy.name + ".sig")
    target.write_bytes(signature)
    console.print(f"wrote {target}")


@policy_app.command("check")
def policy_check(
    policy: Annotated[Path, typer.Argument(help="The policy YAML file.")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Also check its signature against this config's trusted keys.")
    ] = None,
) -> None:
    """Validate and explain the policy: per rule who may request and approve, and fragile spots."""
    from approvals.explain import explain
    from approvals.policy import load_policy

    try:
        loaded = load_policy(policy.read_bytes(), source=str(policy))
    except BreakglassError as error:
        raise _fail(error) from None
    except OSError as error:
        raise _fail(InvalidInput(f"Cannot read {policy}: {error.strerror}.")) from None
    console.print(explain(loaded).to_text(), highlight=False)
    if config is not None:
        from approvals.policy_file import SignedPolicyFile
        from config import load_config

        settings = load_config(config)
        verification = SignedPolicyFile(
            policy, policy.with_name(policy.name + ".sig"), settings.policy.trusted_keys
        ).verification()
        colour = "green" if verification.ok else "red"
        console.print(f"[{colour}]signature: {verification.message}[/{colour}]", highlight=False)
        if not verification.ok:
            raise typer.Exit(1)


# --- requests -------------------------------------------------------------------------------


def _request(config: Path, key: Path, signer: str | None, edits: list[RecordEdit], reason: str) -> None:
    from approvals.statements import SignedStatement

    def sign(request_id: str, digest: str) -> SignedStatement:
        return SignedStatement.from_text(_sign(key, request_id, digest, "request", signer, config))

    service = _service(config)
    stored = service.request_change_signed(edits, reason, sign)
    status = service.status(stored.request.id)
    console.print(f"[bold]{stored.request.id}[/bold] planned; {status.rule}; needs {status.needs}.", highlight=False)
    for change in stored.plan.changes:
        before = change.before.describe() if change.before else "(none)"
        after = change.after.describe() if change.after else "(none)"
        console.print(f"  {change.name} {change.rtype}: {before} -> {after}", highlight=False)
    console.print(f"plan digest {stored.plan.digest()}")
    console.print(f"Approvers: breakglass approve {stored.request.id} --key ~/.ssh/id_ed25519")


@request_app.command("set")
def request_set(
    config: ConfigOption,
    key: KeyOption,
    name: Annotated[str, typer.Argument()],
    rtype: Annotated[str, typer.Argument(metavar="TYPE")],
    values: Annotated[list[str], typer.Argument()],
    reason: Annotated[str, typer.Option(help="Why: shown to approvers and in the audit trail.")],
    ttl: Annotated[int, typer.Option()] = 300,
    signer: Annotated[str | None, typer.Option("--as", help="Your name in the policy (default: found by key).")] = None,
) -> None:
    """Request replacing an rrset, as the owner of KEY."""
    from core.records import RecordType, RRset, normalize_name

    try:
        fqdn, kind = normalize_name(name), RecordType.parse(rtype)
        _request(config, key, signer, [RecordEdit(fqdn, kind, RRset.build(fqdn, kind, ttl, values))], reason)
    except BreakglassError as error:
        raise _fail(error) from None


@request_app.command("delete")
def request_delete(
    config: ConfigOption,
    key: KeyOption,
    name: Annotated[str, typer.Argument()],
    rtype: Annotated[str, typer.Argument(metavar="TYPE")],
    reason: Annotated[str, typer.Option(help="Why: shown to approvers and in the audit trail.")],
    signer: Annotated[str | None, typer.Option("--as", help="Your name in the policy (default: found by key).")] = None,
) -> None:
    """Request deleting an rrset, as the owner of KEY."""
    from core.records import RecordType, normalize_name

    try:
        _request(config, key, signer, [RecordEdit(normalize_name(name), RecordType.parse(rtype), None)], reason)
    except BreakglassError as error:
        raise _fail(error) from None


# --- decisions --------------------------------------------------------------------------------


def decide(
    decision: str,
    config: Path,
    request_id: str,
    key: Path | None,
    print_statement: bool,
    submit: Path | None,
    emergency: bool,
) -> None:
    from approvals.statements import SignedStatement
    from cli.console_notifier import ConsoleNotifier, Tee
    from service.changes import ApprovalOutcome

    request_id = request_id.upper()
    try:
        service, thread = _service_and_thread(config)
        stored = service.status(request_id).stored
        digest = stored.plan.digest()
        if print_statement:
            console.print(f"Request {request_id}: {stored.request.reason}", highlight=False)
            for change in stored.plan.changes:
                before = change.before.describe() if change.before else "(none)"
                after = change.after.describe() if change.after else "(none)"
                console.print(f"  {change.name} {change.rtype}: {before} -> {after}", highlight=False)
            console.print("To sign on your own computer (no config needed), run:")
            console.print(
                f"  breakglass sign {request_id} --digest {digest} --decision {decision} "
                "--as YOUR-NAME --key ~/.ssh/id_ed25519",
                highlight=False,
                soft_wrap=True,
            )
            console.print(
                "and send the printed block back; it is submitted with "
                f"`breakglass {decision} {request_id} --submit-signature FILE`."
            )
            return
        if submit is not None:
            text = sys.stdin.read() if str(submit) == "-" else submit.read_text()
        elif key is not None:
            text = _sign(key, request_id, digest, decision, None, config)
        else:
            raise InvalidInput("Say how you sign: --key PATH, --submit-signature FILE, or --print-statement.")
        signed = SignedStatement.from_text(text)
        result = service.decide_signed(signed, emergency=emergency, notifier=thread)
        thread.update_message(request_id)
        thread.note(request_id, _decided_text(signed.statement.signer, request_id, result))
        if isinstance(result, ApprovalOutcome):
            console.print(f"{request_id}: approval counted; still needed: {result.missing}.", highlight=False)
            if result.ready_to_apply:
                service.execute(request_id, Tee(ConsoleNotifier(console), thread))
        else:
            console.print(f"{request_id} is now {result.state.value}.")
    except BreakglassError as error:
        raise _fail(error) from None


def _decided_text(signer: str, request_id: str, result: ApprovalOutcome | StoredRequest) -> str:
    """The line for the Slack thread: who decided out of band, and what happens next."""
    from bot.render import escape, who
    from core.models import Principal, PrincipalSource
    from service.changes import ApprovalOutcome

    by = who(Principal(PrincipalSource.KEY, signer))
    if not isinstance(result, ApprovalOutcome):
        return f"{by} decided on {request_id} out of band (signed with their SSH key): it is now {result.state.value}."
    then = "the approvals are complete: applying it now." if result.ready_to_apply else (
        f"still needed: {escape(result.missing)}."
    )  # fmt: skip
    mentions = " ".join(f"<@{escape(u)}>" for u in result.notify)
    told = f" {mentions}: you are told because you could have approved it." if mentions else ""
    return f"{by} approved {request_id} out of band (signed with their SSH key); {then}{told}"
