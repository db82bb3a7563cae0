"""The approval policy: loading (with readable errors), rule matching, requirements, emergencies, warnings."""

import contextlib
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvals.explain import explain
from approvals.matching import Requirement, check_request
from approvals.policy import Policy, PolicyError, Safety, load_policy
from approvals.signing import generate_signing_key
from core.errors import ApprovalRefused, InvalidInput, RefusalReason, SafetyRefused
from core.models import Approval, ChangeRequest, Principal, PrincipalSource, RecordEdit, RequestKind
from core.records import RecordType, RRset

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "policy.yaml"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DIGEST = "ab" * 32
KEYS = {name: generate_signing_key().public_openssh for name in ("alice", "bob", "carol", "dave", "erin", "frank")}


def slack(user: str) -> Principal:
    return Principal(PrincipalSource.SLACK, user)


def key(name: str) -> Principal:
    return Principal(PrincipalSource.KEY, name)


ALICE, BOB, CAROL, DAVE, ERIN, FRANK = (slack(u) for u in ("UALICE", "UBOB", "UCAROL", "UDAVE", "UERIN", "UFRANK"))
STRANGER = slack("USTRANGER")

PEOPLE = f"""
version: 1
people:
  - {{name: alice, slack: UALICE, keys: ["{KEYS["alice"]} alice@laptop"]}}
  - {{name: bob, slack: UBOB, keys: ["{KEYS["bob"]}"]}}
  - {{name: carol, slack: UCAROL, keys: ["{KEYS["carol"]}"]}}
  - {{name: dave, slack: UDAVE, keys: ["{KEYS["dave"]}"]}}
  - {{name: erin, slack: UERIN, keys: ["{KEYS["erin"]}"]}}
  - {{name: frank, slack: UFRANK, keys: ["{KEYS["frank"]}"]}}
groups:
  sre: [alice, bob, carol]
  security: [dave, erin]
  netops: [frank]
"""

RULES = """
rules:
  - name: web
    zone: example.com
    names: ["@", www.example.com, "*.web.example.com"]
    types: [A, AAAA, CNAME]
    requesters: [sre]
    approvals: {count: 2, approvers: [sre, security], must_include: [security], rollback_count: 1, drill_count: 1}
    targets: {networks: [203.0.113.0/24, "2001:db8:10::/48"], hosts: ["*.lb.example.com"]}
    ttl: {min: 30, max: 3600}
    expires_after: 30m
    ticket: "INC-[0-9]+"
    emergency: {allowed: true, groups: [sre]}
  - name: mail
    zone: example.com
    names: ["@"]
    types: [MX]
    requesters: [sre, netops]
    approvals: {count: 3, approvers: [sre, netops]}
    targets: {hosts: ["*.mail.example.com"]}
    expires_after: 10m
  - name: catch-all
    zone: example.com
    names: ["*"]
    types: [TXT]
    requesters: [sre, security, netops]
    approvals: {count: 1, approvers: [sre, security, netops]}
    require_reason: false
"""


def policy(rules: str = RULES, people: str = PEOPLE) -> Policy:
    return load_policy(people + rules, source="test-policy.yaml")


def rrset(name: str, rtype: RecordType, values: list[str], ttl: int = 60) -> RRset:
    return RRset.build(name, rtype, ttl, values)


def request(
    *edits: RecordEdit,
    requester: Principal = ALICE,
    reason: str = "INC-42 fail over",
    kind: RequestKind = RequestKind.CHANGE,
    request_id: str = "BG-TEST22",
) -> ChangeRequest:
    return ChangeRequest(request_id, kind, "example.com.", tuple(edits), reason, requester, NOW)


def set_(name: str, rtype: RecordType, *values: str, ttl: int = 60) -> RecordEdit:
    return RecordEdit(name if name.endswith(".") else name + ".", rtype, rrset(name, rtype, list(values), ttl))


WWW = set_("www.example.com", RecordType.A, "203.0.113.10")


def approval(who: Principal, request_id: str = "BG-TEST22") -> Approval:
    return Approval(request_id, who, DIGEST, NOW)


