"""Drills on real servers: BIND (Slack `/dns drill`), PowerDNS with two paths (CLI, failover), Route53 on moto.

Each drill writes `_breakglass-drill.<zone>` TXT through one change path, checks every authoritative
server, deletes it and checks again. The tests check what a person would: the canary is gone
afterwards, the phases were timed and stored, the audit trail holds the drill, and a drill fails
when a server never serves the canary or a path is down.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from approvals.policy import Policy, load_policy
from bot.commands import DrillCommand, ReadinessCommand, parse
from cli.localstack import LocalStack
from cli.main import app
from core.errors import InvalidInput
from core.events import EventKind
from core.models import Principal, PrincipalSource, RRsetChange
from core.ports import DrillOutcome, DrillRecord
from core.records import RecordType
from core.verification import AnswerStatus, ServerAddress, ServerAnswer, ServerSet
from providers.authoritative import DnsAuthoritativeQuerier
from providers.route53 import Route53Path
from sandbox.openbao import OpenBaoServer
from service.drills import DrillRequest, DrillRunner, canary_name
from service.propagation import PropagationChecker
from service.zones import PathRuntime, TrustPath, ZoneDirectory, ZoneRuntime
from store.audit import AuditLog
from store.drills import SqlDrillStore
from store.sql import SqlRequestStore, make_engine
from tests.fixtures.bot import SlackDriver
from tests.fixtures.moto import MOTO_CREDENTIALS
from tests.fixtures.moto_sts import IdentitySts
from tests.test_failover import rfc2136_backup, with_backup

ZONE = "example.test."
CANARY = canary_name(ZONE)
DRILL_RULE = """
  - name: drills
    zone: example.test
    names: [_breakglass-drill.example.test]
    types: [TXT]
    requesters: [sre]
    approvals: {count: 2, drill_count: 1, approvers: [sre, security]}
    require_reason: false
"""
DRILL_SETTINGS = """
[drills]
actor = "carol"
timeout_seconds = 2

