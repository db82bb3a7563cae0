"""Pure domain rules: state machine, plan digests, approval roster."""

from datetime import UTC, datetime

import pytest

from core.errors import IllegalTransition, InvalidInput
from core.models import (
    ChangeRequest,
    Plan,
    Principal,
    PrincipalSource,
    RecordEdit,
    RequestKind,
    RRsetChange,
    plan_from_dict,
    plan_to_dict,
    request_from_dict,
    request_to_dict,
)
from core.records import RecordType, RRset, normalize_value
from core.secrets import Secret
from core.states import RequestState, check_transition, is_terminal

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALICE, BOB, CAROL, MALLORY = (Principal(PrincipalSource.SLACK, u) for u in ("UALICE", "UBOB", "UCAROL", "UMALLORY"))
OLD = RRset.build("api.example.test", RecordType.A, 300, ["192.0.2.10"])
NEW = RRset.build("api.example.test", RecordType.A, 60, ["203.0.113.10"])


def _plan(after: RRset | None = NEW) -> Plan:
    return Plan("BG-TEST22", "example.test.", "rfc2136", (RRsetChange(OLD.name, RecordType.A, OLD, after),))


def _request() -> ChangeRequest:
    return ChangeRequest(
        "BG-TEST22",
        RequestKind.CHANGE,
        "example.test.",
        (RecordEdit(NEW.name, RecordType.A, NEW),),
        "INC-1",
        ALICE,
        NOW,
    )


def test_happy_path_transitions_are_legal() -> None:
    path = [
        RequestState.PENDING_APPROVAL,
        RequestState.APPROVED,
        RequestState.APPLYING,
        RequestState.VERIFYING,
        RequestState.VERIFIED,
    ]
    for current, new in zip(path, path[1:], strict=False):
        check_transition(current, new)
    assert is_terminal(RequestState.VERIFIED)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (RequestState.PENDING_APPROVAL, RequestState.APPLYING),
        (RequestState.DENIED, RequestState.APPROVED),
        (RequestState.VERIFIED, RequestState.APPLYING),
        (RequestState.APPROVED, RequestState.VERIFIED),
    ],
)
def test_illegal_transitions_are_refused(current: RequestState, new: RequestState) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(current, new)


def test_digest_changes_with_any_planned_value_and_survives_a_round_trip() -> None:
    plan = _plan()
    assert plan_from_dict(plan_to_dict(plan)).digest() == plan.digest()
    assert _plan(after=None).digest() != plan.digest()
    other = RRset.build("api.example.test", RecordType.A, 61, ["203.0.113.10"])
    assert _plan(after=other).digest() != plan.digest()


def test_request_round_trips() -> None:
    assert request_from_dict(request_to_dict(_request())) == _request()


def test_inverse_restores_what_was_there() -> None:
    (edit,) = _plan().inverse()
    assert edit.after == OLD


def test_secret_never_shows_in_repr_or_format() -> None:
    secret = Secret("canary-value-123")
    assert "canary" not in repr(secret) and "canary" not in f"{secret}" and "canary" not in str([secret])
    assert secret.reveal() == "canary-value-123"


def test_every_state_has_its_transitions_listed() -> None:
    from core.states import TRANSITIONS

    assert set(TRANSITIONS) == set(RequestState)


@pytest.mark.parametrize(
    ("rtype", "text"),
    [
        (RecordType.MX, "１0 mail.example.com"),
        (RecordType.SRV, "10 5 506➎0 svc.example.com"),
        (RecordType.MX, "70000 mx."),
    ],
)
def test_mx_and_srv_numbers_must_be_ascii_16_bit_numbers(rtype: RecordType, text: str) -> None:
    """Digits from other scripts pass str.isdigit(); they must be refused clearly, not crash int()."""
    with pytest.raises(InvalidInput, match="is not a valid"):
        normalize_value(rtype, text)