def refusal(call: object) -> RefusalReason:
    assert callable(call)
    with pytest.raises(ApprovalRefused) as caught:
        call()
    return caught.value.reason


# --- loading ---------------------------------------------------------------------------------


def test_the_documented_example_loads_and_passes_its_own_check() -> None:
    example = load_policy(EXAMPLE.read_bytes(), source=str(EXAMPLE))
    assert [r.name for r in example.rules] == ["web-failover", "web-pool-failover", "acme-challenge", "mail", "drills"]
    assert example.safety == Safety(Fraction(3, 10), 10)
    assert [example.max_change_fraction(r) for r in example.rules[:2]] == [Fraction(3, 10), Fraction(1)]
    report = explain(example)
    assert report.warnings == ()
    web = report.rules[0]
    assert web.requesters == ("alice", "bob", "carol") and web.count == 2 and web.must_include == ("security",)
    assert "emergency self-approval: alice, bob, carol" in report.to_text()


def test_the_policy_page_shows_the_example_and_its_check_unchanged() -> None:
    page = (EXAMPLE.parents[1] / "policy.md").read_text()
    assert "```yaml\n" + EXAMPLE.read_text() + "```" in page
    report = explain(load_policy(EXAMPLE.read_bytes(), source="policy.yaml")).to_text().splitlines()
    assert "\n".join(report[1:6]) in page


def problems_of(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        load_policy(text, source="bad.yaml")
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.message.startswith("Policy bad.yaml is invalid: ")
    return caught.value.message


def test_a_misspelled_key_is_named_with_its_path() -> None:
    message = problems_of(PEOPLE + RULES.replace("approvals: {count: 3", "aprovals: {count: 3"))
    assert "rules[1] (mail).aprovals: unknown key" in message
    assert "rules[1] (mail).approvals: required key is missing" in message


def test_wrong_types_are_not_coerced() -> None:
    message = problems_of(PEOPLE.replace("slack: UBOB", "slack: 12345") + RULES.replace("count: 1,", 'count: "1",'))
    assert "people[1] (bob).slack: must be text" in message
    assert "rules[2] (catch-all).approvals.count: must be a whole number (without quotes)" in message


def test_unknown_groups_and_people_are_errors_not_guesses() -> None:
    message = problems_of(
        PEOPLE.replace("netops: [frank]", "netops: [frank, mallory]")
        + RULES.replace("must_include: [security]", "must_include: [securty]")
    )
    assert "groups.netops[1]: `mallory` is not in `people`" in message
    assert (
        "rules[0] (web).approvals.must_include[0]: unknown group `securty` (known groups: netops, security, sre)"
        in (message)
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("203.0.113.0/24", "203.0.113.1/24", "rules[0] (web).targets.networks[0]: 203.0.113.1/24 has host bits set"),
        ("203.0.113.0/24", "not-a-net", "rules[0] (web).targets.networks[0]: "),
        ('"*.lb.example.com"', '"lb.*.example.com"', "only a leading `*.` wildcard is supported"),
        ("www.example.com,", "www.example.org,", "`www.example.org` is not inside zone example.com."),
        ("expires_after: 30m", "expires_after: soon", "rules[0] (web).expires_after: `soon` is not a duration"),
        ('ticket: "INC-[0-9]+"', 'ticket: "INC-[0-9"', "rules[0] (web).ticket: `INC-[0-9` is not a valid regular"),
        ("{min: 30, max: 3600}", "{min: 600, max: 60}", "rules[0] (web).ttl: min (600) is larger than max (60)"),
        ("types: [MX]", "types: [MX, SOA]", "rules[1] (mail).types[1]: Record type `SOA` is not supported."),
        ("name: mail", "name: web", "rules[1] (web).name: another rule is already called `web`"),
        ("count: 3,", "count: 0,", "rules[1] (mail).approvals.count: must be at least 1"),
        ("approvers: [sre, netops]", "approvers: []", "rules[1] (mail).approvals.approvers: must list at least 1"),
        ("expires_after: 10m", "max_change_fraction: 1.5", "rules[1] (mail).max_change_fraction: must be at most 1"),
        ("expires_after: 10m", "max_change_fraction: 0", "rules[1] (mail).max_change_fraction: must be more than 0"),
        ("expires_after: 10m", 'max_change_fraction: "0.3"', "(mail).max_change_fraction: must be a number such as"),
        ("expires_after: 10m", "max_change_fraction: .nan", "(mail).max_change_fraction: must be a finite number"),
        ("expires_after: 10m", "max_change_fraction: true", "(mail).max_change_fraction: must be a number such as"),
    ],
)
def test_rule_problems_say_where_and_what(old: str, new: str, expected: str) -> None:
    assert old in RULES
    assert expected in problems_of(PEOPLE + RULES.replace(old, new, 1))


