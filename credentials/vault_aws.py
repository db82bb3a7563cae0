"""AWS credentials from HashiCorp Vault's AWS secrets engine (``aws/creds/<role>``, ``aws/sts/<role>``).

Tested only against Vault's documented responses (``sandbox/vault_aws_stub.py``): OpenBao has no
AWS engine. What revocation means depends on the Vault role's credential type (Vault's own
behaviour): for ``iam_user`` (``creds`` endpoint) revoking the lease deletes the IAM user, so the
keys die at once; for ``assumed_role``/``federation_token`` (``sts`` endpoint) AWS cannot revoke
STS credentials, so they live until their TTL, which is why we ask for 900 s.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import hvac
import hvac.exceptions

from core.credentials import AwsCredentials, LeaseInfo
from core.errors import CredentialError
from core.secrets import Secret
from credentials.vault import AppRoleLogin, VaultLease, VaultSession, vault_status

STS_TTL_SECONDS = 900  # the shortest session STS grants


class AwsEngineEndpoint(StrEnum):
    CREDS = "creds"  # iam_user: a throwaway IAM user, deleted when the lease is revoked
    STS = "sts"  # assumed_role / federation_token: STS credentials, unrevocable, expire by TTL


class VaultAwsLease(VaultLease):
    """An AWS engine lease: ``revoke`` revokes the Vault lease, then the token that read it."""

    def __init__(self, info: LeaseInfo, credentials: AwsCredentials, session: VaultSession) -> None:
        super().__init__(info, credentials, session)
        self._lease_revoked = False

    def revoke(self) -> None:
        """Idempotent. The token is revoked even if the lease revocation fails (Vault then revokes the
        token's leases itself); any failure is raised afterwards, naming the lease, so it is seen."""
        lease_failed: CredentialError | None = None
        if not self._lease_revoked:
            try:
                self._session.call(
                    lambda client: client.sys.revoke_lease(self.info.lease_id),
                    doing=f"revoke lease {self.info.lease_id}",
                    refused=self._lease_refused,
                    hint=f"Vault revokes it by itself within {self.info.ttl_seconds}s.",
                )
                self._lease_revoked = True
            except CredentialError as exc:
                lease_failed = exc
        token_failed: CredentialError | None = None
        try:
            self._session.revoke()
        except CredentialError as exc:
            token_failed = exc
        if lease_failed is not None and token_failed is not None:
            raise CredentialError(f"{lease_failed.message} {token_failed.message}", hint=lease_failed.hint)
        if token_failed is not None:
            raise token_failed
        if lease_failed is not None:
            raise CredentialError(
                f"{lease_failed.message} The Vault token that created it was revoked, so Vault revokes the lease "
                "with it.",
                hint=lease_failed.hint,
            )

    def _lease_refused(self, exc: hvac.exceptions.VaultError) -> CredentialError | None:
        if isinstance(exc, hvac.exceptions.Forbidden):
            return CredentialError(
                f"Vault at {self._session.address} denied revoking lease {self.info.lease_id} (permission denied).",
                hint="Ask the Vault admins to grant `update` on sys/leases/revoke to the role.",
            )
        return None


class VaultAwsEngineSource:
    """``CredentialSource`` for AWS keys issued by Vault's AWS secrets engine, after an AppRole login."""

    def __init__(
        self,
        name: str,
        *,
        address: str,
        role_id: Secret,
        secret_id: Secret,
        aws_role: str,
        endpoint: AwsEngineEndpoint | str = AwsEngineEndpoint.STS,
        role_arn: str | None = None,
        aws_mount: str = "aws",
        region: str = "us-east-1",
        approle_mount: str = "approle",
        timeout_seconds: float = 5.0,
    ) -> None:
        self.name = name
        self.aws_role = aws_role.strip("/")
        self.endpoint = AwsEngineEndpoint(endpoint)
        self.role_arn = role_arn
        self.aws_mount = aws_mount.strip("/")
        self.region = region
        self._login = AppRoleLogin(address, role_id, secret_id, approle_mount, timeout_seconds)
        self.address = self._login.address

    @property
    def _where(self) -> str:
        return f"{self.aws_mount}/{self.endpoint.value}/{self.aws_role}"

    def __repr__(self) -> str:
        return f"VaultAwsEngineSource(name={self.name!r}, address={self.address!r}, path={self._where!r})"

    def lease(self) -> VaultAwsLease:
        """Log in and ask the engine once; the token is revoked again if anything after login fails."""
        session = self._login.login()
        with session.revoked_on_failure():
            response = session.call(self._generate, doing=f"read {self._where}", refused=self._refused)
            info, credentials = self._parse(response)
        return VaultAwsLease(info, credentials, session)

    def _generate(self, client: hvac.Client) -> object:
        sts = self.endpoint is AwsEngineEndpoint.STS
        response: Any = client.secrets.aws.generate_credentials(
            self.aws_role,
            role_arn=self.role_arn,
            ttl=f"{STS_TTL_SECONDS}s" if sts else None,  # iam_user leases follow aws/config/lease instead
            endpoint=self.endpoint.value,
            mount_point=self.aws_mount,
        )
        return response

    def _refused(self, exc: hvac.exceptions.VaultError) -> CredentialError | None:
        if isinstance(exc, hvac.exceptions.Forbidden):
            return CredentialError(
                f"Vault at {self.address} denied the break-glass role reading {self._where} (permission denied).",
                hint=f"Ask the Vault admins to grant `{'update' if self.endpoint is AwsEngineEndpoint.STS else 'read'}`"
                f" on {self._where} to the role.",
            )
        if isinstance(exc, hvac.exceptions.InvalidRequest | hvac.exceptions.InvalidPath):
            return CredentialError(
                f"Vault's AWS secrets engine at {self.address} refused to issue credentials at {self._where} "
                f"(HTTP {vault_status(exc)}).",
                hint="Check that the engine is mounted there, the role exists with a matching credential_type "
                "(creds: iam_user; sts: assumed_role or federation_token), and Vault's own AWS credentials work.",
            )
        return None

    def _parse(self, response: object) -> tuple[LeaseInfo, AwsCredentials]:
        """Check the documented shape; no message repeats a value from it."""
        bad = f"Vault at {self.address} answered {self._where} without usable AWS credentials"
        body: dict[str, Any] = response if isinstance(response, dict) else {}
        data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else {}
        access_key, secret_key = data.get("access_key"), data.get("secret_key")
        token = data.get("security_token") or data.get("session_token")
        if not isinstance(access_key, str) or not access_key or not isinstance(secret_key, str) or not secret_key:
            raise CredentialError(f"{bad} (no access_key/secret_key).", hint="Check the Vault AWS engine's logs.")
        if self.endpoint is AwsEngineEndpoint.STS and not isinstance(token, str):
            raise CredentialError(f"{bad} (no security_token).", hint="Check the Vault role's credential_type.")
        lease_id = body.get("lease_id")
        if not isinstance(lease_id, str) or not lease_id:
            raise CredentialError(f"{bad} (no lease_id, so it could not be revoked).", hint="Check the Vault role.")
        credentials = AwsCredentials(
            access_key_id=access_key,
            secret_access_key=Secret(secret_key),
            session_token=Secret(token) if isinstance(token, str) and token else None,
            region=self.region,
        )
        ttl = body.get("lease_duration")
        return LeaseInfo(self.name, lease_id, int(ttl) if isinstance(ttl, int) else 0), credentials
