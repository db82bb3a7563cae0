"""The HTML post-incident report, made from a real incident and rendered in headless Chromium.

The incident is played on the local stack (OpenBao, BIND primary + secondary, the bot
behind a Slack stand-in): a change whose reason carries markup, a refused approval, two
approvals, apply, verification on both servers, then a rollback. The report is written by
`breakglass audit report`, opened in Chromium (a screenshot, the console, the DOM), and
checked for what a reader needs to see.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cli.localstack import LocalStack
from cli.main import app
from core.states import RequestState
from sandbox.openbao import OpenBaoServer
from tests.fixtures.bot import SlackDriver, is_plan_post

REASON = "INC-77 <script>alert(1)</script> <!channel> & 'quotes' — fail over api"
CHANGE = f'set api.example.test. A 203.0.113.10 ttl=60 reason="{REASON}"'
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught")
runner = CliRunner()


@dataclass(frozen=True)
class Incident:
    report: Path
    tampered: Path
    change_id: str
    rollback_id: str
    servers: tuple[str, str]
    report_output: str
    tampered_output: tuple[int, str]
    workdir: Path


def _keys(directory: Path) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private, public = directory / "audit.pem", directory / "audit.pub.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


@pytest.fixture(scope="module")
def incident(openbao: OpenBaoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Incident]:
    workdir = tmp_path_factory.mktemp("audit-report")
    private, public = _keys(workdir)
    checkpoints = workdir / "checkpoints.jsonl"
    with LocalStack(vault=openbao, verify_timeout=5.0) as stack:
        slack = SlackDriver(stack)
        p = stack.people
        approve = slack.request(p.alice, CHANGE)
        slack.click(p.mallory, approve)
        slack.ephemeral_to(p.mallory)
        slack.click(p.bob, approve)
        slack.click(p.carol, approve)
        assert slack.verdict(approve).startswith("Verified"), "the incident did not play out"
        change_id = approve.value or ""
        stored = stack.service.status(change_id).stored
        assert stored.request.reason == REASON  # stored exactly as typed: the report must escape it
        slack.click(p.bob, stack.fake.find_button(action_id="rollback"))
        stack.fake.wait_for("chat.postMessage", count=2, timeout=60, predicate=is_plan_post)
        approve_rollback = stack.fake.find_button(action_id="approve")
        slack.click(p.alice, approve_rollback)
        slack.click(p.carol, approve_rollback)
        assert slack.verdict(approve_rollback).startswith("Verified")
        assert stack.service.status(approve_rollback.value or "").stored.state is RequestState.VERIFIED

        config = str(stack.config_path)
        signed = runner.invoke(
            app, ["audit", "checkpoint", "-c", config, "--private-key", str(private), "--checkpoints", str(checkpoints)]
        )
        assert signed.exit_code == 0, signed.output
        report = workdir / "report.html"
        keys = ["--checkpoints", str(checkpoints), "--public-key", str(public)]
        made = runner.invoke(app, ["audit", "report", "-c", config, "--incident", "inc-77", "-o", str(report), *keys])
        assert made.exit_code == 0, made.output

        with stack.engine.begin() as conn:  # someone hides the refused approval attempt afterwards
            conn.exec_driver_sql("UPDATE events SET actor = 'slack:U0BOB' WHERE kind = 'approval_refused'")
        tampered = workdir / "tampered.html"
        again = runner.invoke(
            app, ["audit", "report", "-c", config, "--request", change_id, "-o", str(tampered), *keys]
        )
        servers = (str(stack.bind.primary), str(stack.bind.secondary))
        yield Incident(
            report,
            tampered,
            change_id,
            approve_rollback.value or "",
            servers,
            made.output,
            (again.exit_code, again.output),
            workdir,
        )


def _chromium(page: Path, workdir: Path, *action: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("Chromium is not installed: `apt-get install -y chromium` (scripts/dev installs it).")
    profile = workdir / f"chromium-profile-{len(list(workdir.glob('chromium-profile-*')))}"
    done = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2000",
            *action,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


# --- the page as written ------------------------------------------------------------------------


def test_everything_people_typed_is_escaped(incident: Incident) -> None:
    html = incident.report.read_text()

    assert "<script" not in html.lower()  # no script at all: the page needs none, and the reason's is inert
    assert "<!channel>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;!channel&gt; &amp; &#x27;quotes&#x27;" in html
    assert unescape(re.search(r'<div class="reason"[^>]*>(.*?)</div>', html, re.S).group(1)) == REASON  # type: ignore[union-attr]


def test_page_is_self_contained(incident: Incident) -> None:
    html = incident.report.read_text()

    assert not re.search(r"\b(src|href)\s*=", html, re.I)  # no images, stylesheets, fonts or links to fetch
    assert "@import" not in html and "url(" not in html
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}  # only the SVG namespace


# --- rendered in Chromium ---------------------------------------------------------------------------


def test_console_error_detection_works(tmp_path: Path) -> None:
    """Guards the next test: a broken page does produce the console lines it looks for."""
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><svg width="9" height="9"><circle r="abc"/></svg>')

    done = _chromium(broken, tmp_path, "--dump-dom")

    assert any("attribute r" in line for line in _console_lines(done.stderr))


def test_report_renders_without_console_errors(incident: Incident) -> None:
    screenshot = incident.workdir / "report.png"

    done = _chromium(incident.report, incident.workdir, f"--screenshot={screenshot}")

    assert _console_lines(done.stderr) == []
    assert _png_size(screenshot) == (1280, 2000)
    assert screenshot.stat().st_size > 50_000  # a page with content, not a blank one


def test_rendered_timeline_shows_the_incident(incident: Incident) -> None:
    dom = _chromium(incident.report, incident.workdir, "--dump-dom").stdout
    svg = re.search(r'<svg[^>]*class="timeline".*?</svg>', dom, re.S)
    assert svg is not None, "no timeline chart in the rendered page"
    chart = svg.group(0)

    def kinds(request_id: str) -> list[str]:
        return re.findall(rf'<g class="event" data-seq="\d+" data-kind="(\w+)" data-request="{request_id}"', chart)

    change, rollback = kinds(incident.change_id), kinds(incident.rollback_id)
    assert change[:5] == ["planned", "approval_refused", "approved", "approved", "quorum_reached"]
    for step in ("apply_started", "credentials_leased", "credentials_revoked", "applied", "verified"):
        assert step in change and step in rollback
    assert "rollback_requested" in change
    for server in incident.servers:  # one lane per authoritative server, with a propagation bar per request
        assert f'data-lane="server:{server}"' in chart
        bars = re.findall(rf'<g class="propagation ok" data-server="{re.escape(server)}" data-request="([^"]+)"', chart)
        assert sorted(bars) == sorted([incident.change_id, incident.rollback_id])
    assert f'<g class="rollback-span" data-request="{incident.rollback_id}"' in chart
    assert "served in " in chart
    assert 'id="verdict"' in dom and "Audit chain verified" in dom
    assert dom.count(">matches<") == 1  # the one signed checkpoint holds
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<script" not in dom


def test_report_on_a_tampered_chain_says_where(incident: Incident) -> None:
    code, output = incident.tampered_output
    html = incident.tampered.read_text()

    assert code == 1 and "chain FAILED verification" in output
    assert 'class="verdict bad"' in html and "first bad event: seq 2" in html
    assert "does not match its hash" in html
    assert ">MISMATCH<" in html  # the per-event hash table marks the edited event


# --- escaping, everywhere (no browser needed) ---------------------------------------------------------

EVIL = "<img src=x onerror=alert(1)>\"'&"


def test_every_recorded_value_is_escaped_in_every_part_of_the_page() -> None:
    """Every kind of event, with markup in every recorded string, renders without a single live tag."""
    import dataclasses
    import json
    from datetime import UTC, datetime, timedelta

    from cli.report_html import ReportData, RequestView, render_report
    from core.events import EventKind
    from core.models import Approval, Principal, PrincipalSource
    from core.ports import StoredRequest
    from store.audit import AuditRecord, ChainHead, ChainVerification, Problem
    from tests.test_store import make_request

    request, plan = make_request("BG-EVIL01")
    request = dataclasses.replace(request, reason=EVIL, requester=Principal(PrincipalSource.SLACK, EVIL))
    stored = StoredRequest(request, plan, RequestState.VERIFIED, None, datetime.now(UTC))
    approval = Approval(request.id, Principal(PrincipalSource.SLACK, EVIL), plan.digest(), datetime.now(UTC))
    start = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    details = {
        key: EVIL
        for key in ("digest", "path", "kind", "reason", "approvers", "source", "lease_id", "error", "name", "type")
        + ("answer", "lagging", "rollback", "warning", "resolver", "probe", "target", "detail", "elapsed_seconds")
    }
    records = tuple(
        AuditRecord(
            seq,
            start + timedelta(seconds=seq),
            request.id if seq % 2 else EVIL,
            EVIL,
            kind.value,
            json.dumps({**details, "server": f"{EVIL}{seq % 2}", "served": bool(seq % 3), "seconds": EVIL}),
            "0" * 64,
            "1" * 64,
        )
        for seq, kind in enumerate([*EventKind, EventKind.APPLIED, EventKind.SERVER_CHECKED], start=1)
    )
    verification = ChainVerification(len(records), ChainHead(1, EVIL), ChainHead(1, EVIL), (Problem(1, EVIL),), (), 0)
    data = ReportData(EVIL, EVIL, (RequestView(stored, (approval,)),), records, verification, datetime.now(UTC))

    html = render_report(data)

    assert "<img" not in html and "<script" not in html.lower()
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") > 100
    assert "alert(1)>" not in html  # no tag was closed by recorded text
    assert "\"'&" not in html  # no quote left raw, so no attribute value was broken out of