def test_people_must_be_unambiguous() -> None:
    message = problems_of(PEOPLE.replace("slack: UCAROL", "slack: UBOB").replace(KEYS["erin"], KEYS["dave"]) + RULES)
    assert "people[2] (carol).slack: Slack user UBOB is already listed for someone else" in message
    assert "people[4] (erin).keys[0]: key SHA256:" in message and "is already listed for dave" in message


def test_a_broken_key_is_reported() -> None:
    message = problems_of(PEOPLE.replace(KEYS["bob"], "ssh-ed25519 AAAAnotakey") + RULES)
    assert "people[1] (bob).keys[0]: `ssh-ed25519 AAAAnotakey...` is not a valid SSH public key" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the top level must be a mapping"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("version: 1\nversion: 1\n", "duplicate key `version`"),
        ("rules: [unclosed\n", "not valid YAML: "),
        ("version: 2\npeople: []\ngroups: {}\nrules: []\n", "version: must be 1"),
    ],
)
def test_file_level_problems(text: str, expected: str) -> None:
    assert expected in problems_of(text)


@pytest.mark.parametrize(
    ("safety", "expected"),
    [
        ("{max_change: 0.3}", "safety.max_change: unknown key"),
        ("{max_change_fraction: 30}", "safety.max_change_fraction: must be at most 1"),
        ("{max_change_fraction: -0.3}", "safety.max_change_fraction: must be more than 0"),
        ("{min_zone_rrsets: 0}", "safety.min_zone_rrsets: must be at least 1"),
        ("{min_zone_rrsets: 2.5}", "safety.min_zone_rrsets: must be a whole number"),
        ("30%", "safety: must be a mapping"),
    ],
)
def test_safety_problems_say_where_and_what(safety: str, expected: str) -> None:
    assert expected in problems_of(PEOPLE + f"safety: {safety}\n" + RULES)


def test_the_change_limit_defaults_to_octodns_and_is_read_exactly_as_written() -> None:
    default = policy()
    assert default.safety == Safety(Fraction(3, 10), 10)  # 0.3 is 3/10, not the nearest binary float
    assert all(r.max_change_fraction is None for r in default.rules)
    tuned = policy(people=PEOPLE + "safety: {max_change_fraction: 0.1, min_zone_rrsets: 25}\n")
    assert tuned.safety == Safety(Fraction(1, 10), 25)
    bulk = policy(RULES.replace("expires_after: 10m", "expires_after: 10m\n    max_change_fraction: 1"))
    assert [bulk.max_change_fraction(r) for r in bulk.rules] == [Fraction(3, 10), Fraction(1), Fraction(3, 10)]


def test_the_change_limit_is_the_strictest_matched_rule_and_rollbacks_have_none() -> None:
    rules = RULES.replace("approvers: [sre, netops]", "approvers: [sre, netops, security]").replace(
        "expires_after: 10m", "expires_after: 10m\n    max_change_fraction: 1.0"
    )
    mx = set_("example.com", RecordType.MX, "10 mx1.mail.example.com")
    mail_only = check_request(policy(rules), request(mx), ALICE).change_limit
    assert mail_only is not None and (mail_only.max_fraction, mail_only.rules) == (Fraction(1), ("mail",))
    both = check_request(policy(rules), request(WWW, mx), ALICE).change_limit
    assert both is not None and (both.max_fraction, both.rules, both.min_zone_rrsets) == (Fraction(3, 10), ("web",), 10)
    rollback = check_request(policy(rules), request(WWW, mx, kind=RequestKind.ROLLBACK), ALICE)
    assert rollback.change_limit is None  # it puts back what an approved change replaced