[[inventory]]
record = "api.example.test"
service = "checkout"
rto_seconds = 60
leads_to = ["token service"]
"""
cli = CliRunner()


def canary_answers(stack: LocalStack) -> list[ServerAnswer]:
    querier = DnsAuthoritativeQuerier(timeout_seconds=1.0)
    return [querier.query(server, CANARY, RecordType.TXT) for server in stack.servers]


def assert_canary_gone(stack: LocalStack) -> None:
    answers = canary_answers(stack)
    assert all(a.status is AnswerStatus.ANSWER and a.rrset is None for a in answers), answers


def drill_events(stack: LocalStack, drill_id: str) -> list[EventKind]:
    return [e.kind for e in SqlRequestStore(stack.engine).events(drill_id)]


def history(stack: LocalStack, drill_id: str) -> dict[str, DrillRecord]:
    return {r.path: r for r in SqlDrillStore(stack.engine).history(limit=100) if r.drill_id == drill_id}


def assert_timed(record: DrillRecord) -> None:
    for phase in (record.lease_seconds, record.apply_seconds, record.propagation_seconds, record.cleanup_seconds):
        assert phase is not None and phase >= 0, record
    assert record.routing_seconds is not None
    assert record.lease_seconds is not None and record.apply_seconds is not None
    assert record.propagation_seconds is not None
    assert record.routing_seconds >= record.lease_seconds + record.apply_seconds + record.propagation_seconds - 1e-6


# --- parsing ----------------------------------------------------------------------------------------


def test_drill_and_readiness_commands_parse() -> None:
    assert parse("drill") == DrillCommand()
    assert parse("drill example.test path=pdns-api") == DrillCommand("example.test.", "pdns-api", False)
    assert parse("drill example.test outage") == DrillCommand("example.test.", None, True)
    assert parse("readiness") == ReadinessCommand()
    with pytest.raises(InvalidInput, match="at most one zone"):
        parse("drill a.test b.test")
    with pytest.raises(InvalidInput, match="no arguments"):
        parse("readiness now")


# --- BIND: one path, driven from Slack ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bind_stack(openbao: OpenBaoServer) -> Iterator[LocalStack]:
    with LocalStack(vault=openbao, verify_timeout=5.0, policy_rules=DRILL_RULE,
                    configure=lambda s: (s.default_path(), DRILL_SETTINGS)) as stack:  # fmt: skip
        yield stack


def test_slack_drill_on_bind_writes_verifies_and_removes_the_canary(bind_stack: LocalStack) -> None:
    stack, slack = bind_stack, SlackDriver(bind_stack)
    reply = slack.command(stack.people.alice, "drill example.test")
    assert "Starting the drill" in json.loads(reply.body)["text"]
    posted = stack.fake.wait_for("chat.postMessage", timeout=60, predicate=lambda c: "ran a drill" in str(c.args))
    text = str(posted[-1].args["text"])
    assert text.startswith(":white_check_mark:") and "bind-primary: passed: lease" in text, text
    assert "propagation" in text and "corrected routing in" in text
    assert "1 approver" in text  # the drill rule's drill_count, simulated
    drill_id = text.split("Drill ", 1)[1].split(" ", 1)[0]

    assert_canary_gone(stack)
    (record,) = history(stack, drill_id).values()
    assert record.outcome is DrillOutcome.PASSED and record.actor == f"slack:{stack.people.alice}"
    assert_timed(record)
    events = drill_events(stack, drill_id)
    assert events[0] is EventKind.DRILL_STARTED and events[-1] is EventKind.DRILL_FINISHED
    assert events.count(EventKind.CREDENTIALS_LEASED) == 2  # one lease to write, one to clean up
    assert events.count(EventKind.CREDENTIALS_REVOKED) == 2
    assert EventKind.DRILL_PATH in events

    # The readiness view in Slack now shows this drill for the path.
    slack.command(stack.people.bob, "readiness")
    shown = slack.response_url_text()
    assert "path bind-primary: rfc2136;" in shown and f"last drill {drill_id}" in shown, shown
    assert "within RTO 60s" in shown and "single_path" in shown


def test_drill_by_someone_outside_the_drill_rule_is_refused_and_writes_nothing(bind_stack: LocalStack) -> None:
    stack = bind_stack
    report = stack.drills.run(Principal(PrincipalSource.SLACK, stack.people.dave), DrillRequest(ZONE))  # security
    assert not report.passed
    (zone,) = report.zones
    assert zone.refused is not None and "only members of sre" in zone.refused and zone.paths == ()
    assert drill_events(stack, report.drill_id) == [EventKind.REQUEST_REFUSED]
    assert history(stack, report.drill_id) == {}
    assert_canary_gone(stack)


def test_drill_fails_when_a_server_never_serves_the_canary(bind_stack: LocalStack) -> None:
    stack = bind_stack
    stack.bind.stop_secondary()
    try:
        report = stack.drills.run_as_configured("carol", DrillRequest(ZONE))
    finally:
        stack.bind.start_secondary()
    assert not report.passed
    record = history(stack, report.drill_id)["bind-primary"]
    assert record.outcome is DrillOutcome.FAILED and record.actor == "system:drill-actor:carol"
    assert str(stack.bind.secondary) in record.detail and "served the canary" in record.detail
    assert record.lease_seconds is not None and record.propagation_seconds is None  # timed up to where it stopped
    assert "cleanup failed" in record.detail  # the deletion could not be verified on the stopped server either
    primary = DnsAuthoritativeQuerier(1.0).query(stack.bind.primary, CANARY, RecordType.TXT)
    assert primary.status is AnswerStatus.ANSWER and primary.rrset is None  # but it was deleted


# --- PowerDNS: API + RFC2136 with separate Vault identities, driven from the CLI ----------------------


@pytest.fixture(scope="module")
def pdns_stack(openbao: OpenBaoServer) -> Iterator[LocalStack]:
    def configure(stack: LocalStack) -> tuple[str, str]:
        paths, extra = with_backup(rfc2136_backup)(stack)
        return paths, extra + DRILL_SETTINGS

    with LocalStack(vault=openbao, powerdns=True, policy_rules=DRILL_RULE, configure=configure) as stack:
        yield stack


def test_cli_drill_signed_with_a_key_drills_both_paths(pdns_stack: LocalStack) -> None:
    stack = pdns_stack
    result = cli.invoke(
        app, ["drill", "--config", str(stack.config_path), "--key", str(stack.keys["alice"]), "--zone", "example.test"]
    )
    assert result.exit_code == 0, result.output
    assert "pdns-api" in result.stdout and "pdns-rfc2136" in result.stdout and "propagation" in result.stdout
    drill_id = result.stdout.split("drill ", 1)[1].split(" ", 1)[0]
    records = history(stack, drill_id)
    assert set(records) == {"pdns-api", "pdns-rfc2136"}
    for record in records.values():
        assert record.outcome is DrillOutcome.PASSED and record.actor == "key:alice"
        assert_timed(record)
    assert_canary_gone(stack)
    # Drill rows and their events went into the hash chain together: the chain still verifies.
    chain = AuditLog(stack.engine).verify([], None)
    assert chain.ok and chain.events >= 8, chain.problems


def test_simulated_primary_outage_proves_the_failover(pdns_stack: LocalStack) -> None:
    stack = pdns_stack
    result = cli.invoke(app, ["drill", "-c", str(stack.config_path), "--simulate-primary-outage", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["passed"] and shown["simulated_outage"] and shown["actor"] == "system:drill-actor:carol"
    (zone,) = shown["zones"]
    assert [(p["path"], p["outcome"]) for p in zone["paths"]] == [
        ("pdns-api", "unavailable"),
        ("pdns-rfc2136", "passed"),
    ]
    records = history(stack, shown["drill_id"])
    assert records["pdns-api"].outcome is DrillOutcome.UNAVAILABLE and records["pdns-api"].lease_seconds is None
    failover = records["pdns-rfc2136"]
    assert failover.simulated_outage and failover.outcome is DrillOutcome.PASSED
    assert_timed(failover)
    assert_canary_gone(stack)


def test_path_with_its_api_down_fails_its_drill_while_the_other_passes(openbao: OpenBaoServer) -> None:
    def configure(stack: LocalStack) -> tuple[str, str]:
        paths, extra = with_backup(rfc2136_backup)(stack)
        return paths, extra + DRILL_SETTINGS

    with LocalStack(vault=openbao, powerdns=True, policy_rules=DRILL_RULE, configure=configure) as stack:
        stack.api.forwarder.stop()  # type: ignore[attr-defined]
        result = cli.invoke(app, ["drill", "-c", str(stack.config_path)])
        assert result.exit_code == 1, result.output
        assert "FAILED" in result.stdout
        drill_id = result.stdout.split("drill ", 1)[1].split(" ", 1)[0]
        records = history(stack, drill_id)
        assert records["pdns-api"].outcome is DrillOutcome.FAILED and records["pdns-api"].apply_seconds is None
        assert records["pdns-rfc2136"].outcome is DrillOutcome.PASSED
        assert_canary_gone(stack)


def test_drill_without_an_identity_is_refused(pdns_stack: LocalStack, tmp_path: Path) -> None:
    config = tmp_path / "no-actor.toml"
    config.write_text(pdns_stack.config_path.read_text().replace('actor = "carol"\n', ""))
    for name in ("policy.yaml", "policy.yaml.sig", "audit-key.pem", "audit-key.pub.pem"):
        (tmp_path / name).write_bytes((pdns_stack.workdir / name).read_bytes())
    result = cli.invoke(app, ["drill", "-c", str(config)])
    assert result.exit_code == 2
    assert "Say who runs the drill" in result.stderr


# --- Route53 on moto: credentials from OpenBao via STS -----------------------------------------------


class Route53ApiQuerier:
    """moto serves no DNS: here the "authoritative server" is Route53's own API, read through the path."""

    def __init__(self, path: Route53Path) -> None:
        self._path = path

    def query(self, server: ServerAddress, name: str, rtype: RecordType) -> ServerAnswer:
        rrset = self._path.read(name, rtype, MOTO_CREDENTIALS)
        return ServerAnswer(server, name, rtype, AnswerStatus.ANSWER, rrset)


