"""`breakglass runbook`: generated from a real config and signed policy, checked for what a responder needs.

The test configuration has two zones: one with three change paths (a Vault-backed RFC2136 primary, a
PowerDNS API path on a second Vault, and a sealed envelope for when Vault is down) and a rule with a
required security approver, a ticket requirement and a sealed_count; one with a single Route53 path.
Every path, approver group and command must be in the runbook; every command must be one the CLI (or
`/dns`) actually accepts; the HTML renders in headless Chromium without console errors.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from approvals.signing import generate_signing_key, sign_policy
from bootstrap.paths import trust_of
from bot.commands import parse
from cli.localstack import ssh_keypair
from cli.main import app
from cli.runbook import build_runbook, commands, last_drill
from config import load_config

runner = CliRunner()
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught")
POLICY_PEOPLE = ("alice", "bob", "carol", "dave")
RULES = """
rules:
  - name: web-failover
    zone: example.test
    names: ["www.example.test", "*.api.example.test"]
    types: [A, AAAA, CNAME]
    requesters: [sre]
    approvals:
      count: 2
      approvers: [sre]
      must_include: [security]
      rollback_count: 1
      drill_count: 1
      sealed_count: 3
    targets:
      networks: ["203.0.113.0/24"]
    ttl:
      min: 30
    ticket: "INC-[0-9]+"
    emergency:
      allowed: true
  - name: txt-records
    zone: example.test
    names: ["*"]
    types: [TXT]
    requesters: [sre]
    approvals:
      count: 1
      approvers: [netops]
    max_change_fraction: 1.0
  - name: other-zone
    zone: other.test
    requesters: [sre]
    approvals:
      count: 2
      approvers: [sre, netops]
"""


def write_setup(directory: Path, extra_path: str = "") -> Path:
    """A config with two zones and a signed policy (people, groups, rules) in ``directory``."""
    signing = generate_signing_key()
    people = "".join(
        f'  - name: {name}\n    slack: U0{name.upper()}\n    keys: ["{ssh_keypair(name)[1]}"]\n'
        for name in POLICY_PEOPLE
    )
    people += "  - name: erin\n    slack: U0ERIN\n"  # no SSH key: cannot approve out of band
    policy = (
        f"version: 1\npeople:\n{people}groups:\n"
        "  sre: [alice, bob, carol]\n  security: [dave]\n  netops: [erin, carol]\n" + RULES
    )
    (directory / "policy.yaml").write_text(policy)
    (directory / "policy.yaml.sig").write_bytes(sign_policy(policy.encode(), signing.private_openssh))
    config = directory / "breakglass.toml"
    config.write_text(f"""
[vault]
address = "http://127.0.0.1:8200"

[vaults.backup]
address = "http://127.0.0.1:8300"

[policy]
file = "policy.yaml"
trusted_keys = ["{signing.public_openssh}"]

[[zones]]
name = "example.test"
authoritative_servers = ["127.0.0.1:5301", "127.0.0.1:5302"]

[[zones.paths]]
kind = "rfc2136"
name = "bind-primary"
server = "127.0.0.1:5300"
credentials = {{ source = "vault-kv", path = "breakglass/tsig/example.test" }}

[[zones.paths]]
kind = "powerdns"
name = "pdns-api"
api_url = "http://127.0.0.1:8081"
credentials = {{ source = "vault-kv", vault = "backup", path = "breakglass/pdns", kind = "api_key" }}

[[zones.paths]]
kind = "rfc2136"
name = "sealed-tsig"
server = "127.0.0.1:5310"
credentials.source = "sealed"
credentials.envelope_path = "/etc/breakglass/sealed/example.test.json"
credentials.envelope_name = "example.test/rfc2136"
credentials.key_env = "BREAKGLASS_SEALED_KEY"
{extra_path}
[[zones]]
name = "other.test"
authoritative_servers = ["127.0.0.1:5401"]