def test_duplicate_yaml_keys_inside_rules_are_refused_with_a_line_number() -> None:
    message = problems_of(PEOPLE + RULES.replace("expires_after: 10m", "expires_after: 10m\n    expires_after: 1d"))
    assert "duplicate key `expires_after`" in message and "line " in message


def test_non_utf8_bytes_are_a_policy_error() -> None:
    assert "not UTF-8" in problems_of(b"\xff\xfe version: 1")  # type: ignore[arg-type]


# --- matching --------------------------------------------------------------------------------


def test_match_understands_apex_exact_and_wildcard_names() -> None:
    p = policy()
    assert p.match("example.com", "example.com", RecordType.A).name == "web"  # type: ignore[union-attr]
    assert p.match("example.com.", "WWW.example.com.", RecordType.CNAME).name == "web"  # type: ignore[union-attr]
    assert p.match("example.com", "a.b.web.example.com", RecordType.AAAA).name == "web"  # type: ignore[union-attr]
    assert p.match("example.com", "web.example.com", RecordType.A) is None  # `*.` never matches its own suffix
    assert p.match("example.com", "api.example.com", RecordType.A) is None
    assert p.match("example.com", "www.example.com", RecordType.MX) is None  # type not covered
    assert p.match("example.org", "www.example.org", RecordType.A) is None  # zone not covered
    assert p.match("example.com", "anything.example.com", RecordType.TXT).name == "catch-all"  # type: ignore[union-attr]


def test_the_first_matching_rule_wins() -> None:
    broad = """
  - name: broad
    zone: example.com
    types: [A]
    requesters: [netops]
    approvals: {count: 1, approvers: [netops, sre]}
"""
    first = policy(RULES.replace("rules:\n", "rules:\n" + broad, 1))
    last = policy(RULES + broad)
    assert first.match("example.com", "www.example.com", RecordType.A).name == "broad"  # type: ignore[union-attr]
    assert last.match("example.com", "www.example.com", RecordType.A).name == "web"  # type: ignore[union-attr]
    assert last.match("example.com", "api.example.com", RecordType.A).name == "broad"  # type: ignore[union-attr]


def test_people_are_found_by_slack_id_key_fingerprint_and_principal() -> None:
    p = policy()
    bob = p.person_by_slack("UBOB")
    assert bob is not None and bob.name == "bob"
    assert p.person_by_key(KEYS["bob"] + " another-comment") == bob
    assert p.person_by_fingerprint(bob.keys[0].fingerprint) == bob
    assert p.person_for(key("bob")) == bob == p.person_for(BOB)
    assert p.person_by_slack("UNOBODY") is None and p.person_by_key(generate_signing_key().public_openssh) is None
    assert p.person_for(Principal(PrincipalSource.SYSTEM, "bob")) is None


# --- who may request what --------------------------------------------------------------------


def test_no_rule_means_denied() -> None:
    denied = request(set_("api.example.com", RecordType.A, "203.0.113.10"))
    with pytest.raises(ApprovalRefused) as caught:
        check_request(policy(), denied, ALICE)
    assert caught.value.reason is RefusalReason.NO_MATCHING_RULE
    assert "No policy rule covers api.example.com. A in zone example.com." in caught.value.message


def test_only_listed_requesters_may_request() -> None:
    assert refusal(lambda: check_request(policy(), request(WWW, requester=STRANGER), STRANGER)) is (
        RefusalReason.NOT_ALLOWED_TO_REQUEST
    )
    with pytest.raises(ApprovalRefused) as caught:
        check_request(policy(), request(WWW, requester=DAVE), DAVE)
    assert caught.value.reason is RefusalReason.NOT_ALLOWED_TO_REQUEST
    assert caught.value.message == "Policy rule web lets only members of sre request this change."


