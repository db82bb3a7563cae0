"""VaultIdentityStsSource end to end: a real OpenBao signs the identity token, a real moto_server's STS
exchanges it, and the credentials are then used against moto's STS (with IAM checks on) and Route53.

moto does not verify the token, the trust policy or the session policy (see sandbox/vault_identity_sts.py),
so ``test_the_identity_token_satisfies_the_trust_policy`` checks the token the way AWS would.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import traceback
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import hvac
import hvac.exceptions
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from core.credentials import AwsCredentials
from core.errors import CredentialError
from core.ports import CredentialSource, Lease
from core.secrets import Secret
from credentials.aws_sts import STS_DURATION_SECONDS, VaultIdentityStsSource
from sandbox.moto import MotoServer
from sandbox.net import LOOPBACK, free_port
from sandbox.openbao import OpenBaoServer
from sandbox.vault_identity_sts import aws_client, jwks, openid_configuration
from tests.fixtures.moto_sts import IdentitySts, moto_iam_checks

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def full_text(exc: BaseException) -> str:
    """Everything a log or a crash report could show about ``exc``, chain included."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + getattr(exc, "user_text", str)()


def lease_error(source: VaultIdentityStsSource) -> CredentialError:
    with pytest.raises(CredentialError) as caught:
        source.lease()
    return caught.value


def live_tokens(openbao: OpenBaoServer, role_name: str) -> list[str]:
    """Accessors of the unexpired tokens issued to AppRole ``role_name`` (asked as root)."""
    root = openbao.client()
    found = []
    for accessor in root.auth.token.list_accessors()["data"]["keys"]:
        try:
            data = root.auth.token.lookup_accessor(accessor)["data"]
        except hvac.exceptions.VaultError:
            continue
        if (data.get("meta") or {}).get("role_name") == role_name:
            found.append(accessor)
    return found


def caller_arn(moto: MotoServer, credentials: AwsCredentials) -> str:
    """Who moto says these credentials are, with its signature and key checks switched on."""
    with moto_iam_checks(moto):
        return str(_client_with("sts", moto, credentials).get_caller_identity()["Arn"])


def _client_with(service: str, moto: MotoServer, credentials: AwsCredentials) -> Any:
    assert credentials.session_token is not None
    return boto3.session.Session().client(
        service,
        endpoint_url=moto.endpoint_url,
        region_name=credentials.region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key.reveal(),
        aws_session_token=credentials.session_token.reveal(),
    )


def recorded_session(moto: MotoServer, assumed_arn: str) -> dict[str, Any]:
    """moto's own record of an assumed-role session (its model dump), by ARN."""
    with _OPENER.open(f"{moto.endpoint_url}/moto-api/data.json", timeout=5) as response:
        sessions = json.loads(response.read())["sts"]["AssumedRole"]
    return next(s for s in sessions if s["arn"] == assumed_arn)


def test_lease_gives_aws_credentials_that_sts_and_route53_accept(
    identity_sts: IdentitySts, moto_sts: MotoServer
) -> None:
    source: CredentialSource = identity_sts.source(name="aws-sts")
    lease: Lease = source.lease()
    try:
        credentials = lease.credentials
        assert isinstance(credentials, AwsCredentials)
        role_name = identity_sts.aws.role_arn.rsplit("/", 1)[1]
        assert re.fullmatch(
            rf"arn:aws:sts::\d{{12}}:assumed-role/{role_name}/breakglass-[0-9a-f]{{16}}", lease.info.lease_id
        )
        assert lease.info.source == "aws-sts"
        assert STS_DURATION_SECONDS - 60 < lease.info.ttl_seconds <= STS_DURATION_SECONDS
        assert not lease.info.must_rotate

        # moto (IAM checks on) knows exactly this key, secret and session token, as this session.
        assert caller_arn(moto_sts, credentials) == lease.info.lease_id
        # ...and the keys work for Route53 (moto's Route53 cannot check signatures, so checks are off here).
        route53 = _client_with("route53", moto_sts, credentials)
        zones = route53.list_hosted_zones_by_name(DNSName=identity_sts.aws.zone_name, MaxItems="1")["HostedZones"]
        assert [z["Name"] for z in zones] == [identity_sts.aws.zone_name]
        records = route53.list_resource_record_sets(HostedZoneId=identity_sts.aws.hosted_zone_id)
        assert {r["Type"] for r in records["ResourceRecordSets"]} >= {"SOA", "NS"}
    finally:
        lease.revoke()


