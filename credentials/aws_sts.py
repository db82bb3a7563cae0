"""AWS credentials from a Vault/OpenBao identity token, exchanged at STS ``AssumeRoleWithWebIdentity``.

Why this shape: OpenBao has no AWS secrets engine, but Vault and OpenBao can both sign an identity
token (a JWT whose ``sub`` is the entity behind the AppRole login). AWS trusts that issuer through
an IAM OIDC provider, and STS answers with credentials that live 900 s (the STS minimum). Nothing
long-lived about AWS is stored in Vault or in breakglass.

STS credentials cannot be revoked: they expire by themselves. ``revoke()`` ends the Vault token,
so no further identity token (and so no further AWS credentials) can be minted with this lease.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

import hvac
import hvac.exceptions

from core.credentials import AwsCredentials, LeaseInfo
from core.errors import CredentialError
from core.secrets import Secret
from credentials.vault import AppRoleLogin, VaultLease, vault_status

STS_DURATION_SECONDS = 900  # the shortest session STS grants
SESSION_NAME_PREFIX = "breakglass"

# STS error codes (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html#API_AssumeRoleWithWebIdentity_Errors)
_TOKEN_REJECTED = frozenset({"InvalidIdentityToken", "ExpiredTokenException", "IDPRejectedClaim"})
_POLICY_REJECTED = frozenset({"MalformedPolicyDocument", "PackedPolicyTooLarge"})


def zone_session_policy(hosted_zone_id: str) -> str:
    """An inline session policy narrowing the role to one hosted zone.

    STS grants the intersection of the role's policies and this one, so even a broad role
    yields credentials that can change only this zone.
    """
    zone_id = hosted_zone_id.removeprefix("/hostedzone/")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ChangeOneZone",
                "Effect": "Allow",
                "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
                "Resource": f"arn:aws:route53:::hostedzone/{zone_id}",
            },
            {
                "Sid": "FollowChanges",
                "Effect": "Allow",
                "Action": "route53:GetChange",
                "Resource": "arn:aws:route53:::change/*",
            },
            {"Sid": "FindZone", "Effect": "Allow", "Action": "route53:ListHostedZonesByName", "Resource": "*"},
        ],
    }
    return json.dumps(policy, separators=(",", ":"))


def new_session_name() -> str:
    """``breakglass-<random>``: names the tool in CloudTrail without tying the session to a request id."""
    return f"{SESSION_NAME_PREFIX}-{secrets.token_hex(8)}"


class VaultIdentityStsSource:
    """``CredentialSource`` for temporary AWS credentials: AppRole login -> identity token -> STS.

    The lease id is the assumed-role ARN (it names the session, not a secret); the TTL is the
    credentials' remaining life, at most 900 s, because they cannot be revoked early.
    """

    def __init__(
        self,
        name: str,
        *,
        address: str,
        role_id: Secret,
        secret_id: Secret,
        oidc_role: str,
        role_arn: str,
        hosted_zone_id: str | None = None,
        sts_endpoint_url: str | None = None,
        region: str = "us-east-1",
        identity_mount: str = "identity",
        approle_mount: str = "approle",
        timeout_seconds: float = 5.0,
    ) -> None:
        self.name = name
        self.oidc_role = oidc_role.strip("/")
        self.role_arn = role_arn
        self.hosted_zone_id = hosted_zone_id
        self.sts_endpoint_url = sts_endpoint_url.rstrip("/") if sts_endpoint_url else None
        self.region = region
        self.identity_mount = identity_mount.strip("/")
        self.timeout_seconds = timeout_seconds
        self._login = AppRoleLogin(address, role_id, secret_id, approle_mount, timeout_seconds)
        self.address = self._login.address

    @property
    def _token_path(self) -> str:
        return f"{self.identity_mount}/oidc/token/{self.oidc_role}"

    @property
    def _sts_where(self) -> str:
        return f"AWS STS at {self.sts_endpoint_url}" if self.sts_endpoint_url else f"AWS STS ({self.region})"

    def __repr__(self) -> str:
        return (
            f"VaultIdentityStsSource(name={self.name!r}, address={self.address!r}, oidc_role={self.oidc_role!r}, "
            f"role_arn={self.role_arn!r}, hosted_zone_id={self.hosted_zone_id!r})"
        )

    def lease(self) -> VaultLease:
        """Log in, mint one identity token, exchange it; the Vault token is revoked if any step fails."""
        session = self._login.login()
        with session.revoked_on_failure():
            token = session.call(self._read_token, doing=f"read {self._token_path}", refused=self._token_refused)
            credentials, assumed_arn, ttl = self._exchange(token)
        return VaultLease(LeaseInfo(self.name, assumed_arn, ttl), credentials, session)

    def _read_token(self, client: hvac.Client) -> Secret:
        response: Any = client.secrets.identity.generate_signed_id_token(
            self.oidc_role, mount_point=self.identity_mount
        )
        data = response.get("data") if isinstance(response, dict) else None
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or token.count(".") != 2:
            raise hvac.exceptions.UnexpectedError("answer without an identity token")
        return Secret(token)

    def _token_refused(self, exc: hvac.exceptions.VaultError) -> CredentialError | None:
        if isinstance(exc, hvac.exceptions.Forbidden):
            return CredentialError(
                f"Vault at {self.address} denied the break-glass role an identity token ({self._token_path}: "
                "permission denied).",
                hint=f"Ask the Vault admins to grant `read` on {self._token_path} to the role.",
            )
        if isinstance(exc, hvac.exceptions.InvalidRequest | hvac.exceptions.InvalidPath):
            return CredentialError(
                f"Vault at {self.address} could not issue an identity token for OIDC role {self.oidc_role!r} "
                f"(HTTP {vault_status(exc)}).",
                hint="Check that the OIDC role exists, that its key allows the role's client_id, and that the "
                "AppRole login carries an entity.",
            )
        return None

    def _exchange(self, token: Secret) -> tuple[AwsCredentials, str, int]:
        """One unsigned STS call; boto3 is imported here so the KV-only deployments never load it."""
        import boto3
        import botocore
        import botocore.config
        import botocore.exceptions

        config = botocore.config.Config(
            signature_version=botocore.UNSIGNED,  # the web identity token is the only credential
            connect_timeout=self.timeout_seconds,
            read_timeout=self.timeout_seconds,
            retries={"total_max_attempts": 2, "mode": "standard"},
        )
        request: dict[str, Any] = {
            "RoleArn": self.role_arn,
            "RoleSessionName": new_session_name(),
            "WebIdentityToken": token.reveal(),
            "DurationSeconds": STS_DURATION_SECONDS,
        }
        if self.hosted_zone_id:
            request["Policy"] = zone_session_policy(self.hosted_zone_id)
        failure: CredentialError
        try:
            sts = boto3.session.Session().client(
                "sts", region_name=self.region, endpoint_url=self.sts_endpoint_url, config=config
            )
            response = sts.assume_role_with_web_identity(**request)
        except botocore.exceptions.ClientError as exc:
            failure = self._sts_refused(exc.response)
        except botocore.exceptions.ParamValidationError:
            failure = CredentialError(
                f"{self._sts_where} cannot be asked for role {self.role_arn!r}: the request is malformed.",
                hint="Check role_arn (arn:aws:iam::ACCOUNT:role/NAME).",
            )
        except botocore.exceptions.BotoCoreError as exc:
            failure = self._sts_failed(exc)
        else:
            return self._credentials(response)
        raise failure  # outside the handler: nothing chains to botocore text

    def _sts_refused(self, response: Any) -> CredentialError:
        error = response.get("Error", {}) if isinstance(response, dict) else {}
        code = str(error.get("Code") or "unknown error")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?") if isinstance(response, dict) else "?"
        said = f"{self._sts_where} refused to exchange the Vault identity token for role {self.role_arn}"
        if code == "AccessDenied":
            return CredentialError(
                f"{said} (AccessDenied).",
                hint="Check the role's trust policy: the OIDC provider, and the aud and sub conditions "
                "(aud = the OIDC role's client_id, sub = the break-glass entity id).",
            )
        if code in _TOKEN_REJECTED:
            return CredentialError(
                f"{said} ({code}).",
                hint="Check the IAM OIDC provider: its URL must equal the token issuer, reachable by AWS over HTTPS, "
                "with the OIDC role's client_id in its audiences.",
            )
        if code == "IDPCommunicationError":
            return CredentialError(f"{said}: AWS could not reach the Vault issuer.", hint="Retry, or check the issuer.")
        if code in _POLICY_REJECTED:
            return CredentialError(f"{said}: the session policy was refused ({code}).", hint="Check hosted_zone_id.")
        return CredentialError(f"{said} ({code}, HTTP {status}).", hint="Check the AWS account and role.")

    def _sts_failed(self, exc: Exception) -> CredentialError:
        from botocore import exceptions as errors

        hint = "Check the STS endpoint and the network, or use another change path."
        if isinstance(exc, errors.ConnectTimeoutError):
            why = f"no connection within {self.timeout_seconds:g}s"
        elif isinstance(exc, errors.ReadTimeoutError):
            why = f"no answer within {self.timeout_seconds:g}s"
        elif isinstance(exc, errors.EndpointConnectionError):
            why = "connection refused or dropped"
        else:
            return CredentialError(
                f"{self._sts_where} failed while exchanging the Vault identity token ({type(exc).__name__}).",
                hint=hint,
            )
        return CredentialError(
            f"{self._sts_where} is unreachable while exchanging the Vault identity token: {why}.", hint=hint
        )

    def _credentials(self, response: Any) -> tuple[AwsCredentials, str, int]:
        creds = response.get("Credentials") if isinstance(response, dict) else None
        user = response.get("AssumedRoleUser") if isinstance(response, dict) else None
        fields = ("AccessKeyId", "SecretAccessKey", "SessionToken")
        if not isinstance(creds, dict) or not isinstance(user, dict) or not all(creds.get(f) for f in fields):
            raise CredentialError(
                f"{self._sts_where} answered without complete credentials for role {self.role_arn}.",
                hint="Retry; if it persists, check the STS endpoint.",
            )
        credentials = AwsCredentials(
            access_key_id=str(creds["AccessKeyId"]),
            secret_access_key=Secret(str(creds["SecretAccessKey"])),
            session_token=Secret(str(creds["SessionToken"])),
            region=self.region,
        )
        arn = str(user.get("Arn") or user.get("AssumedRoleId") or self.role_arn)
        return credentials, arn, _remaining_seconds(creds.get("Expiration"))


def _remaining_seconds(expiration: object) -> int:
    """Seconds until STS expiry, trusting our clock only within 0..900 s (a skewed clock must not stretch it)."""
    if isinstance(expiration, datetime):
        remaining = int((expiration - datetime.now(UTC)).total_seconds())
        if 0 < remaining <= STS_DURATION_SECONDS:
            return remaining
    return STS_DURATION_SECONDS