[[zones.paths]]
kind = "route53"
name = "route53"
endpoint_url = "http://127.0.0.1:5000"
credentials.source = "vault-identity-sts"
credentials.oidc_role = "breakglass"
credentials.role_arn = "arn:aws:iam::123456789012:role/bg"
""")
    return config


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_setup(tmp_path_factory.mktemp("runbook"))


@pytest.fixture(scope="module")
def markdown(setup: Path) -> str:
    output = setup.parent / "runbook.md"
    result = runner.invoke(app, ["runbook", "-c", str(setup), "-o", str(output)])
    assert result.exit_code == 0, result.output
    return output.read_text()


def zone_part(text: str, zone: str) -> str:
    start = text.index(f"## Zone {zone}")
    end = text.find("\n## Zone ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_every_path_is_listed_in_order_with_its_trust_path(setup: Path, markdown: str) -> None:
    settings = load_config(setup)
    for zone in settings.zones:
        part = zone_part(markdown, zone.name)
        positions = []
        for number, path in enumerate(zone.paths, start=1):
            trust = trust_of(settings, path)
            row = next(line for line in part.splitlines() if line.startswith(f"| {number} | {path.name}"))
            assert path.endpoint() in row and trust.identity in row
            assert trust.credential_source in row and trust.control_plane in row
            positions.append(part.index(row))
        assert positions == sorted(positions)
    example = zone_part(markdown, "example.test.")
    assert "| 3 | sealed-tsig (sealed envelope) | rfc2136 |" in example
    assert "vault approle backup@http://127.0.0.1:8300" in example  # the backup path's own identity
    assert f"Last drill: {last_drill(settings, 'example.test.')}." in example


def test_every_rule_names_its_requesters_and_approver_groups(markdown: str) -> None:
    example, other = zone_part(markdown, "example.test."), zone_part(markdown, "other.test.")

    assert "- **web-failover** covers www.example.test, *.api.example.test (A, AAAA, CNAME)" in example
    assert "may request: groups sre (alice, bob, carol)" in example
    assert "may approve: groups sre, security (alice, bob, carol, dave)" in example
    assert "approvals: 2, at least one from security; rollback 1; drill 1; sealed envelope (sealed_count) 3" in example
    assert "TTL at least 30 seconds; addresses in 203.0.113.0/24; the reason must hold a ticket matching" in example
    assert "emergency self-approval: allowed for alice, bob, carol" in example
    assert "ticket matching INC-[0-9]+; at most 30% of the zone's rrsets updated or deleted per request" in example
    assert "bulk changes allowed (no share-of-zone limit)" in example  # txt-records may rewrite every TXT at once
    assert "may approve: groups netops (carol, erin)" in example
    assert "may approve: groups sre, netops (alice, bob, carol, erin)" in other and "web-failover" not in other
    assert "person erin: has no SSH key: cannot approve out of band when Slack is down" in example


def test_outage_scenarios_say_what_to_do(markdown: str) -> None:
    example, other = zone_part(markdown, "example.test."), zone_part(markdown, "other.test.")

    needed = "Approvals needed: web-failover: 2 from sre, at least one from security, txt-records: 1 from netops."
    assert needed in example
    assert "### SSO (the identity provider) is down" in example and "never takes identity from SSO" in example
    assert "the sealed envelope (sealed-tsig) is opened only with more approvals" in example
    assert "(sealed_count per rule: web-failover: 3, txt-records: 2)" in example
    assert "Change path sealed-tsig needs no Vault." in example
    assert "Change path pdns-api needs Vault http://127.0.0.1:8300." in example
    assert "Every path of this zone needs Vault http://127.0.0.1:8200: while it is down nothing can be changed" in other
    assert "rollback approvals: web-failover: 1, txt-records: 1" in example


def test_every_command_is_in_the_runbook_and_accepted_by_the_cli(setup: Path, markdown: str) -> None:
    listed = commands(build_runbook(load_config(setup), setup))
    config = shlex.quote(str(setup))
    expected = [
        f"breakglass request set -c {config} --key ~/.ssh/id_ed25519 NAME.example.test. TYPE VALUE "
        '--reason "INC-123 what and why"',
        f"breakglass approve ID -c {config} --key ~/.ssh/id_ed25519 --emergency",
        f"breakglass approve ID -c {config} --key ~/.ssh/id_ed25519",
        f"breakglass approve ID -c {config} --print-statement",
        "breakglass sign ID --digest DIGEST --decision approve --as YOUR-NAME --key ~/.ssh/id_ed25519",
        f"breakglass approve ID -c {config} --submit-signature signed.txt",
        f"breakglass deny ID -c {config} --key ~/.ssh/id_ed25519",
        f"breakglass verify -c {config} NAME.example.test. TYPE VALUE",
        "/dns show NAME.example.test. TYPE",
        "/dns rollback ID",
        f"breakglass status -c {config} ID",
    ]
    for command in expected:
        assert command in listed
    for command in listed:
        assert f"   {command}\n" in markdown  # in a code block, ready to copy
        args = shlex.split(
            command.replace("NAME.", "www.").replace("TYPE", "A").replace("VALUE", "203.0.113.5")
            .replace("YOUR-NAME", "bob").replace("DIGEST", "0" * 64).replace("ID", "BG-ABC234")
        )  # fmt: skip
        if args[0] == "/dns":
            parse(shlex.join(args[1:]))  # raises InvalidInput if `/dns` would refuse it
        else:
            assert args[0] == "breakglass"
            assert cli_parses(args[1:])


def cli_parses(args: list[str]) -> dict[str, Any]:
    """Parse ``args`` exactly as `breakglass` would, without running the command; raises on a usage error."""
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("breakglass", list(args))
    while hasattr(command, "resolve_command"):
        name, command, rest = command.resolve_command(ctx, [*getattr(ctx, "_protected_args", []), *ctx.args])
        ctx = command.make_context(name, rest, parent=ctx)
    return dict(ctx.params)


def test_the_cli_parser_check_catches_a_wrong_command() -> None:
    """Guards the previous test: a command the CLI does not accept is caught."""
    with pytest.raises(Exception, match="No such option: --nonsense"):
        cli_parses(["approve", "BG-ABC234", "-c", "x.toml", "--nonsense"])


def test_regenerating_after_a_config_change_keeps_it_true(tmp_path: Path) -> None:
    extra = """
