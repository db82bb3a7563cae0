"""The composition root: settings -> concrete adapters -> service -> front doors.

The only module that knows every concrete class; everything else sees ports.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime

from pydantic import SecretStr, ValidationError
from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryHandler, RetryState
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from sqlalchemy.engine import Engine

from approvals.policy_file import SignedPolicyFile
from bootstrap.paths import build_routes, trust_of
from bot.app import build_app
from bot.notifier import SlackThreadNotifier
from bot.ops import (
    Metrics,
    ObservedStore,
    Readiness,
    carry_log_context,
    database_check,
    policy_check,
    request_counts,
    vault_check,
)
from bot.outbox import SENDER_LOCK, OutboxSender, SenderSettings, SlackOutbox
from config import AppConfig, ConfigError, SealedCredentials, SlackSettings, ZoneConfig, load_slack_settings
from config.logs import configure_logging
from core.ports import RequestStore
from core.records import RecordType, normalize_name
from probes.liveness import RecordProber
from providers.authoritative import DnsAuthoritativeQuerier
from providers.discovery import DnsAddressResolver
from providers.inspection import DnsZoneInspector, InspectionSettings, servers_of
from service.changes import ChangeService
from service.claims import WorkClaims
from service.drills import DrillRunner
from service.propagation import PropagationChecker
from service.readiness import CriticalRecord, PathFacts, ReadinessReporter, ReadinessSettings
from service.recovery import Recovery
from service.zones import ZoneDirectory, ZoneRuntime
from store.audit import AuditLog, Checkpointer
from store.checkpoints import CheckpointLog, CheckpointSigner, load_private_key
from store.drills import SqlDrillStore
from store.locks import WorkerLock
from store.migrate import require_up_to_date
from store.outbox import SqlOutbox
from store.sql import SqlRequestStore, make_engine

__all__ = [
    "build_drill_runner",
    "build_engine",
    "build_outbox",
    "build_outbox_sender",
    "build_readiness",
    "build_readiness_reporter",
    "build_recovery",
    "build_service",
    "build_slack_app",
    "configure_logging",
    "load_socket_mode_settings",
    "slack_retry_handlers",
]


def _zone_runtime(config: AppConfig, zone: ZoneConfig) -> ZoneRuntime:
    return ZoneRuntime(zone.name, build_routes(config, zone), tuple(p.to_probe() for p in zone.probes))


def _inspection(config: AppConfig, zone: ZoneConfig) -> InspectionSettings:
    checks = zone.verification
    return InspectionSettings(
        servers=servers_of(zone.authoritative_servers),
        discover=checks.discover,
        discover_via=servers_of(checks.discover_via),
        ns_port=checks.ns_port,
        ns_ports={normalize_name(k): v for k, v in checks.ns_ports.items()},
        parent_servers=servers_of(checks.parent_servers),
        resolvers=servers_of(checks.resolvers),
        timeout=config.verification.query_timeout_seconds,
    )


def build_engine(config: AppConfig) -> Engine:
    return make_engine(config.database.url)


def build_service(config: AppConfig, engine: Engine, *, metrics: Metrics | None = None) -> ChangeService:
    """``metrics``: fed from the events the service writes, and counting requests by state in ``engine``."""
    require_up_to_date(config.database.url)
    store: RequestStore = SqlRequestStore(engine)
    if metrics is not None:
        store = ObservedStore(store, metrics)
        metrics.count_requests_with(lambda: request_counts(engine))
        metrics.count_outbox_with(SqlOutbox(engine).counts)
    policy = SignedPolicyFile(config.policy.file, config.policy.signature, config.policy.trusted_keys)
    timeout = config.verification.query_timeout_seconds
    inspector = DnsZoneInspector({z.name: _inspection(config, z) for z in config.zones})
    resolve = DnsAddressResolver(
        authoritative=tuple(s for z in config.zones for s in servers_of(z.authoritative_servers)),
        resolvers=tuple(s for z in config.zones for s in servers_of(z.verification.resolvers)),
        timeout=timeout,
    )
    return ChangeService(
        ZoneDirectory([_zone_runtime(config, z) for z in config.zones]),
        store,
        policy,
        PropagationChecker(DnsAuthoritativeQuerier(timeout_seconds=timeout)),
        config.verification.timeout_seconds,
        inspector,
        RecordProber(resolve),
        checkpointer=_checkpointer(config, engine),
        claims=WorkClaims(SqlRequestStore(engine), interval=config.recovery.stale_after_seconds / 4),
    )


def build_recovery(config: AppConfig, engine: Engine, service: ChangeService, outbox: SlackOutbox) -> Recovery:
    """Crash recovery (not started): finishes requests whose bot died, telling their Slack threads."""
    notifier = SlackThreadNotifier(outbox, config.audit.slack_channel)
    return Recovery(service, SqlRequestStore(engine), notifier, stale_after=config.recovery.stale_after_seconds)


class _TextCheckpointer:
    """Adapts the store's Checkpointer to the service's port (the line to publish)."""

    def __init__(self, checkpointer: Checkpointer) -> None:
        self._checkpointer = checkpointer

    def checkpoint(self) -> str:
        return self._checkpointer.checkpoint().to_text()


def _checkpointer(config: AppConfig, engine: Engine) -> _TextCheckpointer | None:
    audit = config.audit
    if audit.signing_key_file is None:
        return None
    log_file = CheckpointLog(audit.checkpoint_file) if audit.checkpoint_file else None
    signer = CheckpointSigner(load_private_key(audit.signing_key_file))
    return _TextCheckpointer(Checkpointer(AuditLog(engine), signer, log_file))


def _in_ack_path(request: HttpRequest) -> bool:
    """Bolt calls auth.test inside the 3 s ack of the first request after a start: waiting cannot help there."""
    return request.url.endswith("/auth.test")


class _RateLimitRetry(RateLimitErrorRetryHandler):
    def _can_retry(
        self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:  # fmt: skip
        return not _in_ack_path(request) and super()._can_retry(
            state=state, request=request, response=response, error=error
        )


class _ServerErrorRetry(ServerErrorRetryHandler):
    def _can_retry(
        self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:  # fmt: skip
        return not _in_ack_path(request) and super()._can_retry(
            state=state, request=request, response=response, error=error
        )


def slack_retry_handlers() -> list[RetryHandler]:
    """Without these a 429 or a Slack 5xx loses the message: WebClient retries only connection errors.

    A 429 waits the Retry-After Slack sends; a 500/503 is retried with backoff (a 500 after Slack
    did post can show a message twice, which beats never showing it).
    """
    return [ConnectionErrorRetryHandler(max_retry_count=2), _RateLimitRetry(max_retry_count=2), _ServerErrorRetry(2)]


def build_outbox(engine: Engine) -> SlackOutbox:
    """Where Slack messages wait until delivered; share one per engine between the app and the sender."""
    return SlackOutbox(SqlOutbox(engine))


def build_outbox_sender(
    service: ChangeService, outbox: SlackOutbox, slack: SlackSettings, settings: SenderSettings | None = None
) -> OutboxSender:
    """The outbox's delivery thread (not started). Its WebClient retries nothing itself: the outbox's policy
    (Retry-After, backoff, give up on permanent errors) is the one in force; its timeout stays under the lease."""
    settings = settings or SenderSettings()
    client = WebClient(
        token=slack.bot_token.get_secret_value(),
        base_url=slack.api_url or WebClient.BASE_URL,
        timeout=max(1, int(settings.lease_seconds / 3)),
        retry_handlers=[],
    )
    engine = outbox.store.engine
    return OutboxSender(outbox.store, WorkerLock(engine, SENDER_LOCK), client, service.status, settings=settings)


def build_slack_app(
    service: ChangeService,
    slack: SlackSettings,
    audit_channel: str | None = None,
    *,
    outbox: SlackOutbox,
    drills: DrillRunner | None = None,
    readiness_reporter: ReadinessReporter | None = None,
    notify: str = "mention",
) -> App:
    client = WebClient(
        token=slack.bot_token.get_secret_value(),
        base_url=slack.api_url or WebClient.BASE_URL,
        retry_handlers=slack_retry_handlers(),
    )
    app = build_app(
        service, slack.signing_secret.get_secret_value(), client, audit_channel,
        outbox=outbox, drills=drills, readiness_reporter=readiness_reporter, notify=notify,
    )  # fmt: skip
    carry_log_context(app)
    return app


def build_readiness(config: AppConfig, engine: Engine, service: ChangeService) -> Readiness:
    """/readyz: the database, every configured Vault (each address once), the signed policy; 5 s at most."""
    limit = 5.0
    checks = [database_check(engine)]
    seen: set[str] = set()
    for name, vault in [("default", config.vault), *config.vaults.items()]:
        if vault.address not in seen:
            seen.add(vault.address)
            checks.append(vault_check(name, vault.address, min(vault.timeout_seconds, limit)))
    checks.append(policy_check(service.policy_problem))
    return Readiness(checks, timeout=limit + 0.5)


def load_socket_mode_settings() -> SlackSettings:
    """Socket Mode deliveries arrive unsigned over the bot's own connection, so SLACK_SIGNING_SECRET is
    optional; when unset, a random one nobody knows makes sure no HTTP request could ever pass as Slack."""
    if os.environ.get("SLACK_SIGNING_SECRET"):
        return load_slack_settings()
    try:
        return SlackSettings(signing_secret=SecretStr(secrets.token_hex(32)))  # type: ignore[call-arg]
    except ValidationError:
        raise ConfigError("Slack settings are missing: SLACK_BOT_TOKEN.", hint="Set it in the environment.") from None


def build_drill_runner(config: AppConfig, engine: Engine, service: ChangeService) -> DrillRunner:
    """Drills go through the service's own change paths and check every authoritative server.

    Each drill's audit checkpoint goes to the audit channel through the outbox (from the command
    line too: a running bot delivers it).
    """
    timeout = config.verification.query_timeout_seconds
    return DrillRunner(
        service.zones,
        SqlRequestStore(engine),
        SqlDrillStore(engine),
        SignedPolicyFile(config.policy.file, config.policy.signature, config.policy.trusted_keys),
        PropagationChecker(DnsAuthoritativeQuerier(timeout_seconds=timeout)),
        DnsZoneInspector({z.name: _inspection(config, z) for z in config.zones}),
        verify_timeout=config.drills.timeout_seconds or config.verification.timeout_seconds,
        canary_ttl=config.drills.canary_ttl,
        checkpointer=_checkpointer(config, engine),
        publisher=SlackThreadNotifier(build_outbox(engine), config.audit.slack_channel),
    )


def build_readiness_reporter(config: AppConfig, engine: Engine) -> ReadinessReporter:
    """Reads the config, the signed policy and the drill history only: no credential is leased."""
    require_up_to_date(config.database.url)
    paths = [
        PathFacts(zone.name, path.name, path.kind, trust_of(config, path),
                  isinstance(path.credentials, SealedCredentials), _sealed_at(path.credentials))
        for zone in config.zones
        for path in zone.paths
    ]  # fmt: skip
    inventory = [
        CriticalRecord(i.record, RecordType(i.type), i.service, i.rto_seconds, tuple(i.leads_to))
        for i in config.inventory
    ]
    drills = config.drills
    return ReadinessReporter(
        inventory,
        paths,
        SignedPolicyFile(config.policy.file, config.policy.signature, config.policy.trusted_keys),
        SqlDrillStore(engine),
        ReadinessSettings(drills.stale_after_days, drills.approval_estimate_seconds, drills.max_credential_age_days),
    )


def _sealed_at(credentials: object) -> datetime | None:
    """When a sealed envelope was sealed: its header says so in the clear. Other sources do not tell."""
    if not isinstance(credentials, SealedCredentials):
        return None
    try:
        header = json.loads(credentials.envelope_path.read_text())
        return datetime.fromisoformat(str(header["created_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
