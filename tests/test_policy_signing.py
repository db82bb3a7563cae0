"""Detached policy signatures: the bot serves only a policy signed by a trusted key, byte for byte."""

import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from approvals.signing import (
    PolicySignatureError,
    VerificationStatus,
    generate_signing_key,
    load_verified_policy,
    sign_policy,
    verify_policy,
)
from core.errors import InvalidInput

EXAMPLE = (Path(__file__).resolve().parents[1] / "docs" / "examples" / "policy.yaml").read_bytes()
OWNER = generate_signing_key()
OTHER = generate_signing_key()


def status(policy: bytes, signature: bytes | None, trusted: list[str] | None = None) -> VerificationStatus:
    return verify_policy(policy, signature, [OWNER.public_openssh] if trusted is None else trusted).status


def test_a_signed_policy_verifies_and_loads() -> None:
    signature = sign_policy(EXAMPLE, OWNER.private_openssh)
    verification = verify_policy(EXAMPLE, signature, [OTHER.public_openssh, OWNER.public_openssh])
    assert verification.ok and verification.key_id == OWNER.key_id
    assert verification.message == f"the policy is signed by trusted key {OWNER.key_id}."
    policy = load_verified_policy(EXAMPLE, signature, [OWNER.public_openssh], source="policy.yaml")
    assert len(policy.rules) == 5
    document = json.loads(signature)
    assert document["format"] == "breakglass-policy-signature-v1" and document["key_id"] == OWNER.key_id


@pytest.mark.parametrize("signature", [None, b"", b"  \n"])
def test_an_unsigned_policy_is_refused(signature: bytes | None) -> None:
    assert status(EXAMPLE, signature) is VerificationStatus.UNSIGNED
    with pytest.raises(PolicySignatureError) as caught:
        load_verified_policy(EXAMPLE, signature, [OWNER.public_openssh], source="policy.yaml")
    assert caught.value.message == "Refusing the approval policy: the policy file is not signed."


def test_any_change_to_the_bytes_is_a_modified_policy() -> None:
    signature = sign_policy(EXAMPLE, OWNER.private_openssh)
    loosened = EXAMPLE.replace(b"count: 2 ", b"count: 1 ", 1)
    assert loosened != EXAMPLE
    verification = verify_policy(loosened, signature, [OWNER.public_openssh])
    assert verification.status is VerificationStatus.MODIFIED
    assert "the policy file was modified after it was signed" in verification.message
    assert status(EXAMPLE + b"\n", signature) is VerificationStatus.MODIFIED  # even an equivalent YAML


def test_a_tampered_signature_is_a_bad_signature() -> None:
    document = json.loads(sign_policy(EXAMPLE, OWNER.private_openssh))
    document["signature"] = json.loads(sign_policy(b"other", OWNER.private_openssh))["signature"]
    assert status(EXAMPLE, json.dumps(document).encode()) is VerificationStatus.BAD_SIGNATURE


@pytest.mark.parametrize("junk", [b"not json", b"[]", b'{"format": "something-else"}', b'{"format": 1}'])
def test_an_unreadable_signature_file_is_a_bad_signature(junk: bytes) -> None:
    assert status(EXAMPLE, junk) is VerificationStatus.BAD_SIGNATURE


def test_a_signature_by_an_untrusted_key_is_refused() -> None:
    signature = sign_policy(EXAMPLE, OTHER.private_openssh)
    verification = verify_policy(EXAMPLE, signature, [OWNER.public_openssh])
    assert verification.status is VerificationStatus.UNTRUSTED_KEY
    assert f"signed by key {OTHER.key_id}, which is not a trusted policy key" in verification.message
    assert status(EXAMPLE, signature, trusted=[]) is VerificationStatus.UNTRUSTED_KEY


def test_a_key_id_swapped_to_a_trusted_key_does_not_help() -> None:
    document = json.loads(sign_policy(EXAMPLE, OTHER.private_openssh))
    document["key_id"] = OWNER.key_id
    assert status(EXAMPLE, json.dumps(document).encode()) is VerificationStatus.BAD_SIGNATURE


def test_keys_made_with_ssh_keygen_sign_and_their_fingerprint_is_the_key_id(tmp_path: Path) -> None:
    key_file = tmp_path / "policy_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "s3cret", "-C", "policy", "-f", str(key_file)], check=True
    )
    fingerprint = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(key_file) + ".pub"], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    signature = sign_policy(EXAMPLE, key_file.read_bytes(), passphrase=b"s3cret")
    verification = verify_policy(EXAMPLE, signature, [(tmp_path / "policy_key.pub").read_text()])
    assert verification.ok and verification.key_id == fingerprint
    with pytest.raises(InvalidInput, match="cannot be read"):
        sign_policy(EXAMPLE, key_file.read_bytes(), passphrase=b"wrong")


def test_pem_keys_work_and_only_ed25519_signs_policies() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verify_policy(EXAMPLE, sign_policy(EXAMPLE, pem), [public_pem.decode()]).ok
    ecdsa = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidInput, match="must be Ed25519"):
        sign_policy(EXAMPLE, ecdsa)


def test_a_valid_signature_does_not_make_a_broken_policy_loadable() -> None:
    broken = b"version: 1\npeople: []\n"
    signature = sign_policy(broken, OWNER.private_openssh)
    with pytest.raises(InvalidInput, match="Policy policy.yaml is invalid"):
        load_verified_policy(broken, signature, [OWNER.public_openssh], source="policy.yaml")
