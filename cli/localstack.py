"""Everything breakglass talks to, started on 127.0.0.1 for the demo and the end-to-end tests.

OpenBao (Vault API) in dev mode, a BIND primary + secondary with TSIG and NOTIFY, a local
stand-in for the Slack Web API, and the bot itself served over real HTTP, wired through
the same composition root as production (config file -> bootstrap -> service -> Bolt).
"""

from __future__ import annotations

import io
import secrets
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TextIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import SecretStr

import bootstrap
from approvals.signing import generate_signing_key, sign_policy
from bot.http import HttpServer
from bot.outbox import SenderSettings
from config import AppConfig, SlackSettings, load_config
from sandbox.bind import BindPair, SeedRecord
from sandbox.fake_slack import FakeSlack
from sandbox.openbao import OpenBaoServer, provision_breakglass
from sandbox.powerdns import PowerDnsServer
from sandbox.slack_signing import SlackClientSimulator
from service.changes import ChangeService
from store.migrate import upgrade

ZONE = "example.test."
AUDIT_CHANNEL = "C0AUDIT"
TSIG_PATH = "breakglass/tsig/example.test"
SEED: tuple[SeedRecord, ...] = (
    ("api.example.test.", "A", 300, "192.0.2.10"),
    ("www.example.test.", "CNAME", 300, "api.example.test."),
)


@dataclass(frozen=True)
class People:
    """Slack user ids of the cast. Mallory is in the channel but not in the policy at all."""

    alice: str = "U0ALICE"  # incident responder (also an approver, so self-approval can be tried)
    bob: str = "U0BOB"
    carol: str = "U0CAROL"
    dave: str = "U0DAVE"  # security
    mallory: str = "U0MALLORY"

    @property
    def names(self) -> dict[str, str]:
        return {self.alice: "alice", self.bob: "bob", self.carol: "carol", self.dave: "dave", self.mallory: "mallory"}


# Every rule the local stack's policy holds; tests pass their own to try other shapes.
DEFAULT_RULES = """
  - name: incident-failover
    zone: example.test
    names: ["*"]
    types: [A, AAAA, CNAME, TXT, MX, SRV, NS]
    requesters: [sre]
    approvals:
      count: 2
      approvers: [sre]
    expires_after: 30m
    require_reason: true
"""