class Route53Inspector:
    def authoritative_servers(self, zone: str) -> ServerSet:
        return ServerSet((ServerAddress("route53-api", 0),))

    def delegation_warnings(self, zone: str) -> tuple[str, ...]:
        return ()

    def resolver_views(self, change: RRsetChange) -> tuple[()]:
        return ()


class FixedPolicy:
    def __init__(self, text: str) -> None:
        self._policy = load_policy(text, source="test")

    def current(self) -> Policy:
        return self._policy

    def problem(self) -> None:
        return None


def test_drill_on_route53_with_sts_credentials_from_openbao(
    identity_sts: IdentitySts, moto_sts: object, sqlite_url: str
) -> None:
    zone = identity_sts.aws.zone_name
    path = Route53Path("route53", zone, endpoint_url=identity_sts.sts_endpoint_url, timeout_seconds=5)
    route = PathRuntime(path, identity_sts.source(), TrustPath("iam role", "openbao", "route53"))
    policy = FixedPolicy(f"""
version: 1
people: [{{name: alice, slack: U1}}, {{name: bob, slack: U2}}]
groups: {{sre: [alice, bob]}}
rules:
  - name: drills
    zone: {zone}
    names: [{canary_name(zone)}]
    types: [TXT]
    requesters: [sre]
    approvals: {{count: 1, approvers: [sre]}}
""")
    engine = make_engine(sqlite_url)
    try:
        runner = DrillRunner(
            ZoneDirectory([ZoneRuntime(zone, (route,))]), SqlRequestStore(engine), SqlDrillStore(engine), policy,
            PropagationChecker(Route53ApiQuerier(path)), Route53Inspector(), verify_timeout=5,
        )  # fmt: skip
        report = runner.run(Principal(PrincipalSource.SLACK, "U1"), DrillRequest(zone, reason=secrets.token_hex(2)))
        assert report.passed, report.to_text()
        (record,) = SqlDrillStore(engine).history(zone=zone)
        assert record.outcome is DrillOutcome.PASSED and record.path == "route53"
        assert_timed(record)
        assert path.read(canary_name(zone), RecordType.TXT, MOTO_CREDENTIALS) is None
        leased = [e for e in SqlRequestStore(engine).events(report.drill_id) if e.kind is EventKind.CREDENTIALS_LEASED]
        assert len(leased) == 2 and all(str(e.details["lease_id"]).startswith("arn:aws:sts::") for e in leased)
    finally:
        engine.dispose()
