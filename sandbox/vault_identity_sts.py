"""Sandbox set-up for AWS credentials from an OpenBao identity token (``credentials.aws_sts``).

OpenBao side: an AppRole whose logins carry a named entity, an OIDC key and role, and a policy that
lets the role read ``identity/oidc/token/<role>`` and nothing else.
AWS side (moto): an IAM OIDC provider for OpenBao's issuer, a role trusting it for that entity, and a
hosted zone the role may change.

What moto checks, and what it does not (moto 5.2): ``AssumeRoleWithWebIdentity`` accepts ANY token
string, for ANY role ARN (the role need not exist), and evaluates no trust policy, no aud/sub
condition and no session policy; it only records the call and issues credentials it will recognise
later. So the token's signature and claims are checked by the tests themselves, against OpenBao's
JWKS, and real AWS additionally needs the issuer on public HTTPS.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import boto3

from sandbox.openbao import OpenBaoServer

DEFAULT_AUDIENCE = "sts.amazonaws.com"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class IdentityTokenRole:
    """What the bot is configured with on the Vault side, plus what AWS must trust (throwaway values)."""

    role_name: str
    role_id: str
    secret_id: str = field(repr=False)
    entity_id: str  # the identity token's ``sub``
    oidc_role: str
    client_id: str  # the identity token's ``aud``
    issuer: str  # the identity token's ``iss``


def provision_identity_token(
    server: OpenBaoServer,
    *,
    role_name: str,
    client_id: str = DEFAULT_AUDIENCE,
    approle_mount: str = "approle",
    token_ttl_seconds: int = 300,
    id_token_ttl_seconds: int = 900,
) -> IdentityTokenRole:
    """An AppRole ``role_name`` that may mint identity tokens for OIDC role ``role_name`` (and read nothing else).

    The entity is created up front and aliased to the role_id, so every login carries the same,
    known ``sub``: that is what the AWS trust policy pins.
    """
    client = server.client()
    auth_methods = client.sys.list_auth_methods()["data"]
    if f"{approle_mount}/" not in auth_methods:
        client.sys.enable_auth_method("approle", path=approle_mount)
        auth_methods = client.sys.list_auth_methods()["data"]
    mount_accessor = auth_methods[f"{approle_mount}/"]["accessor"]

    oidc_role = role_name
    client.secrets.identity.create_named_key(role_name, allowed_client_ids=[client_id], algorithm="RS256")
    client.secrets.identity.create_or_update_role(
        oidc_role, key=role_name, ttl=f"{id_token_ttl_seconds}s", client_id=client_id
    )
    policy = f'path "identity/oidc/token/{oidc_role}" {{\n  capabilities = ["read"]\n}}\n'
    client.sys.create_or_update_acl_policy(name=role_name, policy=policy)
    client.auth.approle.create_or_update_approle(
        role_name,
        token_policies=[role_name],
        token_ttl=f"{token_ttl_seconds}s",
        token_max_ttl=f"{2 * token_ttl_seconds}s",
        mount_point=approle_mount,
    )
    role_id = str(client.auth.approle.read_role_id(role_name, mount_point=approle_mount)["data"]["role_id"])
    secret_id = str(client.auth.approle.generate_secret_id(role_name, mount_point=approle_mount)["data"]["secret_id"])

    entity_id = str(client.secrets.identity.create_or_update_entity(name=role_name)["data"]["id"])
    client.secrets.identity.create_or_update_entity_alias(
        name=role_id, canonical_id=entity_id, mount_accessor=mount_accessor
    )
    return IdentityTokenRole(
        role_name=role_name,
        role_id=role_id,
        secret_id=secret_id,
        entity_id=entity_id,
        oidc_role=oidc_role,
        client_id=client_id,
        issuer=openid_configuration(server.address)["issuer"],
    )


def openid_configuration(address: str, identity_mount: str = "identity") -> dict[str, Any]:
    """OpenBao's discovery document (unauthenticated, as AWS would fetch it)."""
    url = f"{address}/v1/{identity_mount}/oidc/.well-known/openid-configuration"
    with _OPENER.open(url, timeout=5) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


def jwks(address: str, identity_mount: str = "identity") -> dict[str, Any]:
    """OpenBao's public signing keys (unauthenticated, as AWS would fetch them)."""
    with _OPENER.open(f"{address}/v1/{identity_mount}/oidc/.well-known/keys", timeout=5) as response:
        keys: dict[str, Any] = json.loads(response.read())
    return keys


@dataclass(frozen=True)
class WebIdentityRole:
    """The AWS side: provider, role and the one zone the role may change."""

    provider_arn: str
    role_arn: str
    hosted_zone_id: str
    zone_name: str


def aws_client(service: str, endpoint_url: str, region: str = "us-east-1") -> Any:
    """A boto3 client for moto; moto ignores the (fake) keys unless its IAM checks are switched on."""
    return boto3.session.Session().client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="sandbox",
        aws_secret_access_key="sandbox",  # noqa: S106 - moto's throwaway admin, not a secret  # nosec B106
    )


def provision_web_identity_role(
    endpoint_url: str, identity: IdentityTokenRole, *, role_name: str, zone_name: str
) -> WebIdentityRole:
    """Create (in moto) the IAM OIDC provider for ``identity.issuer`` (once), a role trusting exactly its
    entity for its audience, and the hosted zone ``zone_name`` that the role may change."""
    iam = aws_client("iam", endpoint_url)
    route53 = aws_client("route53", endpoint_url)
    issuer_key = identity.issuer.split("://", 1)[1]  # IAM names condition keys after the issuer without scheme
    known = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    provider_arn = next((arn for arn in known if arn.endswith(f":oidc-provider/{issuer_key}")), None)
    if provider_arn is None:
        provider_arn = iam.create_open_id_connect_provider(
            Url=identity.issuer, ClientIDList=[identity.client_id], ThumbprintList=["0" * 40]
        )["OpenIDConnectProviderArn"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{issuer_key}:aud": identity.client_id, f"{issuer_key}:sub": identity.entity_id}
                },
            }
        ],
    }
    role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]

    zone = route53.create_hosted_zone(Name=zone_name, CallerReference=secrets.token_hex(8))["HostedZone"]
    zone_id = str(zone["Id"]).removeprefix("/hostedzone/")
    permissions = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
                "Resource": f"arn:aws:route53:::hostedzone/{zone_id}",
            },
            {"Effect": "Allow", "Action": ["route53:GetChange", "route53:ListHostedZonesByName"], "Resource": "*"},
        ],
    }
    iam.put_role_policy(RoleName=role_name, PolicyName="breakglass-dns", PolicyDocument=json.dumps(permissions))
    return WebIdentityRole(
        provider_arn=provider_arn,
        role_arn=role_arn,
        hosted_zone_id=zone_id,
        zone_name=zone_name,
    )
