"""The composition root: settings -> concrete adapters -> service -> front doors.

The only module that knows every concrete class; everything else sees ports.
"""

from __future__ import annotations

from slack_bolt import App
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from approvals.policy_file import SignedPolicyFile
from bootstrap.paths import build_routes
from bot.app import build_app
from config import AppConfig, SlackSettings, ZoneConfig
from config.logs import configure_logging
from core.records import normalize_name
from probes.liveness import RecordProber
from providers.authoritative import DnsAuthoritativeQuerier
from providers.discovery import DnsAddressResolver
from providers.inspection import DnsZoneInspector, InspectionSettings, servers_of
from service.changes import ChangeService
from service.propagation import PropagationChecker
from service.zones import ZoneDirectory, ZoneRuntime
from store.audit import AuditLog, Checkpointer
from store.checkpoints import CheckpointLog, CheckpointSigner, load_private_key
from store.migrate import require_up_to_date
from store.sql import SqlRequestStore, make_engine

__all__ = ["build_engine", "build_service", "build_slack_app", "configure_logging"]


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


def build_service(config: AppConfig, engine: Engine) -> ChangeService:
    require_up_to_date(config.database.url)
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
        SqlRequestStore(engine),
        policy,
        PropagationChecker(DnsAuthoritativeQuerier(timeout_seconds=timeout)),
        config.verification.timeout_seconds,
        inspector,
        RecordProber(resolve),
        checkpointer=_checkpointer(config, engine),
    )


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


def build_slack_app(service: ChangeService, slack: SlackSettings, audit_channel: str | None = None) -> App:
    client = WebClient(token=slack.bot_token.get_secret_value(), base_url=slack.api_url or WebClient.BASE_URL)
    return build_app(service, slack.signing_secret.get_secret_value(), client, audit_channel)
