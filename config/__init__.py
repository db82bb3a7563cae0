"""Configuration: a TOML file for what breakglass manages, environment variables for secrets.

Validated with pydantic so a bad file fails at start-up with a message that names the
field and says what to fix, never later in the middle of an incident.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import InvalidInput
from core.liveness import HttpProbe, HttpScheme, Probe, TcpProbe, TlsNameProbe
from core.records import RecordType, is_subdomain, normalize_name
from core.verification import ServerAddress


class ConfigError(InvalidInput):
    """The configuration file or environment is invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VaultKvCredentials(_Strict):
    """A TSIG key or API key in Vault/OpenBao KV v2, read after an AppRole login."""

    source: Literal["vault-kv"]
    vault: str = "default"  # which [vault] / [vaults.NAME] identity logs in
    mount: str = "secret"
    path: str
    kind: Literal["tsig", "api_key"] = "tsig"


class VaultStsCredentials(_Strict):
    """AWS: a Vault/OpenBao identity token exchanged at STS AssumeRoleWithWebIdentity (900 s)."""

    source: Literal["vault-identity-sts"]
    vault: str = "default"
    oidc_role: str
    role_arn: str
    hosted_zone_id: str | None = None  # limits the session policy to this zone
    sts_endpoint_url: str | None = None
    region: str = "us-east-1"


class VaultAwsCredentials(_Strict):
    """AWS: HashiCorp Vault's AWS secrets engine (aws/sts or aws/creds)."""

    source: Literal["vault-aws"]
    vault: str = "default"
    aws_role: str
    endpoint: Literal["sts", "creds"] = "sts"
    role_arn: str | None = None
    aws_mount: str = "aws"
    region: str = "us-east-1"


class SealedCredentials(_Strict):
    """For when Vault itself is down: an AEAD-sealed file whose key is kept off the bot host."""

    source: Literal["sealed"]
    envelope_path: Path
    envelope_name: str
    key_file: Path | None = None  # mounted only during break-glass...
    key_env: str | None = None  # ...or handed over in the environment

    @model_validator(mode="after")
    def _one_key(self) -> SealedCredentials:
        if (self.key_file is None) == (self.key_env is None):
            raise ValueError("a sealed envelope needs exactly one of key_file or key_env")
        return self


CredentialsConfig = Annotated[
    VaultKvCredentials | VaultStsCredentials | VaultAwsCredentials | SealedCredentials, Field(discriminator="source")
]


class TrustLabels(_Strict):
    """Declared trust path of a change path; unset labels are derived from the config."""

    identity: str | None = None  # who the path acts as (Vault AppRole, IAM role...)
    credential_source: str | None = None  # where its secret comes from (which Vault, sealed file...)
    control_plane: str | None = None  # what it talks to (a DNS primary, an API, Route53)


class _PathBase(_Strict):
    name: str
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    credentials: CredentialsConfig
    trust: TrustLabels = TrustLabels()


class Rfc2136PathConfig(_PathBase):
    kind: Literal["rfc2136"]
    server: str  # host:port of the primary that accepts TSIG-signed UPDATEs

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        ServerAddress.parse(value)
        return value

    def endpoint(self) -> str:
        return f"dns://{self.server}"


class PowerDnsPathConfig(_PathBase):
    kind: Literal["powerdns"]
    api_url: str  # e.g. http://127.0.0.1:8081
    server_id: str = "localhost"

    def endpoint(self) -> str:
        return self.api_url


class Route53PathConfig(_PathBase):
    kind: Literal["route53"]
    endpoint_url: str | None = None  # default AWS; tests point it at a local emulator
    hosted_zone_id: str | None = None
    max_changes: int = Field(default=1000, ge=1, le=1000)
    allow_multi_batch: bool = False  # split plans over max_changes into several (reported) batches
    insync_timeout_seconds: float = 60.0

    def endpoint(self) -> str:
        return self.endpoint_url or "route53.amazonaws.com"


PathConfig = Annotated[Rfc2136PathConfig | PowerDnsPathConfig | Route53PathConfig, Field(discriminator="kind")]


class ZoneVerificationConfig(_Strict):
    """Where verification looks, besides the fixed ``authoritative_servers`` list."""

    discover: bool = False  # use the zone's own NS set (every A/AAAA of every NS) instead of the fixed list
    discover_via: list[str] = []  # authoritative servers to ask for the NS set (default: the fixed list)
    ns_port: int = Field(default=53, ge=1, le=65535)
    ns_ports: dict[str, int] = {}  # NS name -> port, for name servers on non-standard ports
    parent_servers: list[str] = []  # ask these for the delegation and warn on a mismatch
    resolvers: list[str] = []  # recursive resolvers to report cached answers from

    @field_validator("discover_via", "parent_servers", "resolvers")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for server in value:
            ServerAddress.parse(server)
        return value


class TcpProbeConfig(_Strict):
    kind: Literal["tcp"]
    port: int
    timeout_seconds: float = 3.0

    def to_probe(self) -> Probe:
        return TcpProbe(self.port, self.timeout_seconds)


