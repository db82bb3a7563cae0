"""VaultAwsEngineSource against sandbox/vault_aws_stub.py: Vault's DOCUMENTED AWS-engine responses only.

OpenBao has no AWS secrets engine, so nothing here proves behaviour against a real HashiCorp Vault;
it proves that we call the documented endpoints, read the documented fields and map the errors.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator

import pytest

from core.credentials import AwsCredentials
from core.errors import CredentialError
from core.ports import CredentialSource, Lease
from core.secrets import Secret
from credentials.vault_aws import AwsEngineEndpoint, VaultAwsEngineSource, VaultAwsLease
from sandbox.vault_aws_stub import VaultAwsStub


@pytest.fixture
def stub() -> Iterator[VaultAwsStub]:
    with VaultAwsStub() as server:
        server.add_role("breakglass-dns", "assumed_role")
        server.add_role("breakglass-user", "iam_user")
        yield server


def source_for(stub: VaultAwsStub, **overrides: object) -> VaultAwsEngineSource:
    kwargs: dict[str, object] = {
        "address": stub.address,
        "role_id": Secret(stub.role_id),
        "secret_id": Secret(stub.secret_id),
        "aws_role": "breakglass-dns",
        "timeout_seconds": 2.0,
    }
    kwargs.update(overrides)
    return VaultAwsEngineSource("vault-aws", **kwargs)  # type: ignore[arg-type]


def full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + getattr(exc, "user_text", str)()


def lease_error(source: VaultAwsEngineSource) -> CredentialError:
    with pytest.raises(CredentialError) as caught:
        source.lease()
    return caught.value


def test_sts_lease_returns_the_documented_fields(stub: VaultAwsStub) -> None:
    source: CredentialSource = source_for(stub, region="eu-west-1")
    lease: Lease = source.lease()
    try:
        [issued] = stub.issued
        assert lease.credentials == AwsCredentials(
            access_key_id=issued.access_key,
            secret_access_key=Secret(issued.secret_key),
            session_token=Secret(issued.security_token or ""),
            region="eu-west-1",
        )
        assert issued.access_key.startswith("ASIA")
        assert lease.info.source == "vault-aws"
        assert lease.info.lease_id == issued.lease_id and issued.lease_id.startswith("aws/sts/breakglass-dns/")
        assert lease.info.ttl_seconds == issued.lease_duration == 900  # we ask for the STS minimum
        assert ("POST", "aws/sts/breakglass-dns") in stub.calls
    finally:
        lease.revoke()


def test_iam_user_lease_has_no_session_token(stub: VaultAwsStub) -> None:
    lease = source_for(stub, aws_role="breakglass-user", endpoint=AwsEngineEndpoint.CREDS).lease()
    try:
        assert isinstance(lease.credentials, AwsCredentials)
        assert lease.credentials.session_token is None
        assert lease.credentials.access_key_id.startswith("AKIA")
        assert lease.info.lease_id.startswith("aws/creds/breakglass-user/")
        assert ("GET", "aws/creds/breakglass-user") in stub.calls
    finally:
        lease.revoke()


def test_revoke_revokes_the_lease_then_the_token(stub: VaultAwsStub) -> None:
    lease = source_for(stub).lease()
    [accessor] = stub.live_accessors

    lease.revoke()

    assert stub.revoked_leases == [lease.info.lease_id]
    assert stub.revoked_tokens == [accessor]
    assert stub.calls[-2:] == [("PUT", "sys/leases/revoke"), ("POST", "auth/token/revoke-self")]
    lease.revoke()  # idempotent: nothing more is sent
    assert stub.calls[-2:] == [("PUT", "sys/leases/revoke"), ("POST", "auth/token/revoke-self")]


def test_refused_lease_revocation_still_revokes_the_token_and_says_so(stub: VaultAwsStub) -> None:
    lease = source_for(stub).lease()
    stub.fail("sys/leases/revoke", 403)

    with pytest.raises(CredentialError) as caught:
        lease.revoke()

    assert f"denied revoking lease {lease.info.lease_id} (permission denied)" in str(caught.value)
    assert "The Vault token that created it was revoked" in str(caught.value)
    assert "sys/leases/revoke" in caught.value.user_text()
    assert stub.live_accessors == [] and len(stub.revoked_tokens) == 1


@pytest.mark.parametrize("wrong", ["role_id", "secret_id"])
def test_wrong_approle_credentials_are_refused_without_echoing_them(stub: VaultAwsStub, wrong: str) -> None:
    bogus = "bogus-" + "z" * 24
    error = lease_error(source_for(stub, **{wrong: Secret(bogus)}))

    assert f"Vault at {stub.address} refused the AppRole login: invalid role_id or secret_id" in str(error)
    assert all(value not in full_text(error) for value in (bogus, stub.secret_id, stub.role_id))
    assert error.__context__ is None
    assert stub.issued == []


def test_permission_denied_on_the_engine_names_the_path_and_revokes_the_token(stub: VaultAwsStub) -> None:
    stub.fail("aws/sts", 403)
    error = lease_error(source_for(stub))

    assert "denied the break-glass role reading aws/sts/breakglass-dns (permission denied)" in str(error)
    assert "grant `update` on aws/sts/breakglass-dns" in error.user_text()
    assert stub.live_accessors == [] and len(stub.revoked_tokens) == 1


def test_engine_server_error_is_mapped_and_the_token_revoked(stub: VaultAwsStub) -> None:
    stub.fail("aws/sts", 500)
    error = lease_error(source_for(stub))

    assert f"Vault at {stub.address} failed to read aws/sts/breakglass-dns (HTTP 500)" in str(error)
    assert "internal error" not in full_text(error)  # Vault's own text is never relayed
    assert stub.live_accessors == []


def test_unknown_role_or_wrong_endpoint_says_what_to_check(stub: VaultAwsStub) -> None:
    for source in (source_for(stub, aws_role="nope"), source_for(stub, aws_role="breakglass-user")):
        error = lease_error(source)
        assert "AWS secrets engine" in str(error) and "refused to issue credentials" in str(error)
        assert "credential_type" in error.user_text()
    assert stub.live_accessors == []


@pytest.mark.parametrize(
    ("omitted", "says"),
    [
        ("security_token", "(no security_token)"),
        ("secret_key", "(no access_key/secret_key)"),
        ("lease_id", "no lease_id"),
    ],
)
def test_an_answer_missing_a_documented_field_is_refused_and_the_token_revoked(
    stub: VaultAwsStub, omitted: str, says: str
) -> None:
    stub.omit(omitted)
    error = lease_error(source_for(stub))

    assert f"Vault at {stub.address} answered aws/sts/breakglass-dns without usable AWS credentials" in str(error)
    assert says in str(error)
    [issued] = stub.issued
    assert issued.secret_key not in full_text(error) and (issued.security_token or "-") not in full_text(error)
    assert stub.live_accessors == []


def test_sealed_vault_says_so(stub: VaultAwsStub) -> None:
    stub.fail("auth/approle/login", 503)
    error = lease_error(source_for(stub))
    assert "is sealed or unavailable (HTTP 503)" in str(error)


def test_stopped_stub_is_unreachable_for_lease_and_revoke(stub: VaultAwsStub) -> None:
    lease = source_for(stub).lease()
    address = stub.address
    stub.stop()

    with pytest.raises(CredentialError) as revoke_failed:
        lease.revoke()
    assert f"Vault at {address} is unreachable while trying to revoke lease {lease.info.lease_id}" in str(
        revoke_failed.value
    )
    assert "revoke token" in str(revoke_failed.value)
    error = lease_error(
        VaultAwsEngineSource(
            "x",
            address=address,
            role_id=Secret("r"),
            secret_id=Secret("s"),
            aws_role="breakglass-dns",
            timeout_seconds=1.0,
        )
    )
    assert f"Vault at {address} is unreachable" in str(error)


def test_secrets_never_show_in_repr(stub: VaultAwsStub) -> None:
    source = source_for(stub)
    lease = source.lease()
    assert isinstance(lease, VaultAwsLease)
    [issued] = stub.issued
    shown = repr(lease) + str(lease.info) + repr(lease.credentials) + repr(source) + repr(issued)
    for secret in (issued.secret_key, issued.security_token or "", stub.secret_id, lease._session.client.token):
        assert secret not in shown
    lease.revoke()