def test_the_requirement_is_for_the_person_who_made_the_request() -> None:
    assert refusal(lambda: check_request(policy(), request(WWW, requester=ALICE), BOB)) is (
        RefusalReason.NOT_ALLOWED_TO_REQUEST
    )
    assert check_request(policy(), request(WWW, requester=ALICE), key("alice")).requester.name == "alice"


def test_address_targets_must_be_inside_the_rule_networks() -> None:
    p = policy()
    check_request(p, request(set_("www.example.com", RecordType.AAAA, "2001:db8:10::5")), ALICE)
    with pytest.raises(SafetyRefused) as caught:
        check_request(p, request(set_("www.example.com", RecordType.A, "203.0.113.10", "198.51.100.7")), ALICE)
    assert caught.value.message == (
        "198.51.100.7 is outside the networks policy rule web allows for www.example.com.: "
        "203.0.113.0/24, 2001:db8:10::/48."
    )
    with pytest.raises(SafetyRefused):
        check_request(p, request(set_("www.example.com", RecordType.AAAA, "2001:db8:11::5")), ALICE)


def test_host_targets_must_match_the_rule_patterns() -> None:
    p = policy()
    check_request(p, request(set_("www.example.com", RecordType.CNAME, "standby.lb.example.com")), ALICE)
    with pytest.raises(SafetyRefused) as caught:
        check_request(p, request(set_("www.example.com", RecordType.CNAME, "evil.example.net")), ALICE)
    assert (
        caught.value.message
    ) == "CNAME target evil.example.net. is outside the hosts policy rule web allows: *.lb.example.com."
    check_request(p, request(set_("example.com", RecordType.MX, "10 mx1.mail.example.com")), ALICE)
    with pytest.raises(SafetyRefused):
        check_request(p, request(set_("example.com", RecordType.MX, "10 mx.attacker.test")), ALICE)


@pytest.mark.parametrize("ttl", [29, 3601])
def test_ttl_must_be_within_the_rule_bounds(ttl: int) -> None:
    with pytest.raises(SafetyRefused) as caught:
        check_request(policy(), request(set_("www.example.com", RecordType.A, "203.0.113.10", ttl=ttl)), ALICE)
    assert f"TTL {ttl} for www.example.com. A is outside policy rule web: the TTL must be between 30 and 3600" in (
        caught.value.message
    )


def test_ttl_bounds_are_inclusive() -> None:
    for ttl in (30, 3600):
        check_request(policy(), request(set_("www.example.com", RecordType.A, "203.0.113.10", ttl=ttl)), ALICE)


def test_reason_and_ticket_requirements() -> None:
    p = policy()
    with pytest.raises(InvalidInput) as caught:
        check_request(p, request(WWW, reason="fail over"), ALICE)
    assert "requires a ticket reference in the reason (matching `INC-[0-9]+`)" in caught.value.message
    with pytest.raises(InvalidInput, match="requires a reason"):
        check_request(p, request(set_("example.com", RecordType.MX, "10 mx1.mail.example.com"), reason=" "), ALICE)
    # the catch-all rule needs neither
    check_request(p, request(set_("x.example.com", RecordType.TXT, "hello"), reason=""), ALICE)


def test_a_delete_has_no_target_to_check() -> None:
    requirement = check_request(policy(), request(RecordEdit("www.example.com.", RecordType.A, None)), ALICE)
    assert requirement.rules == ("web",)


def test_rollbacks_need_the_rollback_count_and_may_restore_values_outside_the_bounds() -> None:
    old_value = set_("www.example.com", RecordType.A, "198.51.100.7", ttl=86400)
    requirement = check_request(policy(), request(old_value, kind=RequestKind.ROLLBACK), ALICE)
    assert requirement.count == 1 and requirement.rollback_count == 1


def test_drills_need_the_drill_count() -> None:
    assert check_request(policy(), request(WWW), ALICE, drill=True).count == 1
    assert check_request(policy(), request(WWW), ALICE).count == 2