class HttpProbeConfig(_Strict):
    kind: Literal["http", "https"]
    port: int | None = None
    path: str = "/"
    expect_status: tuple[int, int] = (200, 399)
    host: str | None = None  # Host header; default the record's name
    timeout_seconds: float = 5.0
    verify_tls: bool = True
    ca_file: str | None = None

    def to_probe(self) -> Probe:
        return HttpProbe(
            HttpScheme(self.kind), self.port, self.path, self.expect_status, self.host, self.timeout_seconds,
            self.verify_tls, self.ca_file,
        )  # fmt: skip


class TlsProbeConfig(_Strict):
    kind: Literal["tls"]
    port: int = 443
    server_name: str | None = None  # default the record's name
    timeout_seconds: float = 5.0
    ca_file: str | None = None

    def to_probe(self) -> Probe:
        return TlsNameProbe(self.port, self.server_name, self.timeout_seconds, self.ca_file)


ProbeConfig = Annotated[TcpProbeConfig | HttpProbeConfig | TlsProbeConfig, Field(discriminator="kind")]


class ZoneConfig(_Strict):
    name: str
    authoritative_servers: list[str] = []  # every server verification must see (unless discovered)
    paths: list[PathConfig] = Field(min_length=1)  # change paths, tried in order
    max_change_fraction: float = Field(default=0.3, gt=0, le=1)  # octoDNS-style: refuse bigger plans...
    max_change_min_records: int = Field(default=10, ge=1)  # ...in zones with at least this many rrsets
    verification: ZoneVerificationConfig = ZoneVerificationConfig()
    probes: list[ProbeConfig] = []  # liveness of the new target before a request counts as recovered

    @model_validator(mode="after")
    def _unique_paths(self) -> ZoneConfig:
        names = [p.name for p in self.paths]
        if len(names) != len(set(names)):
            raise ValueError(f"change path names must be unique in a zone: {names}")
        return self

    @model_validator(mode="after")
    def _somewhere_to_verify(self) -> ZoneConfig:
        if not self.authoritative_servers and not self.verification.discover:
            raise ValueError("list authoritative_servers, or set verification.discover = true")
        if self.verification.discover and not (self.verification.discover_via or self.authoritative_servers):
            raise ValueError("verification.discover needs discover_via (or authoritative_servers) to ask")
        for probe in self.probes:
            probe.to_probe()  # validates ports, paths and status ranges now, not mid-incident
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return normalize_name(value)

    @field_validator("authoritative_servers")
    @classmethod
    def _servers(cls, value: list[str]) -> list[str]:
        for server in value:
            ServerAddress.parse(server)
        return value

    def servers(self) -> tuple[ServerAddress, ...]:
        return tuple(ServerAddress.parse(s) for s in self.authoritative_servers)


class VaultConfig(_Strict):
    address: str
    approle_mount: str = "approle"
    role_id_file: Path | None = None  # else env BREAKGLASS_VAULT_ROLE_ID (or _<NAME>_ for [vaults.NAME])
    secret_id_file: Path | None = None  # else env BREAKGLASS_VAULT_SECRET_ID
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class PolicyConfig(_Strict):
    """The signed approval policy (docs/policy.md); relative paths are relative to the config file."""

    file: Path
    signature_file: Path | None = None  # default: <file>.sig
    trusted_keys: list[str] = Field(min_length=1)  # OpenSSH ed25519 public keys allowed to sign the policy

    @property
    def signature(self) -> Path:
        return self.signature_file or self.file.with_name(self.file.name + ".sig")


class VerificationConfig(_Strict):
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    query_timeout_seconds: float = Field(default=2.0, gt=0, le=30)


class AuditConfig(_Strict):
    """Signed checkpoints of the audit chain head, published outside the database."""

    signing_key_file: Path | None = None  # Ed25519 private key (PEM); no key, no checkpoints
    public_key_file: Path | None = None  # what `audit verify` checks checkpoints against
    checkpoint_file: Path | None = None  # append-only JSONL copy of every checkpoint
    slack_channel: str | None = None  # also post each checkpoint here (e.g. a locked #breakglass-audit)


class SlackConfig(_Strict):
    """How the Slack front door reaches people (its secrets come from the environment, see SlackSettings)."""

    notify: Literal["mention", "dm"] = "mention"  # dm: approvers and requesters also get direct messages


class InventoryItem(_Strict):
    """A critical service destination: what the readiness report checks breakglass could correct in time."""

    record: str  # e.g. api.example.com
    type: str = "A"
    service: str  # the owning service
    rto_seconds: float = Field(gt=0)  # recovery time objective for correcting this record's routing
    leads_to: list[str] = []  # secrets and identities routing leads to, e.g. ["token service"]

    @field_validator("record")
    @classmethod
    def _record(cls, value: str) -> str:
        return normalize_name(value)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        return RecordType.parse(value).value


