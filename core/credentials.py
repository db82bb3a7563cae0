"""Typed credential values handed to change paths. Their secrets are ``Secret``s."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.secrets import Secret


class TsigAlgorithm(StrEnum):
    HMAC_SHA256 = "hmac-sha256"
    HMAC_SHA384 = "hmac-sha384"
    HMAC_SHA512 = "hmac-sha512"


@dataclass(frozen=True)
class TsigKey:
    name: str
    algorithm: TsigAlgorithm
    secret: Secret  # base64, as in a BIND key file


@dataclass(frozen=True)
class ApiKey:
    """An HTTP API key (e.g. PowerDNS ``X-API-Key``)."""

    secret: Secret


@dataclass(frozen=True)
class AwsCredentials:
    """Temporary AWS credentials (STS); the key id is an identifier, the rest are secrets."""

    access_key_id: str
    secret_access_key: Secret
    session_token: Secret | None = None
    region: str = "us-east-1"


Credentials = TsigKey | ApiKey | AwsCredentials


@dataclass(frozen=True)
class LeaseInfo:
    """What may be said about a lease in logs, Slack and the audit trail (never its value)."""

    source: str
    lease_id: str
    ttl_seconds: int
    must_rotate: bool = False  # e.g. a sealed-envelope secret: once used, it must be replaced
