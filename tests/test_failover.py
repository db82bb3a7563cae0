"""Failover between change paths with separate trust paths, on a real PowerDNS and OpenBao.

Primary: the PowerDNS HTTP API with an API key from Vault (its own AppRole). Backup: RFC2136
to the same server with a TSIG key from Vault under another AppRole, or from a sealed envelope.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable

from cli.localstack import LocalStack
from core.credentials import TsigAlgorithm, TsigKey
from core.events import EventKind
from core.records import RecordType
from core.secrets import Secret
from core.states import RequestState
from credentials.sealed import generate_key, key_to_text, seal
from providers.authoritative import DnsAuthoritativeQuerier
from sandbox.net import TcpForwarder
from sandbox.openbao import OpenBaoServer, provision_breakglass, revoke_secret_id
from tests.fixtures.bot import SlackDriver, assert_no_secret_leaked

SET = 'set api.example.test A 203.0.113.10 ttl=60 reason="INC-77 fail over"'
ELEVATED_RULE = """
  - name: failover
    zone: example.test
    names: ["*"]
    types: [A]
    requesters: [sre]
    approvals: {count: 2, approvers: [sre, security]}
    expires_after: 30m
"""


class ApiPath:
    """The PowerDNS API behind a forwarder (so the test can take the API down), keyed from Vault."""

    def __init__(self, stack: LocalStack) -> None:
        tag = secrets.token_hex(4)
        self.role = f"pdns-api-{tag}"
        self.kv_path = f"pdns/api-{tag}"
        creds = provision_breakglass(stack.vault, tsig_path=self.kv_path, tsig=("unused.", "hmac-sha256", "eA=="),
                                     role_name=self.role)  # fmt: skip
        stack.vault.client().secrets.kv.v2.create_or_update_secret(
            path=self.kv_path, secret={"api_key": stack.pdns.api_key}, mount_point="secret"
        )
        self.secret_id = creds.secret_id
        for name, value in (("api-role-id", creds.role_id), ("api-secret-id", creds.secret_id)):
            (stack.workdir / name).write_text(value)
        self.forwarder = TcpForwarder(int(stack.pdns.api_url.rsplit(":", 1)[1]))

    def toml(self, stack: LocalStack) -> tuple[str, str]:
        path = f"""
[[zones.paths]]
kind = "powerdns"
name = "pdns-api"
api_url = "http://127.0.0.1:{self.forwarder.port}"
timeout_seconds = 2
credentials = {{ source = "vault-kv", vault = "api", path = "{self.kv_path}", kind = "api_key" }}
"""
        extra = f"""
[vaults.api]
address = "{stack.vault.address}"
role_id_file = "{stack.workdir / "api-role-id"}"
secret_id_file = "{stack.workdir / "api-secret-id"}"
timeout_seconds = 2
"""
        return path, extra


def with_backup(backup: Callable[[LocalStack], str]) -> Callable[[LocalStack], tuple[str, str]]:
    def configure(stack: LocalStack) -> tuple[str, str]:
        stack.api = ApiPath(stack)  # type: ignore[attr-defined]
        primary, extra = stack.api.toml(stack)  # type: ignore[attr-defined]
        return primary + backup(stack), extra

    return configure


def rfc2136_backup(stack: LocalStack) -> str:
    return stack.default_path()


def sealed_backup(stack: LocalStack) -> str:
    key = generate_key()
    tsig = TsigKey(stack.pdns.tsig_key_name, TsigAlgorithm(stack.pdns.tsig_algorithm), Secret(stack.pdns.tsig_secret))
    envelope, key_file = stack.workdir / "envelope.json", stack.workdir / "sealed.key"
    envelope.write_bytes(seal(tsig, "example.test/rfc2136", key))
    key_file.write_text(key_to_text(key))
    source = f'source = "sealed", envelope_path = "{envelope}", envelope_name = "example.test/rfc2136"'
    return f"""