def test_the_session_is_narrowed_to_the_one_hosted_zone(identity_sts: IdentitySts, moto_sts: MotoServer) -> None:
    lease = identity_sts.source().lease()
    lease.revoke()
    policy = json.loads(recorded_session(moto_sts, lease.info.lease_id)["policy"])

    zone_arn = f"arn:aws:route53:::hostedzone/{identity_sts.aws.hosted_zone_id}"
    grants = {
        (action, statement["Resource"])
        for statement in policy["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
        if statement["Effect"] == "Allow"
    }
    assert grants == {
        ("route53:ChangeResourceRecordSets", zone_arn),
        ("route53:ListResourceRecordSets", zone_arn),
        ("route53:GetChange", "arn:aws:route53:::change/*"),
        ("route53:ListHostedZonesByName", "*"),
    }


def test_without_a_zone_no_session_policy_is_sent(identity_sts: IdentitySts, moto_sts: MotoServer) -> None:
    lease = identity_sts.source(hosted_zone_id=None).lease()
    lease.revoke()
    assert recorded_session(moto_sts, lease.info.lease_id)["policy"] is None


def test_each_lease_is_a_new_session_with_new_keys(identity_sts: IdentitySts) -> None:
    source = identity_sts.source()
    first, second = source.lease(), source.lease()
    try:
        assert first.info.lease_id != second.info.lease_id
        assert isinstance(first.credentials, AwsCredentials) and isinstance(second.credentials, AwsCredentials)
        assert first.credentials.access_key_id != second.credentials.access_key_id
    finally:
        first.revoke()
        second.revoke()


def test_revoke_ends_the_vault_token_while_the_aws_keys_run_out_their_900_seconds(
    identity_sts: IdentitySts, openbao: OpenBaoServer, moto_sts: MotoServer
) -> None:
    lease = identity_sts.source().lease()
    assert len(live_tokens(openbao, identity_sts.vault.role_name)) == 1

    lease.revoke()

    assert live_tokens(openbao, identity_sts.vault.role_name) == []
    assert isinstance(lease.credentials, AwsCredentials)
    # STS credentials cannot be revoked: they still work until they expire. This is why the TTL is 900 s.
    assert caller_arn(moto_sts, lease.credentials) == lease.info.lease_id
    lease.revoke()  # a second revoke is a no-op


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_the_identity_token_satisfies_the_trust_policy(
    identity_sts: IdentitySts, openbao: OpenBaoServer, moto_sts: MotoServer
) -> None:
    """What AWS checks and moto does not: signature by the issuer's key, iss, aud, sub, lifetime."""
    client = hvac.Client(url=openbao.address, token="")
    client.auth.approle.login(role_id=identity_sts.vault.role_id, secret_id=identity_sts.vault.secret_id)
    token = client.secrets.identity.generate_signed_id_token(identity_sts.vault.oidc_role)["data"]["token"]
    client.auth.token.revoke_self()

    header_b64, claims_b64, signature_b64 = token.split(".")
    header, claims = json.loads(_b64url(header_b64)), json.loads(_b64url(claims_b64))
    key = next(k for k in jwks(openbao.address)["keys"] if k["kid"] == header["kid"])
    assert header["alg"] == "RS256"
    public_key = rsa.RSAPublicNumbers(
        int.from_bytes(_b64url(key["e"]), "big"), int.from_bytes(_b64url(key["n"]), "big")
    ).public_key()
    public_key.verify(
        _b64url(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )

    iam = aws_client("iam", moto_sts.endpoint_url)
    issuer_key = claims["iss"].split("://", 1)[1]
    provider = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=identity_sts.aws.provider_arn)
    assert claims["iss"] == openid_configuration(openbao.address)["issuer"]
    assert provider["Url"] in (claims["iss"], issuer_key)
    assert claims["aud"] in provider["ClientIDList"]
    trust = iam.get_role(RoleName=identity_sts.aws.role_arn.rsplit("/", 1)[1])["Role"]["AssumeRolePolicyDocument"]
    statement = trust["Statement"][0]
    assert statement["Principal"]["Federated"] == identity_sts.aws.provider_arn
    assert statement["Condition"]["StringEquals"] == {
        f"{issuer_key}:aud": claims["aud"],
        f"{issuer_key}:sub": claims["sub"],
    }
    assert claims["sub"] == identity_sts.vault.entity_id
    assert claims["exp"] - claims["iat"] == 900


@pytest.mark.parametrize("wrong", ["role_id", "secret_id"])
def test_wrong_approle_credentials_are_refused_without_echoing_them(identity_sts: IdentitySts, wrong: str) -> None:
    bogus = "bogus-" + "x" * 24
    overrides: dict[str, object] = {wrong: Secret(bogus)}
    error = lease_error(identity_sts.source("vault-sts", **overrides))

    assert "refused the AppRole login: invalid role_id or secret_id" in str(error)
    shown = full_text(error)
    assert bogus not in shown and identity_sts.vault.secret_id not in shown and identity_sts.vault.role_id not in shown
    assert error.__context__ is None and error.__cause__ is None


def test_an_oidc_role_outside_the_policy_is_denied_and_the_token_revoked(
    identity_sts: IdentitySts, openbao: OpenBaoServer
) -> None:
    error = lease_error(identity_sts.source(oidc_role="someone-else"))

    assert "denied the break-glass role an identity token (identity/oidc/token/someone-else" in str(error)
    assert "grant `read` on identity/oidc/token/someone-else" in error.user_text()
    assert live_tokens(openbao, identity_sts.vault.role_name) == []


def test_a_missing_oidc_role_says_what_to_check(identity_sts: IdentitySts, openbao: OpenBaoServer) -> None:
    name = identity_sts.vault.role_name
    openbao.client().sys.create_or_update_acl_policy(
        name=name, policy='path "identity/oidc/token/ghost" { capabilities = ["read"] }'
    )
    error = lease_error(identity_sts.source(oidc_role="ghost"))

    assert "could not issue an identity token for OIDC role 'ghost' (HTTP 400)" in str(error)
    assert "Check that the OIDC role exists" in error.user_text()
    assert live_tokens(openbao, name) == []


def test_sts_endpoint_down_is_a_clear_error_and_the_token_revoked(
    identity_sts: IdentitySts, openbao: OpenBaoServer
) -> None:
    down = f"http://{LOOPBACK}:{free_port()}"
    error = lease_error(identity_sts.source(sts_endpoint_url=down, timeout_seconds=1.0))

    assert f"AWS STS at {down} is unreachable while exchanging the Vault identity token" in str(error)
    assert "another change path" in error.user_text()
    assert identity_sts.vault.secret_id not in full_text(error)
    assert error.__context__ is None
    assert live_tokens(openbao, identity_sts.vault.role_name) == []


class _StsRefusal(BaseHTTPRequestHandler):
    """Answers every request as STS refuses one: the documented query-API error document.

    https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html and the error list of
    https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
    moto never refuses this call, so this is the one place the refusal is played by a stand-in.
    """

    code = "AccessDenied"
    status = 403
    seen_tokens: list[str]

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self.seen_tokens.extend(re.findall(r"WebIdentityToken=([^&]+)", body))
        payload = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            f"<Code>{self.code}</Code><Message>refused by the stand-in</Message></Error>"
            "<RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ErrorResponse>"
        ).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def sts_refusing(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[str]]]:
    code, status = request.param
    seen: list[str] = []
    handler = type("Refusal", (_StsRefusal,), {"code": code, "status": status, "seen_tokens": seen})
    server = ThreadingHTTPServer((LOOPBACK, free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("sts_refusing", "says", "hint"),
    [
        (("AccessDenied", 403), "(AccessDenied)", "trust policy"),
        (("InvalidIdentityToken", 400), "(InvalidIdentityToken)", "IAM OIDC provider"),
    ],
    indirect=["sts_refusing"],
)
def test_sts_refusals_say_what_to_check_and_revoke_the_token(
    identity_sts: IdentitySts, openbao: OpenBaoServer, sts_refusing: tuple[str, list[str]], says: str, hint: str
) -> None:
    url, seen_tokens = sts_refusing
    error = lease_error(identity_sts.source(sts_endpoint_url=url))

    assert f"AWS STS at {url} refused to exchange the Vault identity token for role {identity_sts.aws.role_arn}" in str(
        error
    )
    assert says in str(error) and hint in error.user_text()
    assert "refused by the stand-in" not in full_text(error)  # AWS's own text is never relayed
    assert seen_tokens and all(token not in full_text(error) for token in seen_tokens)
    assert live_tokens(openbao, identity_sts.vault.role_name) == []


def test_secrets_never_show_in_repr(identity_sts: IdentitySts) -> None:
    source = identity_sts.source()
    lease = source.lease()
    try:
        assert isinstance(lease.credentials, AwsCredentials) and lease.credentials.session_token is not None
        shown = repr(lease) + str(lease.info) + repr(lease.credentials) + repr(source) + repr(identity_sts)
        for secret in (
            lease.credentials.secret_access_key.reveal(),
            lease.credentials.session_token.reveal(),
            identity_sts.vault.secret_id,
            lease._session.client.token,
        ):
            assert secret not in shown
        assert lease.info.lease_id in repr(lease)
    finally:
        lease.revoke()
