"""The `breakglass` command line, run as people run it: real processes, real config files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from cli.localstack import LocalStack
from sandbox.net import free_port, wait_until
from sandbox.slack_signing import DEFAULT_CHANNEL, SlackClientSimulator
from tests.fixtures.bot import SlackDriver

BREAKGLASS = str(Path(sys.executable).parent / "breakglass")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BREAKGLASS, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def test_config_check_summarises_and_warns_about_a_single_path(stack: LocalStack) -> None:
    result = run("config", "check", "--config", str(stack.config_path))
    assert result.returncode == 0, result.stderr
    assert "example.test." in result.stdout and "bind-primary" in result.stdout
    assert "single change path" in result.stdout


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("[vault]\naddress = 'http://127.0.0.1:1'\n", "policy"),
        ("this is not toml", "not valid TOML"),
        (
            "[vault]\naddress='x'\n[policy]\nfile='p.yaml'\ntrusted_keys=['k']\n"
            "[[zones]]\nname='example.test'\npaths=[]\n",
            "zones.0.paths: List should have at least 1 item",
        ),
    ],
)
def test_bad_config_is_explained(tmp_path: Path, content: str, says: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = run("config", "check", "--config", str(config))
    assert result.returncode == 2
    assert says in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_explained(tmp_path: Path) -> None:
    result = run("serve", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_serve_refuses_an_old_schema_then_serves_after_db_upgrade(stack: LocalStack) -> None:
    config = stack.workdir / "fresh.toml"  # beside the policy file it names relatively
    fresh_db = f"sqlite:///{stack.workdir / 'fresh.db'}"
    config.write_text(stack.config_path.read_text().replace(f"sqlite:///{stack.workdir / 'breakglass.db'}", fresh_db))
    env = {
        "SLACK_BOT_TOKEN": stack.bot_token,
        "SLACK_SIGNING_SECRET": stack.signing_secret,
        "SLACK_API_URL": stack.fake.api_url,
    }
    refused = run("serve", "--config", str(config), env=env)
    assert refused.returncode == 2 and "breakglass db upgrade" in refused.stderr.replace("\n", " ")

    upgraded = run("db", "upgrade", "--config", str(config))
    assert upgraded.returncode == 0 and "up to date" in upgraded.stdout

    port = free_port()
    server = subprocess.Popen(
        [BREAKGLASS, "serve", "--config", str(config), "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthz") == "ok\n", timeout=30, what="breakglass serve")
        simulator = SlackClientSimulator(f"http://127.0.0.1:{port}/slack/events", stack.signing_secret, stack.fake)
        reply = simulator.command('set api.example.test A 203.0.113.10 reason="from serve"', stack.people.alice)
        assert reply.status == 200 and "Planning" in json.loads(reply.body)["text"]
        stack.fake.wait_for("chat.postMessage", timeout=60)
        assert stack.fake.find_button(action_id="approve", channel=DEFAULT_CHANNEL).value
    finally:
        server.terminate()
        _, logs = server.communicate(timeout=10)
    assert '"event": "request.planned"' in logs  # JSON logs on stderr
    for secret in (stack.bot_token, stack.signing_secret, stack.secret_id, stack.role_id, stack.bind.tsig_secret):
        assert secret not in logs


def test_status_lists_requests_and_shows_one_with_its_events(stack: LocalStack, slack: SlackDriver) -> None:
    approve = slack.request(stack.people.alice, 'set api.example.test A 203.0.113.10 reason="INC-9 status check"')
    listing = run("status", "--config", str(stack.config_path))
    assert listing.returncode == 0 and str(approve.value) in listing.stdout and "pending_approval" in listing.stdout
    one = run("status", "--config", str(stack.config_path), approve.value or "")
    assert one.returncode == 0 and "planned" in one.stdout and "203.0.113.10" in one.stdout
    unknown = run("status", "--config", str(stack.config_path), "BG-NOSUCH")
    assert unknown.returncode == 2 and "BG-NOSUCH" in unknown.stderr


def test_demo_plays_the_incident_and_exits_zero() -> None:
    result = run("demo", timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "rolled back, rollback verified" in result.stdout
    assert "final approval → verified on both servers" in result.stdout


def _get(url: str) -> str:
    with _OPENER.open(url, timeout=2) as response:
        return str(response.read().decode())


def test_verify_reports_each_server_as_json_and_fails_when_not_served(stack: LocalStack) -> None:
    config = str(stack.config_path)
    ok = run("verify", "--config", config, "api.example.test", "A", "192.0.2.10", "--ttl", "300", "--json")
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)
    assert result["served_everywhere"] is True
    assert {s["server"] for s in result["servers"]} == {str(stack.bind.primary), str(stack.bind.secondary)}
    wrong = run("verify", "--config", config, "api.example.test", "A", "203.0.113.99", "--timeout", "0.5")
    assert wrong.returncode == 1 and "not verified" in wrong.stdout and "192.0.2.10" in wrong.stdout
    shown = run("verify", "--config", config, "www.example.test", "CNAME")
    assert shown.returncode == 0 and "api.example.test." in shown.stdout