[[zones.paths]]
kind = "rfc2136"
name = "bind-dr-site"
server = "127.0.0.1:5320"
credentials = { source = "vault-kv", vault = "backup", path = "breakglass/tsig/dr" }
"""
    config = write_setup(tmp_path, extra)
    result = runner.invoke(app, ["runbook", "-c", str(config), "--zone", "example.test"])

    assert result.exit_code == 0, result.output
    assert "| 4 | bind-dr-site | rfc2136 | dns://127.0.0.1:5320 |" in result.output
    assert "## Zone other.test." not in result.output  # --zone: only that zone


def test_refuses_a_policy_that_is_not_in_force_and_an_unknown_zone(tmp_path: Path) -> None:
    config = write_setup(tmp_path)
    unknown = runner.invoke(app, ["runbook", "-c", str(config), "--zone", "nowhere.test"])
    assert unknown.exit_code == 2 and "Zone nowhere.test. is not configured" in unknown.output

    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text().replace("count: 2", "count: 1", 1))  # edited after signing
    refused = runner.invoke(app, ["runbook", "-c", str(config), "-o", str(tmp_path / "runbook.md")])
    assert refused.exit_code == 2 and "The policy is not in force" in refused.output
    assert not (tmp_path / "runbook.md").exists()


def chromium(page: Path, workdir: Path, *action: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("Chromium is not installed: `apt-get install -y chromium` (scripts/dev installs it).")
    done = subprocess.run(
        [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            f"--user-data-dir={workdir / ('chromium-profile-' + action[0].strip('-').split('=')[0])}",
            "--enable-logging=stderr", "--v=0", "--window-size=1280,2000", *action, page.as_uri(),
        ],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_html_runbook_renders_in_chromium_without_errors(setup: Path, tmp_path: Path) -> None:
    page = tmp_path / "runbook.html"
    result = runner.invoke(app, ["runbook", "-c", str(setup), "-o", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "<script" not in html.lower() and not re.search(r"\b(src|href)\s*=", html, re.I)

    shot = tmp_path / "runbook.png"
    rendered = chromium(page, tmp_path, f"--screenshot={shot}")
    dom = chromium(page, tmp_path, "--dump-dom").stdout

    assert [line for line in rendered.stderr.splitlines() if CONSOLE.search(line)] == []
    assert shot.stat().st_size > 20_000  # a page with content, not a blank one
    assert re.findall(r'data-zone="([^"]+)"', dom) == ["example.test.", "other.test."]
    assert re.findall(r'data-path="([^"]+)"', dom) == ["bind-primary", "pdns-api", "sealed-tsig", "route53"]
    assert re.findall(r'data-rule="([^"]+)"', dom) == ["web-failover", "txt-records", "other-zone"]
    assert "<code>breakglass approve ID -c " in dom and "--submit-signature signed.txt</code>" in dom
    assert "Vault is down" in dom and "sealed_count" in dom
