"""Building each zone's change paths: provider + credential source + trust path, from config."""

from __future__ import annotations

from config import (
    AppConfig,
    PathConfig,
    PowerDnsPathConfig,
    Rfc2136PathConfig,
    Route53PathConfig,
    SealedCredentials,
    VaultAwsCredentials,
    VaultConfig,
    VaultKvCredentials,
    VaultStsCredentials,
    ZoneConfig,
    read_secret,
)
from core.ports import ChangePath, CredentialSource
from core.secrets import Secret
from core.verification import ServerAddress
from service.zones import PathRuntime, TrustPath


def trust_of(config: AppConfig, path: PathConfig) -> TrustPath:
    """Declared labels win; otherwise they follow from which Vault identity, file and endpoint a path uses."""
    credentials = path.credentials
    if isinstance(credentials, SealedCredentials):
        identity, source = f"sealed envelope {credentials.envelope_name}", f"sealed file {credentials.envelope_path}"
    else:
        vault = config.vault_named(credentials.vault)
        identity = f"vault approle {credentials.vault}@{vault.address}"
        source = f"vault {vault.address}"
    return TrustPath(
        identity=path.trust.identity or identity,
        credential_source=path.trust.credential_source or source,
        control_plane=path.trust.control_plane or path.endpoint(),
    )


def _approle(vault_name: str, vault: VaultConfig) -> tuple[Secret, Secret]:
    """AppRole login material: files named in config, else BREAKGLASS_VAULT[_NAME]_ROLE_ID/_SECRET_ID."""
    prefix = "BREAKGLASS_VAULT" + ("" if vault_name == "default" else f"_{vault_name.upper().replace('-', '_')}")
    role_id = read_secret(vault.role_id_file, f"{prefix}_ROLE_ID", "Vault AppRole role_id")
    secret_id = read_secret(vault.secret_id_file, f"{prefix}_SECRET_ID", "Vault AppRole secret_id")
    return Secret(role_id.get_secret_value()), Secret(secret_id.get_secret_value())


def _source(config: AppConfig, zone: ZoneConfig, path: PathConfig) -> CredentialSource:
    from credentials.aws_sts import VaultIdentityStsSource
    from credentials.sealed import SealedEnvelopeSource
    from credentials.vault import VaultKvSource
    from credentials.vault_aws import VaultAwsEngineSource

    spec = path.credentials
    name = f"{spec.source}:{zone.name}{path.name}"
    if isinstance(spec, SealedCredentials):
        return SealedEnvelopeSource(
            name, envelope_path=spec.envelope_path, envelope_name=spec.envelope_name,
            key_file=spec.key_file, key_env=spec.key_env,
        )  # fmt: skip
    vault = config.vault_named(spec.vault)
    role_id, secret_id = _approle(spec.vault, vault)
    address, mount, timeout = vault.address, vault.approle_mount, vault.timeout_seconds
    if isinstance(spec, VaultKvCredentials):
        return VaultKvSource(
            f"vault-kv:{spec.mount}/{spec.path}", address=address, role_id=role_id, secret_id=secret_id,
            kv_path=spec.path, kind=spec.kind, kv_mount=spec.mount, approle_mount=mount, timeout_seconds=timeout,
        )  # fmt: skip
    if isinstance(spec, VaultStsCredentials):
        return VaultIdentityStsSource(
            name, address=address, role_id=role_id, secret_id=secret_id, oidc_role=spec.oidc_role,
            role_arn=spec.role_arn, hosted_zone_id=spec.hosted_zone_id, sts_endpoint_url=spec.sts_endpoint_url,
            region=spec.region, approle_mount=mount, timeout_seconds=timeout,
        )  # fmt: skip
    assert isinstance(spec, VaultAwsCredentials)
    return VaultAwsEngineSource(
        name, address=address, role_id=role_id, secret_id=secret_id, aws_role=spec.aws_role, endpoint=spec.endpoint,
        role_arn=spec.role_arn, aws_mount=spec.aws_mount, region=spec.region, approle_mount=mount,
        timeout_seconds=timeout,
    )  # fmt: skip


def _provider(zone: ZoneConfig, path: PathConfig) -> ChangePath:
    if isinstance(path, Rfc2136PathConfig):
        from providers.rfc2136 import Rfc2136Path

        return Rfc2136Path(path.name, ServerAddress.parse(path.server), zone.name, path.timeout_seconds)
    if isinstance(path, PowerDnsPathConfig):
        from providers.powerdns import PowerDnsApiPath

        return PowerDnsApiPath(path.name, path.api_url, zone.name, path.server_id, path.timeout_seconds)
    assert isinstance(path, Route53PathConfig)
    from providers.route53 import Route53Path  # boto3 is heavy: only when a zone uses Route53

    return Route53Path(
        path.name, zone.name, path.endpoint_url, path.timeout_seconds, path.max_changes,
        path.insync_timeout_seconds, allow_multi_batch=path.allow_multi_batch, hosted_zone_id=path.hosted_zone_id,
    )  # fmt: skip


def build_routes(config: AppConfig, zone: ZoneConfig) -> tuple[PathRuntime, ...]:
    return tuple(
        PathRuntime(
            _provider(zone, path),
            _source(config, zone, path),
            trust_of(config, path),
            sealed=isinstance(path.credentials, SealedCredentials),
        )
        for path in zone.paths
    )
