"""SealedEnvelopeSource: envelopes on disk, keys supplied at break-glass time, every way opening can fail."""

from __future__ import annotations

import base64
import json
import traceback
from pathlib import Path

import pytest

from core.credentials import ApiKey, AwsCredentials, Credentials, TsigAlgorithm, TsigKey
from core.errors import CredentialError
from core.ports import CredentialSource, Lease
from core.secrets import Secret
from credentials.sealed import SealedEnvelopeSource, SealedKind, generate_key, key_id, key_to_text, seal

TSIG_SECRET = base64.b64encode(b"tsig-secret-that-must-stay-inside-32b").decode()
TSIG = TsigKey("bg-key.example.com.", TsigAlgorithm.HMAC_SHA256, Secret(TSIG_SECRET))
API = ApiKey(Secret("pdns-api-key-0123456789abcdef"))
AWS = AwsCredentials("AKIAEXAMPLE0000000001", Secret("aws/secret+access+key/0123456789abcdefghij"), None, "eu-west-1")
NAME = "example.com/rfc2136"


def full_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + getattr(exc, "user_text", str)()


def secret_values(credentials: Credentials) -> list[str]:
    if isinstance(credentials, TsigKey):
        return [credentials.secret.reveal()]
    if isinstance(credentials, ApiKey):
        return [credentials.secret.reveal()]
    return [credentials.secret_access_key.reveal()]


def write_envelope(tmp_path: Path, credentials: Credentials, key: bytes, name: str = NAME) -> Path:
    path = tmp_path / "envelope.json"
    path.write_bytes(seal(credentials, name, key))
    return path


def write_key(tmp_path: Path, key: bytes) -> Path:
    path = tmp_path / "key.txt"
    path.write_text(key_to_text(key) + "\n")
    return path


def lease_error(source: SealedEnvelopeSource) -> CredentialError:
    with pytest.raises(CredentialError) as caught:
        source.lease()
    return caught.value


@pytest.mark.parametrize("credentials", [TSIG, API, AWS], ids=["tsig", "api_key", "aws"])
def test_round_trip_gives_back_the_credentials_and_says_rotate(tmp_path: Path, credentials: Credentials) -> None:
    key = generate_key()
    envelope = write_envelope(tmp_path, credentials, key)
    source: CredentialSource = SealedEnvelopeSource(
        "sealed:example.com", envelope_path=envelope, envelope_name=NAME, key_file=write_key(tmp_path, key)
    )

    lease: Lease = source.lease()

    assert lease.credentials == credentials
    envelope_id = json.loads(envelope.read_text())["id"]
    assert lease.info.lease_id == f"sealed:{NAME}:{envelope_id}"
    assert lease.info.source == "sealed:example.com"
    assert lease.info.ttl_seconds == 0 and lease.info.must_rotate
    lease.revoke()  # nothing to revoke, and no error
    assert lease.credentials == credentials


def test_the_file_holds_no_plaintext_and_the_documented_fields(tmp_path: Path) -> None:
    key = generate_key()
    for credentials in (TSIG, API, AWS):
        raw = write_envelope(tmp_path, credentials, key).read_bytes()
        for value in secret_values(credentials):
            assert value.encode() not in raw
            assert base64.b64encode(value.encode()) not in raw
        assert key not in raw and key_to_text(key).encode() not in raw
        envelope = json.loads(raw)
        assert set(envelope) == {"version", "name", "kind", "id", "created_at", "key_id", "nonce", "ciphertext"}
        assert len(base64.b64decode(envelope["nonce"])) == 12
    assert json.loads(raw)["kind"] == "aws"


def test_each_seal_uses_a_fresh_nonce(tmp_path: Path) -> None:
    key = generate_key()
    first, second = json.loads(seal(API, NAME, key)), json.loads(seal(API, NAME, key))
    assert first["nonce"] != second["nonce"] and first["ciphertext"] != second["ciphertext"]


def test_key_from_an_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_key()
    monkeypatch.setenv("BREAKGLASS_SEALED_KEY", key_to_text(key))
    source = SealedEnvelopeSource(
        "sealed", envelope_path=write_envelope(tmp_path, TSIG, key), envelope_name=NAME, key_env="BREAKGLASS_SEALED_KEY"
    )
    assert source.lease().credentials == TSIG


def test_wrong_key_is_named_as_such_without_showing_either_key(tmp_path: Path) -> None:
    right, wrong = generate_key(), generate_key()
    source = SealedEnvelopeSource(
        "sealed",
        envelope_path=write_envelope(tmp_path, TSIG, right),
        envelope_name=NAME,
        key_file=write_key(tmp_path, wrong),
    )
    error = lease_error(source)

    assert "was sealed with another key" in str(error)
    assert key_id(right) in str(error) and key_id(wrong) in str(error)
    shown = full_text(error)
    assert key_to_text(right) not in shown and key_to_text(wrong) not in shown and TSIG_SECRET not in shown