def test_several_rules_combine_to_the_strictest() -> None:
    both = request(WWW, set_("example.com", RecordType.MX, "10 mx1.mail.example.com"))
    rules = RULES.replace("approvers: [sre, netops]", "approvers: [sre, netops, security]")
    requirement = check_request(policy(rules), both, ALICE)
    assert requirement.rules == ("web", "mail")
    assert requirement.count == 3  # max
    assert [p.name for p in requirement.eligible] == ["bob", "carol", "dave", "erin"]  # web ∩ mail, minus alice
    assert [n.group for n in requirement.must_include] == ["security"]  # union
    assert requirement.expires_after == 600  # min
    assert requirement.emergency_allowed is False  # mail has no emergency clause
    assert requirement.rollback_count == 3


def test_a_request_nobody_can_approve_is_refused_at_once() -> None:
    both = request(WWW, set_("example.com", RecordType.MX, "10 mx1.mail.example.com"))
    with pytest.raises(ApprovalRefused) as caught:
        check_request(policy(), both, ALICE)  # needs 3 of {bob, carol}, and someone from security
    assert caught.value.reason is RefusalReason.CANNOT_BE_APPROVED


def test_every_edit_must_be_covered() -> None:
    mixed = request(WWW, set_("api.example.com", RecordType.A, "203.0.113.10"))
    assert refusal(lambda: check_request(policy(), mixed, ALICE)) is RefusalReason.NO_MATCHING_RULE


# --- approving -------------------------------------------------------------------------------


def web_requirement() -> tuple[ChangeRequest, Requirement]:
    change = request(WWW)
    return change, check_request(policy(), change, ALICE)


def test_the_requester_can_never_approve_by_slack_or_by_key() -> None:
    change, requirement = web_requirement()
    assert refusal(lambda: requirement.check_approver(change, ALICE, [])) is RefusalReason.SELF_APPROVAL
    assert refusal(lambda: requirement.check_approver(change, key("alice"), [])) is RefusalReason.SELF_APPROVAL


def test_non_approvers_are_refused() -> None:
    change, requirement = web_requirement()
    assert refusal(lambda: requirement.check_approver(change, FRANK, [])) is RefusalReason.NOT_AN_APPROVER
    assert refusal(lambda: requirement.check_approver(change, STRANGER, [])) is RefusalReason.NOT_AN_APPROVER
    assert not requirement.satisfied([approval(FRANK), approval(STRANGER)])


def test_the_same_person_counts_once_via_slack_and_key() -> None:
    change, requirement = web_requirement()
    requirement.check_approver(change, DAVE, [])
    with pytest.raises(ApprovalRefused) as caught:
        requirement.check_approver(change, key("dave"), [approval(DAVE)])
    assert caught.value.reason is RefusalReason.ALREADY_APPROVED
    assert caught.value.hint == "Still needed: 1 more approver."
    assert not requirement.satisfied([approval(DAVE), approval(key("dave"))])
    assert requirement.satisfied([approval(DAVE), approval(key("bob"))])


def test_the_group_mix_is_reported_as_missing_not_refused() -> None:
    change, requirement = web_requirement()
    assert requirement.missing([]) == "2 more approvers, at least one from security"
    two_sre = [approval(BOB), approval(CAROL)]
    requirement.check_approver(change, CAROL, [approval(BOB)])  # allowed: a wrong mix is not a refusal
    assert not requirement.satisfied(two_sre)
    assert requirement.missing(two_sre) == "1 more approver, at least one from security"
    assert requirement.missing_count(two_sre) == 1
    assert requirement.satisfied([*two_sre, approval(ERIN)])
    assert requirement.missing([approval(BOB), approval(key("erin"))]) == "nothing: the approvals are complete"


def test_missing_counts_the_people_the_groups_need() -> None:
    rules = RULES.replace("must_include: [security]", "must_include: [security, netops]").replace(
        "approvers: [sre, security]", "approvers: [sre, security, netops]", 1
    )
    change = request(WWW)
    requirement = check_request(policy(rules), change, ALICE)
    assert requirement.missing([approval(BOB)]) == "2 more approvers, at least one from security and one from netops"
    both_groups = policy(rules, PEOPLE.replace("netops: [frank]", "netops: [frank, dave]"))
    requirement = check_request(both_groups, change, ALICE)
    assert requirement.missing([approval(BOB)]) == "1 more approver, at least one from security and one from netops"
    assert requirement.satisfied([approval(BOB), approval(DAVE)])
    assert not requirement.satisfied([approval(DAVE)])  # one person, even in two groups, is one approver


