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


Credentials = TsigKey


@dataclass(frozen=True)
class LeaseInfo:
    """What may be said about a lease in logs, Slack and the audit trail (never its value)."""

    source: str
    lease_id: str
    ttl_seconds: int
