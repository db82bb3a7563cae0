"""Out-of-band approvals signed with an approver's SSH key, for when Slack is down."""

import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from approvals.matching import check_request
from approvals.policy import Policy, load_policy
from approvals.signing import SigningKey, generate_signing_key
from approvals.statements import (
    Decision,
    SignedStatement,
    Statement,
    private_key_fingerprint,
    sign_statement,
    verify_statement,
)
from core.errors import ApprovalRefused, InvalidInput, RefusalReason
from core.models import Approval, ChangeRequest, Principal, PrincipalSource, RecordEdit, RequestKind
from core.records import RecordType, RRset

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DIGEST = "3f" * 32
REQUEST_ID = "BG-7QK2MD"
MAX_AGE = timedelta(minutes=30)


def _openssh(private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> tuple[bytes, str]:
    key = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return key, public.decode()


ALICE, BOB, MALLORY = generate_signing_key(), generate_signing_key(), generate_signing_key()
CAROL_EC = _openssh(ec.generate_private_key(ec.SECP256R1()))
DAVE_RSA = _openssh(rsa.generate_private_key(public_exponent=65537, key_size=2048))

POLICY: Policy = load_policy(
    f"""
version: 1
people:
  - {{name: alice, slack: UALICE, keys: ["{ALICE.public_openssh}"]}}
  - {{name: bob, slack: UBOB, keys: ["{BOB.public_openssh} bob@laptop"]}}
  - {{name: carol, slack: UCAROL, keys: ["{CAROL_EC[1]}"]}}
  - {{name: dave, slack: UDAVE, keys: ["{DAVE_RSA[1]}"]}}
groups:
  sre: [alice, bob, carol, dave]
rules:
  - name: web
    zone: example.com
    requesters: [sre]
    approvals: {{count: 2, approvers: [sre]}}
""",
    source="statements-policy.yaml",
)


def statement(key: SigningKey = BOB, signer: str = "bob", **changes: Any) -> Statement:
    base = Statement(REQUEST_ID, DIGEST, Decision.APPROVE, NOW - timedelta(minutes=1), signer, key.key_id)
    return replace(base, **changes)


def verify(signed: SignedStatement, *, request_id: str = REQUEST_ID, now: datetime = NOW) -> Principal:
    return verify_statement(signed, POLICY, request_id=request_id, plan_digest=DIGEST, now=now, max_age=MAX_AGE)


def refused(signed: SignedStatement, **kwargs: object) -> ApprovalRefused:
    with pytest.raises(ApprovalRefused) as caught:
        verify(signed, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_a_signed_statement_survives_copy_paste_and_names_the_person() -> None:
    signed = sign_statement(statement(), BOB.private_openssh)
    text = signed.to_text()
    assert text.startswith("-----BEGIN BREAKGLASS APPROVAL-----\nRequest: BG-7QK2MD\nDecision: approve\n")
    pasted = "here you go:\r\n" + "".join(f"> >   {line}\r\n" for line in text.splitlines()) + "thanks\n"
    parsed = SignedStatement.from_text(pasted)
    assert parsed == signed
    assert verify(parsed) == Principal(PrincipalSource.KEY, "bob")


def test_a_deny_statement_is_verified_the_same_way() -> None:
    signed = sign_statement(statement(decision=Decision.DENY), BOB.private_openssh)
    parsed = SignedStatement.from_text(signed.to_text())
    assert verify(parsed) == Principal(PrincipalSource.KEY, "bob") and parsed.statement.decision is Decision.DENY


@pytest.mark.parametrize(("name", "key"), [("carol", CAROL_EC[0]), ("dave", DAVE_RSA[0])])
def test_ecdsa_and_rsa_keys_can_sign_too(name: str, key: bytes) -> None:
    signed = sign_statement(statement(signer=name, key_fingerprint=private_key_fingerprint(key)), key)
    assert verify(SignedStatement.from_text(signed.to_text())) == Principal(PrincipalSource.KEY, name)


def test_a_key_not_in_the_policy_is_refused() -> None:
    signed = sign_statement(statement(MALLORY, "bob"), MALLORY.private_openssh)
    error = refused(signed)
    assert error.reason is RefusalReason.UNKNOWN_KEY
    assert f"signed with key {MALLORY.key_id}, which is not pinned to anyone in the policy" in error.message


def test_signing_as_someone_else_is_refused() -> None:
    signed = sign_statement(statement(BOB, "alice"), BOB.private_openssh)
    error = refused(signed)
    assert error.reason is RefusalReason.UNKNOWN_KEY
    assert "belongs to bob, but the statement is signed as alice" in error.message


def test_an_altered_statement_has_a_bad_signature() -> None:
    text = sign_statement(statement(decision=Decision.DENY), BOB.private_openssh).to_text()
    altered = SignedStatement.from_text(text.replace("Decision: deny", "Decision: approve"))
    assert refused(altered).reason is RefusalReason.BAD_SIGNATURE
    later = SignedStatement.from_text(text.replace("T11:59:00Z", "T11:59:30Z"))
    assert refused(later).reason is RefusalReason.BAD_SIGNATURE


def test_a_statement_for_another_request_cannot_be_replayed() -> None:
    signed = sign_statement(statement(), BOB.private_openssh)
    error = refused(signed, request_id="BG-OTHER9")
    assert error.reason is RefusalReason.WRONG_REQUEST
    assert error.message == "The statement is for request BG-7QK2MD, not BG-OTHER9."


def test_a_statement_for_an_older_plan_is_stale() -> None:
    signed = sign_statement(statement(plan_digest="00" * 32), BOB.private_openssh)
    error = refused(signed)
    assert error.reason is RefusalReason.STALE_PLAN
    assert "but BG-7QK2MD's plan is now 3f3f3f3f3f3f..." in error.message


def test_old_and_future_statements_are_refused() -> None:
    old = sign_statement(statement(at=NOW - MAX_AGE - timedelta(seconds=1)), BOB.private_openssh)
    assert refused(old).reason is RefusalReason.STATEMENT_EXPIRED
    assert "more than 30 minutes ago" in refused(old).message
    future = sign_statement(statement(at=NOW + timedelta(minutes=6)), BOB.private_openssh)
    assert refused(future).reason is RefusalReason.STATEMENT_EXPIRED
    assert "in the future" in refused(future).message
    slightly_fast_clock = sign_statement(statement(at=NOW + timedelta(minutes=4)), BOB.private_openssh)
    assert verify(slightly_fast_clock).id == "bob"
    just_in_time = sign_statement(statement(at=NOW - MAX_AGE), BOB.private_openssh)
    assert verify(just_in_time).id == "bob"


def test_the_same_person_by_slack_and_by_key_counts_once() -> None:
    edit = RecordEdit("www.example.com.", RecordType.A, RRset.build("www.example.com", RecordType.A, 60, ["192.0.2.1"]))
    requester = Principal(PrincipalSource.SLACK, "UALICE")
    request = ChangeRequest(REQUEST_ID, RequestKind.CHANGE, "example.com.", (edit,), "INC-1", requester, NOW)
    requirement = check_request(POLICY, request, requester)
    by_slack = Approval(REQUEST_ID, Principal(PrincipalSource.SLACK, "UBOB"), DIGEST, NOW)
    by_key = verify(sign_statement(statement(), BOB.private_openssh))
    with pytest.raises(ApprovalRefused) as caught:
        requirement.check_approver(request, by_key, [by_slack])
    assert caught.value.reason is RefusalReason.ALREADY_APPROVED
    assert not requirement.satisfied([by_slack, Approval(REQUEST_ID, by_key, DIGEST, NOW)])
    carol = verify(
        sign_statement(statement(signer="carol", key_fingerprint=private_key_fingerprint(CAROL_EC[0])), CAROL_EC[0])
    )
    requirement.check_approver(request, carol, [by_slack])
    assert requirement.satisfied([by_slack, Approval(REQUEST_ID, carol, DIGEST, NOW)])


def test_the_requester_cannot_approve_out_of_band_either() -> None:
    edit = RecordEdit("www.example.com.", RecordType.A, RRset.build("www.example.com", RecordType.A, 60, ["192.0.2.1"]))
    requester = Principal(PrincipalSource.SLACK, "UBOB")
    request = ChangeRequest(REQUEST_ID, RequestKind.CHANGE, "example.com.", (edit,), "INC-1", requester, NOW)
    requirement = check_request(POLICY, request, requester)
    by_key = verify(sign_statement(statement(), BOB.private_openssh))
    with pytest.raises(ApprovalRefused) as caught:
        requirement.check_approver(request, by_key, [])
    assert caught.value.reason is RefusalReason.SELF_APPROVAL


def test_an_ssh_keygen_key_with_a_passphrase_signs(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pw", "-f", str(key_file)], check=True)
    fingerprint = private_key_fingerprint(key_file.read_bytes(), b"pw")
    laptop_policy = load_policy(
        f"""
version: 1
people: [{{name: erin, slack: UERIN, keys: ["{(tmp_path / "id_ed25519.pub").read_text().strip()}"]}}]
groups: {{sec: [erin]}}
rules: [{{name: r, zone: example.com, requesters: [sec], approvals: {{count: 1, approvers: [sec]}}}}]
""",
        source="laptop.yaml",
    )
    signed = sign_statement(statement(signer="erin", key_fingerprint=fingerprint), key_file.read_bytes(), b"pw")
    principal = verify_statement(
        SignedStatement.from_text(signed.to_text()),
        laptop_policy,
        request_id=REQUEST_ID,
        plan_digest=DIGEST,
        now=NOW,
        max_age=MAX_AGE,
    )
    assert principal == Principal(PrincipalSource.KEY, "erin")
    with pytest.raises(InvalidInput, match="wrong or missing passphrase"):
        sign_statement(statement(signer="erin", key_fingerprint=fingerprint), key_file.read_bytes(), b"nope")


def test_signing_with_a_key_other_than_the_named_one_is_refused() -> None:
    with pytest.raises(InvalidInput, match="names key .* but is being signed with key"):
        sign_statement(statement(BOB), ALICE.private_openssh)


@pytest.mark.parametrize(
    ("mangle", "expected"),
    [
        (lambda t: t.replace("-----END BREAKGLASS APPROVAL-----", ""), "No breakglass approval block found"),
        (lambda t: t.replace("Signer: bob\n", ""), "lacks Signer"),
        (lambda t: t.replace("Decision: approve", "Decision: maybe"), "damaged"),
        (lambda t: t.replace("Request: BG-7QK2MD", "Request: BG 7QK2MD"), "is not a request id"),
        (lambda t: t.replace("Key: ", "Comment: hi\nKey: "), "Unexpected line"),
        (lambda t: t.replace("Time: ", "Time: 1"), "damaged"),
    ],
)
def test_a_damaged_block_says_what_is_wrong(mangle: object, expected: str) -> None:
    assert callable(mangle)
    text = sign_statement(statement(), BOB.private_openssh).to_text()
    with pytest.raises(InvalidInput, match=expected):
        SignedStatement.from_text(mangle(text))


def test_statements_need_an_aware_time() -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        statement(at=datetime(2026, 1, 1, 12, 0))  # noqa: DTZ001