def test_approvals_for_another_request_are_refused() -> None:
    _, requirement = web_requirement()
    other = request(WWW, request_id="BG-OTHER2")
    assert refusal(lambda: requirement.check_approver(other, BOB, [])) is RefusalReason.WRONG_REQUEST


def test_only_approvers_and_the_requester_may_deny() -> None:
    change, requirement = web_requirement()
    requirement.check_denier(change, ALICE)
    requirement.check_denier(change, key("erin"))
    assert refusal(lambda: requirement.check_denier(change, FRANK)) is RefusalReason.NOT_AN_APPROVER


def test_expiry_comes_from_the_rule() -> None:
    change, requirement = web_requirement()
    assert requirement.expires_at(change) == NOW + timedelta(minutes=30)


# --- the emergency clause ---------------------------------------------------------------------


def test_emergency_self_approval_notifies_everyone_and_forces_a_review() -> None:
    change, requirement = web_requirement()
    assert requirement.emergency_allowed
    emergency = requirement.check_emergency(change, ALICE, "  everyone else is on the plane  ")
    assert emergency.person.name == "alice" and emergency.reason == "everyone else is on the plane"
    assert [p.name for p in emergency.notify] == ["bob", "carol", "dave", "erin"]
    assert emergency.review_required
    assert requirement.satisfied([approval(ALICE)])
    assert requirement.missing([approval(ALICE)]) == "nothing: the approvals are complete"


def test_emergency_needs_a_reason() -> None:
    change, requirement = web_requirement()
    with pytest.raises(InvalidInput, match="needs a reason"):
        requirement.check_emergency(change, ALICE, " ")


def test_emergency_is_only_for_the_requester() -> None:
    change, requirement = web_requirement()
    assert refusal(lambda: requirement.check_emergency(change, BOB, "why")) is RefusalReason.EMERGENCY_NOT_ALLOWED


def test_without_the_clause_there_is_no_self_approval_at_all() -> None:
    rules = RULES.replace("    emergency: {allowed: true, groups: [sre]}\n", "")
    change = request(WWW)
    requirement = check_request(policy(rules), change, ALICE)
    assert not requirement.emergency_allowed
    assert refusal(lambda: requirement.check_emergency(change, ALICE, "why")) is RefusalReason.EMERGENCY_NOT_ALLOWED
    assert not requirement.satisfied([approval(ALICE)])  # a stored self-approval never counts
    assert not requirement.satisfied([approval(ALICE), approval(DAVE)])


def test_emergency_is_only_for_the_groups_the_clause_names() -> None:
    rules = RULES.replace("groups: [sre]}", "groups: [netops]}")
    requirement = check_request(policy(rules), request(WWW), ALICE)
    assert not requirement.emergency_allowed


def test_an_otherwise_impossible_request_stays_possible_through_the_emergency_clause() -> None:
    rules = RULES.replace("count: 2, approvers: [sre, security]", "count: 9, approvers: [sre, security]")
    requirement = check_request(policy(rules), request(WWW), ALICE)
    assert requirement.emergency_allowed and not requirement.satisfied([approval(BOB)])


# --- warnings ---------------------------------------------------------------------------------


def warnings_of(rules: str, people: str = PEOPLE) -> list[str]:
    return [str(w) for w in explain(policy(rules, people)).warnings]


def test_explain_lists_what_each_rule_allows() -> None:
    report = explain(policy())
    mail = report.rules[1]
    assert mail.requesters == ("alice", "bob", "carol", "frank")
    assert mail.approvers == ("alice", "bob", "carol", "frank") and mail.count == 3 and mail.emergency is None
    assert "rule mail: @ in example.com. (MX)" in report.to_text()