[[zones.paths]]
kind = "rfc2136"
name = "sealed-rfc2136"
server = "{stack.primary}"
credentials = {{ {source}, key_file = "{key_file}" }}
"""


def served(stack: LocalStack) -> tuple[str, ...]:
    answer = DnsAuthoritativeQuerier(1.0).query(stack.primary, "api.example.test.", RecordType.A)
    return answer.rrset.values if answer.rrset else ()


def kinds_and_paths(stack: LocalStack, request_id: str) -> list[tuple[EventKind, str]]:
    return [(e.kind, str(e.details.get("path", ""))) for e in stack.service.status(request_id).events]


def approve_by_bob_and_carol(stack: LocalStack, slack: SlackDriver, approve_button: object) -> None:
    slack.click(stack.people.bob, approve_button)  # type: ignore[arg-type]
    slack.click(stack.people.carol, approve_button)  # type: ignore[arg-type]


def test_primary_credentials_revoked_in_vault_backup_path_applies(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao, powerdns=True, configure=with_backup(rfc2136_backup)) as stack:
        slack = SlackDriver(stack)
        approve = slack.request(stack.people.alice, SET)
        assert stack.service.status(approve.value or "").stored.plan.path == "pdns-api"
        revoke_secret_id(stack.vault, stack.api.secret_id, role_name=stack.api.role)  # type: ignore[attr-defined]
        approve_by_bob_and_carol(stack, slack, approve)
        verdict = slack.verdict(approve)
        assert verdict.startswith("Verified"), verdict
        assert served(stack) == ("203.0.113.10",)
        events = kinds_and_paths(stack, approve.value or "")
        assert (EventKind.PATH_FAILED, "pdns-api") in events and (EventKind.APPLIED, "pdns-rfc2136") in events
        thread = json.dumps([c.args for c in stack.fake.calls("chat.postMessage")])
        assert "Change path pdns-api failed" in thread
        assert_no_secret_leaked(stack, {
            "PowerDNS API key": stack.pdns.api_key, "PowerDNS TSIG secret": stack.pdns.tsig_secret,
            "API AppRole secret_id": stack.api.secret_id,  # type: ignore[attr-defined]
            "default AppRole secret_id": stack.secret_id, "OpenBao root token": stack.vault.root_token,
        })  # fmt: skip


def test_primary_api_down_backup_path_applies_and_plans(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao, powerdns=True, configure=with_backup(rfc2136_backup)) as stack:
        slack = SlackDriver(stack)
        approve = slack.request(stack.people.alice, SET)
        stack.api.forwarder.stop()  # type: ignore[attr-defined]
        approve_by_bob_and_carol(stack, slack, approve)
        assert slack.verdict(approve).startswith("Verified")
        assert (EventKind.APPLIED, "pdns-rfc2136") in kinds_and_paths(stack, approve.value or "")
        # With the API still down, a new request is planned through the backup path.
        later = slack.request(stack.people.alice, 'set api.example.test A 203.0.113.11 ttl=60 reason="INC-78"')
        assert stack.service.status(later.value or "").stored.plan.path == "pdns-rfc2136"


def test_vault_down_sealed_envelope_needs_elevated_approval_then_applies() -> None:
    with LocalStack(powerdns=True, configure=with_backup(sealed_backup), policy_rules=ELEVATED_RULE) as stack:
        slack, p = SlackDriver(stack), stack.people
        approve = slack.request(p.alice, SET)
        stack.vault.stop()
        approve_by_bob_and_carol(stack, slack, approve)
        stack.fake.wait_for("chat.update", timeout=60,
                            predicate=lambda c: "to open the sealed envelope" in json.dumps(c.args))  # fmt: skip
        status = stack.service.status(approve.value or "")
        assert status.stored.state is RequestState.NEEDS_ELEVATED_APPROVAL
        assert served(stack) == ("192.0.2.10",)  # nothing applied while waiting
        slack.click(p.dave, stack.fake.find_button(action_id="approve", value=approve.value))
        verdict = slack.verdict(approve)
        assert verdict.startswith("Verified"), verdict
        assert served(stack) == ("203.0.113.10",)
        events = kinds_and_paths(stack, approve.value or "")
        assert (EventKind.APPLIED, "sealed-rfc2136") in events
        assert EventKind.CREDENTIALS_MUST_ROTATE in [k for k, _ in events]
        thread = json.dumps([c.args for c in stack.fake.calls("chat.postMessage")])
        assert "MUST be rotated" in thread
        assert_no_secret_leaked(stack, {
            "sealed envelope key": (stack.workdir / "sealed.key").read_text().strip(),
            "TSIG secret from the envelope": stack.pdns.tsig_secret, "PowerDNS API key": stack.pdns.api_key,
        })  # fmt: skip


def test_both_paths_failing_applies_nothing_and_reports_each(openbao: OpenBaoServer) -> None:
    with LocalStack(vault=openbao, powerdns=True, configure=with_backup(rfc2136_backup)) as stack:
        slack = SlackDriver(stack)
        approve = slack.request(stack.people.alice, SET)
        stack.api.forwarder.stop()  # type: ignore[attr-defined]
        revoke_secret_id(stack.vault, stack.secret_id, role_name=stack.role_name)
        approve_by_bob_and_carol(stack, slack, approve)
        verdict = slack.verdict(approve)
        assert verdict.startswith("Nothing was applied: Every change path failed")
        assert "pdns-api" in verdict and "pdns-rfc2136" in verdict
        assert stack.service.status(approve.value or "").stored.state is RequestState.APPLY_FAILED
        assert served(stack) == ("192.0.2.10",)