def ssh_keypair(comment: str) -> tuple[bytes, str]:
    """A fresh Ed25519 key: (OpenSSH private key bytes, public key line)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, f"{public.decode()} {comment}"


class LocalStack:
    """Start with ``with LocalStack() as stack:``; everything started is stopped on exit."""

    def __init__(
        self,
        *,
        verify_timeout: float = 10.0,
        database_url: str | None = None,
        log_stream: TextIO | None = None,
        seed: tuple[SeedRecord, ...] = SEED,
        vault: OpenBaoServer | None = None,
        notify: bool = True,
        ipv6: bool = False,
        zone_tables: str = "",
        policy_rules: str = DEFAULT_RULES,
        powerdns: bool = False,
        configure: Callable[[LocalStack], tuple[str, str]] | None = None,
        serve_bot: bool = True,
    ) -> None:
        """``zone_tables``: extra TOML for the zone (``[[zones.probes]]``...), a str.format template
        that may use ``{primary_port}`` and ``{secondary_port}``.
        ``powerdns``: serve the zone from PowerDNS (API + RFC2136) instead of a BIND pair.
        ``configure(stack)`` returns (the zone's ``[[zones.paths]]`` TOML, extra top-level TOML);
        by default one RFC2136 path with the TSIG key from Vault.
        ``serve_bot=False``: no in-process bot (no ``http``, no ``slack``), for tests that run
        ``breakglass serve`` processes on ``config_path`` instead (sandbox/bot_process.py)."""
        self.people = People()
        self.verify_timeout = verify_timeout
        self.log = log_stream if log_stream is not None else io.StringIO()
        self._database_url = database_url
        self._seed = seed
        self._shared_vault = vault
        self._notify = notify
        self._ipv6 = ipv6
        self._zone_tables = zone_tables
        self._policy_rules = policy_rules
        self._powerdns = powerdns
        self._configure = configure
        self._serve_bot = serve_bot
        self._exit = ExitStack()
        self.bot_token = "xoxb-" + secrets.token_hex(12)
        self.signing_secret = secrets.token_hex(16)

    def __enter__(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._exit.close()

    def _start(self) -> None:
        self.workdir = Path(self._exit.enter_context(tempfile.TemporaryDirectory(prefix="breakglass-demo-")))
        self.vault = self._shared_vault or self._exit.enter_context(OpenBaoServer())
        if self._powerdns:
            self.pdns = self._exit.enter_context(PowerDnsServer(zones=[ZONE], records=list(self._seed)))
            tsig = (self.pdns.tsig_key_name, self.pdns.tsig_algorithm, self.pdns.tsig_secret)
            self.primary, self.servers = self.pdns.dns, [self.pdns.dns]
        else:
            self.bind = self._exit.enter_context(
                BindPair(
                    zones=[ZONE], records=list(self._seed), notify=self._notify, refresh_seconds=2, ipv6=self._ipv6
                )
            )
            tsig = (self.bind.tsig_key_name, self.bind.tsig_algorithm, self.bind.tsig_secret)
            self.primary, self.servers = self.bind.primary, [self.bind.primary, self.bind.secondary]
            if self._ipv6:
                self.servers += [self.bind.primary_v6, self.bind.secondary_v6]
        # A shared OpenBao serves several stacks: give each its own KV path.
        self.tsig_path = f"{TSIG_PATH}-{secrets.token_hex(4)}" if self._shared_vault else TSIG_PATH
        self.role_name = f"breakglass-{secrets.token_hex(4)}" if self._shared_vault else "breakglass"
        approle = provision_breakglass(self.vault, tsig_path=self.tsig_path, tsig=tsig, role_name=self.role_name)
        self.role_id, self.secret_id = approle.role_id, approle.secret_id
        self.fake = self._exit.enter_context(FakeSlack(self.bot_token, users=self.people.names))
        self.config_path = self.write_config()
        settings = load_config(self.config_path)
        upgrade(settings.database.url)
        bootstrap.configure_logging(stream=self.log)
        self.engine = bootstrap.build_engine(settings)
        self._exit.callback(self.engine.dispose)
        self.service: ChangeService = bootstrap.build_service(settings, self.engine)
        self.outbox = bootstrap.build_outbox(self.engine)
        if self._serve_bot:
            self._serve(settings)

    def _serve(self, settings: AppConfig) -> None:
        """The bot itself, in this process, over real HTTP on a free loopback port."""
        slack = SlackSettings(
            bot_token=SecretStr(self.bot_token),
            signing_secret=SecretStr(self.signing_secret),
            api_url=self.fake.api_url,
        )
        self.drills = bootstrap.build_drill_runner(settings, self.engine, self.service)
        self.readiness = bootstrap.build_readiness_reporter(settings, self.engine)
        app = bootstrap.build_slack_app(
            self.service, slack, settings.audit.slack_channel, notify=settings.slack.notify,
            outbox=self.outbox, drills=self.drills, readiness_reporter=self.readiness,
        )  # fmt: skip
        # Backoff capped at 2 s: after an outage a local stack catches up quickly.
        self.sender = bootstrap.build_outbox_sender(self.service, self.outbox, slack, SenderSettings(max_backoff=2.0))
        self._exit.callback(self.sender.start().stop)
        self.http = HttpServer(app, port=0).start_in_background()
        self._exit.callback(self.http.stop)
        self.slack = SlackClientSimulator(self.http.url, self.signing_secret, self.fake)

    def write_policy(self, rules: str | None = None) -> None:
        """People with fresh SSH keys, groups sre + security, ``rules``; signed by a fresh policy key."""
        if not hasattr(self, "signing_key"):
            self.signing_key = generate_signing_key()
            self.keys: dict[str, Path] = {}
            self.public_keys: dict[str, str] = {}
            (self.workdir / "keys").mkdir(mode=0o700)
            for user, name in self.people.names.items():
                if user == self.people.mallory:
                    continue
                private, public = ssh_keypair(f"{name}@laptop")
                path = self.workdir / "keys" / name
                path.write_bytes(private)
                path.chmod(0o600)
                self.keys[name], self.public_keys[name] = path, public
        people = "".join(
            f'  - name: {name}\n    slack: {user}\n    keys: ["{self.public_keys[name]}"]\n'
            for user, name in self.people.names.items()
            if name in self.public_keys
        )
        policy = f"version: 1\npeople:\n{people}groups:\n  sre: [alice, bob, carol]\n  security: [dave]\n"
        policy += f"rules:\n{rules if rules is not None else self._policy_rules}"
        self.policy_path = self.workdir / "policy.yaml"
        self.policy_path.write_text(policy)
        (self.workdir / "policy.yaml.sig").write_bytes(sign_policy(policy.encode(), self.signing_key.private_openssh))

    def default_path(self) -> str:
        name = "pdns-rfc2136" if self._powerdns else "bind-primary"
        return f"""
[[zones.paths]]
kind = "rfc2136"
name = "{name}"
server = "{self.primary}"
credentials = {{ source = "vault-kv", path = "{self.tsig_path}" }}
"""

    def write_audit_key(self) -> None:
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (self.workdir / "audit-key.pem").write_bytes(private)
        (self.workdir / "audit-key.pem").chmod(0o600)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (self.workdir / "audit-key.pub.pem").write_bytes(public)

    def write_config(self) -> Path:
        self.write_policy()
        self.write_audit_key()
        secret_files = {"role-id": self.role_id, "secret-id": self.secret_id}
        for name, value in secret_files.items():
            path = self.workdir / name
            path.write_text(value)
            path.chmod(0o600)
        database_url = self._database_url or f"sqlite:///{self.workdir / 'breakglass.db'}"
        server_list = ", ".join(f'"{s}"' for s in self.servers)
        paths, extra = self._configure(self) if self._configure else (self.default_path(), "")
        config = self.workdir / "breakglass.toml"
        config.write_text(f"""
[database]
url = "{database_url}"

[vault]
address = "{self.vault.address}"
role_id_file = "{self.workdir / "role-id"}"
secret_id_file = "{self.workdir / "secret-id"}"
timeout_seconds = 3

[audit]
signing_key_file = "audit-key.pem"
public_key_file = "audit-key.pub.pem"
checkpoint_file = "checkpoints.jsonl"
slack_channel = "{AUDIT_CHANNEL}"

[policy]
file = "policy.yaml"
trusted_keys = ["{self.signing_key.public_openssh}"]

[verification]
timeout_seconds = {self.verify_timeout}
query_timeout_seconds = 1

[[zones]]
name = "{ZONE}"
authoritative_servers = [{server_list}]

{paths}
{self._zone_tables.format(primary_port=self.primary.port, secondary_port=self.servers[-1].port)}
{extra}
""")
        return config