def test_explain_warns_when_one_absence_blocks_a_rule() -> None:
    warnings = warnings_of(RULES)
    assert (
        "rule mail: needs 3 approvers but only 3 eligible people exist besides the requester: one absence blocks it"
        in warnings
    )


def test_explain_warns_when_a_rule_can_never_pass() -> None:
    warnings = warnings_of(RULES.replace("count: 3,", "count: 4,"))
    assert "rule mail: needs 4 approvers but only 3 eligible people exist besides the requester: it can never pass" in (
        warnings
    )


def test_explain_warns_about_a_required_group_of_one() -> None:
    warnings = warnings_of(RULES, PEOPLE.replace("security: [dave, erin]", "security: [dave]"))
    assert "rule web: requires security but security has 1 member" in warnings


def test_explain_warns_about_people_without_keys_or_groups() -> None:
    people = PEOPLE.replace(f'keys: ["{KEYS["frank"]}"]', "keys: []").replace("  netops: [frank]\n", "  netops: []\n")
    warnings = warnings_of(RULES, people)
    assert "person frank: has no SSH key: cannot approve out of band when Slack is down" in warnings
    assert "person frank: is in no group: can neither request nor approve" in warnings


def test_explain_finds_rules_shadowed_by_an_earlier_broader_rule() -> None:
    shadowed = """
  - name: late-txt
    zone: example.com
    names: ["*._acme-challenge.example.com"]
    types: [TXT]
    requesters: [sre]
    approvals: {count: 1, approvers: [security]}
"""
    warnings = warnings_of(RULES + shadowed)
    assert "rule late-txt: unreachable: earlier rule catch-all matches every record it covers (first match wins)" in (
        warnings
    )
    assert not any("web: unreachable" in w for w in warnings)


def test_explain_warns_about_unrestricted_targets() -> None:
    rules = RULES.replace('    targets: {hosts: ["*.mail.example.com"]}\n', "")
    assert "rule mail: does not restrict where MX records may point (no `targets`)" in warnings_of(rules)


# --- robustness -------------------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_EXAMPLE_DOC = yaml.safe_load(EXAMPLE.read_text())


def _replace_at(document: object, path: list[int], value: object) -> object:
    """Replace one node of ``document`` (chosen by ``path``) with ``value``."""
    if not path or not isinstance(document, dict | list) or not document:
        return value
    if isinstance(document, dict):
        keys = list(document)
        chosen = keys[path[0] % len(keys)]
        return {**document, chosen: _replace_at(document[chosen], path[1:], value)}
    index = path[0] % len(document)
    return [*document[:index], _replace_at(document[index], path[1:], value), *document[index + 1 :]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), _values.map(yaml.safe_dump)))
def test_load_policy_only_ever_raises_policy_error_on_junk(text: str | bytes) -> None:
    with contextlib.suppress(PolicyError):
        load_policy(text, source="fuzz.yaml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["top", "rule"]),
    st.sampled_from(["max_change_fraction", "min_zone_rrsets"]),
    _values | st.floats() | st.decimals(allow_nan=False).map(str),
)
def test_a_change_limit_loads_within_bounds_or_is_a_policy_error(where: str, key: str, value: object) -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    target = document["safety"] if where == "top" else document["rules"][0]
    target[key] = value
    try:
        loaded = load_policy(yaml.safe_dump(document), source="fuzz.yaml")
    except PolicyError as error:
        assert "max_change_fraction" in error.message or "min_zone_rrsets" in error.message
        return
    assert 0 < loaded.safety.max_change_fraction <= 1 and loaded.safety.min_zone_rrsets >= 1
    assert all(0 < loaded.max_change_fraction(r) <= 1 for r in loaded.rules)
    explain(loaded)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=50), max_size=6), _values)
def test_load_policy_only_ever_raises_policy_error_on_mutated_policies(path: list[int], value: object) -> None:
    mutated = yaml.safe_dump(_replace_at(_EXAMPLE_DOC, path, value))
    try:
        result = load_policy(mutated, source="fuzz.yaml")
    except PolicyError:
        return
    explain(result)  # whatever loads can also be explained