def test_tampered_ciphertext_is_refused(tmp_path: Path) -> None:
    key = generate_key()
    path = write_envelope(tmp_path, TSIG, key)
    envelope = json.loads(path.read_text())
    ciphertext = bytearray(base64.b64decode(envelope["ciphertext"]))
    ciphertext[3] ^= 0x01
    envelope["ciphertext"] = base64.b64encode(bytes(ciphertext)).decode()
    path.write_text(json.dumps(envelope))

    error = lease_error(
        SealedEnvelopeSource("sealed", envelope_path=path, envelope_name=NAME, key_file=write_key(tmp_path, key))
    )
    assert "has been altered" in str(error)
    assert "offline copy" in error.user_text()
    assert error.__context__ is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "example.org/rfc2136"), ("created_at", "2030-01-01T00:00:00+00:00"), ("kind", "api_key")],
)
def test_tampered_header_fails_authentication(tmp_path: Path, field: str, value: str) -> None:
    """E.g. an envelope for another zone renamed to pass as this one: the associated data no longer matches."""
    key = generate_key()
    path = write_envelope(tmp_path, TSIG, key)
    envelope = json.loads(path.read_text())
    envelope[field] = value
    path.write_text(json.dumps(envelope))
    expected_name = envelope["name"]

    error = lease_error(
        SealedEnvelopeSource(
            "sealed", envelope_path=path, envelope_name=expected_name, key_file=write_key(tmp_path, key)
        )
    )
    assert "has been altered" in str(error)
    assert TSIG_SECRET not in full_text(error)


def test_an_envelope_for_another_name_is_refused_before_decrypting(tmp_path: Path) -> None:
    key = generate_key()
    path = write_envelope(tmp_path, TSIG, key, name="example.org/rfc2136")
    error = lease_error(
        SealedEnvelopeSource("sealed", envelope_path=path, envelope_name=NAME, key_file=write_key(tmp_path, key))
    )
    assert f"is for 'example.org/rfc2136', not {NAME!r}" in str(error)


def test_the_wrong_kind_for_the_path_is_refused(tmp_path: Path) -> None:
    key = generate_key()
    source = SealedEnvelopeSource(
        "sealed",
        envelope_path=write_envelope(tmp_path, API, key),
        envelope_name=NAME,
        key_file=write_key(tmp_path, key),
        kind=SealedKind.TSIG,
    )
    assert "holds api_key credentials, not tsig" in str(lease_error(source))


def test_missing_key_file_says_to_mount_the_key_medium(tmp_path: Path) -> None:
    key = generate_key()
    missing = tmp_path / "media" / "breakglass.key"
    error = lease_error(
        SealedEnvelopeSource(
            "sealed", envelope_path=write_envelope(tmp_path, TSIG, key), envelope_name=NAME, key_file=missing
        )
    )
    assert f"The sealed-envelope key file {missing} does not exist." == str(error)
    assert "Mount the break-glass key medium" in error.user_text()
    assert error.__context__ is None


def test_unset_key_variable_says_who_must_paste_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BREAKGLASS_SEALED_KEY", raising=False)
    source = SealedEnvelopeSource(
        "sealed",
        envelope_path=write_envelope(tmp_path, TSIG, generate_key()),
        envelope_name=NAME,
        key_env="BREAKGLASS_SEALED_KEY",
    )
    error = lease_error(source)
    assert "environment variable BREAKGLASS_SEALED_KEY is empty or missing" in str(error)
    assert "paste the key" in error.user_text()


def test_malformed_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    key_path = tmp_path / "key.txt"
    key_path.write_text("c2hvcnQta2V5")  # base64, but 9 bytes
    source = SealedEnvelopeSource(
        "sealed", envelope_path=write_envelope(tmp_path, TSIG, generate_key()), envelope_name=NAME, key_file=key_path
    )
    error = lease_error(source)
    assert "is not a 256-bit key in base64 (9 bytes instead of 32)" in str(error)
    assert "c2hvcnQta2V5" not in full_text(error)


def test_missing_or_damaged_envelope_is_a_clear_error(tmp_path: Path) -> None:
    key_file = write_key(tmp_path, generate_key())
    missing = tmp_path / "nope.json"
    error = lease_error(SealedEnvelopeSource("s", envelope_path=missing, envelope_name=NAME, key_file=key_file))
    assert f"The sealed envelope {missing} does not exist." == str(error)

    damaged = tmp_path / "damaged.json"
    damaged.write_text("{not json")
    error = lease_error(SealedEnvelopeSource("s", envelope_path=damaged, envelope_name=NAME, key_file=key_file))
    assert "is not a usable sealed envelope" in str(error)
    assert error.__context__ is None


def test_repr_names_where_the_key_comes_from_never_the_key(tmp_path: Path) -> None:
    key = generate_key()
    key_file = write_key(tmp_path, key)
    source = SealedEnvelopeSource(
        "sealed", envelope_path=write_envelope(tmp_path, TSIG, key), envelope_name=NAME, key_file=key_file
    )
    lease = source.lease()
    shown = repr(source) + repr(lease) + repr(lease.credentials) + str(lease.info)
    assert str(key_file) in repr(source)
    assert key_to_text(key) not in shown and TSIG_SECRET not in shown


def test_exactly_one_key_location_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of key_file and key_env"):
        SealedEnvelopeSource("s", envelope_path=tmp_path / "e.json", envelope_name=NAME)
    with pytest.raises(ValueError, match="exactly one of key_file and key_env"):
        SealedEnvelopeSource("s", envelope_path=tmp_path / "e.json", envelope_name=NAME, key_file="k", key_env="K")