class DrillConfig(_Strict):
    """Drills (`breakglass drill`, `/dns drill`) and the readiness report (`breakglass readiness`)."""

    actor: str | None = None  # a person in the policy whom scheduled/CI drills run as (without --key)
    canary_ttl: int = Field(default=60, ge=1, le=3600)
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)  # default [verification] timeout_seconds
    stale_after_days: int = Field(default=30, ge=1)  # readiness: a path not drilled for longer is a finding
    approval_estimate_seconds: float = Field(default=0.0, ge=0)  # readiness: added to drilled times vs the RTO
    max_credential_age_days: int = Field(default=90, ge=1)


class DatabaseConfig(_Strict):
    url: str = "sqlite:///breakglass.db"


class RecoveryConfig(_Strict):
    """Crash recovery: a request whose bot went silent mid-flow is taken over by a running bot."""

    # No state change and no heartbeat for this long: the bot carrying a request out is taken for dead.
    # It heartbeats every quarter of this, and every bot sweeps for such requests every half of it.
    stale_after_seconds: float = Field(default=30.0, ge=1, le=3600)


class AppConfig(_Strict):
    database: DatabaseConfig = DatabaseConfig()
    vault: VaultConfig
    vaults: dict[str, VaultConfig] = {}  # further Vault identities, for paths that must not share one
    audit: AuditConfig = AuditConfig()
    policy: PolicyConfig
    verification: VerificationConfig = VerificationConfig()
    drills: DrillConfig = DrillConfig()
    inventory: list[InventoryItem] = []  # critical records, for the readiness report
    slack: SlackConfig = SlackConfig()
    recovery: RecoveryConfig = RecoveryConfig()
    zones: list[ZoneConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_zones(self) -> AppConfig:
        names = [z.name for z in self.zones]
        if len(names) != len(set(names)):
            raise ValueError("a zone is listed twice")
        return self

    def vault_named(self, name: str) -> VaultConfig:
        if name == "default":
            return self.vault
        try:
            return self.vaults[name]
        except KeyError:
            raise ConfigError(f'No [vaults.{name}] section, but a change path uses vault = "{name}".') from None

    @model_validator(mode="after")
    def _known_vaults(self) -> AppConfig:
        for zone in self.zones:
            for path in zone.paths:
                vault = getattr(path.credentials, "vault", "default")
                if vault != "default" and vault not in self.vaults:
                    raise ValueError(f"zone {zone.name} path {path.name} uses unknown vault {vault!r}")
        return self

    @model_validator(mode="after")
    def _inventory_in_zones(self) -> AppConfig:
        for item in self.inventory:
            if self.zone_for(item.record) is None:
                raise ValueError(f"inventory record {item.record} is not in any configured zone")
        return self

    def zone_for(self, name: str) -> ZoneConfig | None:
        """The longest configured zone that contains ``name``."""
        matches = [z for z in self.zones if is_subdomain(name, z.name)]
        return max(matches, key=lambda z: len(z.name), default=None)


class SlackSettings(BaseSettings):
    """Slack secrets come only from the environment, never from the config file."""

    model_config = SettingsConfigDict(env_prefix="SLACK_", extra="ignore")

    bot_token: SecretStr
    signing_secret: SecretStr
    api_url: str | None = None  # Web API base URL; default is Slack's own


def _readable(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"{where}: {item['msg']}")
    return "; ".join(lines)


def load_config(path: Path) -> AppConfig:
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist.", hint="Pass --config with the right path.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Config file {path} is not valid TOML: {exc}.") from None
    try:
        config = AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"Config file {path} is invalid: {_readable(exc)}.") from None
    except InvalidInput as exc:
        raise ConfigError(f"Config file {path} is invalid: {exc.user_text()}") from None
    return _relative_to(config, path.parent)


def _relative_to(config: AppConfig, base: Path) -> AppConfig:
    """Policy paths in the file are relative to the file, not to wherever the bot was started."""
    policy = config.policy
    resolved = policy.model_copy(
        update={
            "file": base / policy.file,
            "signature_file": None if policy.signature_file is None else base / policy.signature_file,
        }
    )
    audit = config.audit.model_copy(
        update={
            key: base / value
            for key in ("signing_key_file", "public_key_file", "checkpoint_file")
            if (value := getattr(config.audit, key)) is not None
        }
    )
    return config.model_copy(update={"policy": resolved, "audit": audit})


def load_slack_settings() -> SlackSettings:
    try:
        return SlackSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        missing = ", ".join("SLACK_" + str(e["loc"][0]).upper() for e in exc.errors())
        raise ConfigError(
            f"Slack settings are missing or invalid: {missing}.", hint="Set them in the environment."
        ) from None


def read_secret(file: Path | None, env_var: str, what: str) -> SecretStr:
    """A secret from a file (preferred: not visible in the process environment) or the environment."""
    if file is not None:
        try:
            return SecretStr(file.read_text().strip())
        except OSError as exc:
            raise ConfigError(f"Cannot read the {what} file {file}: {exc.strerror}.") from None
    value = os.environ.get(env_var)
    if not value:
        raise ConfigError(f"No {what} configured.", hint=f"Set {env_var} or the *_file option in [vault].")
    return SecretStr(value)
