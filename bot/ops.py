"""The operations surface: readiness checks, Prometheus metrics, and log ids that follow the work.

Readiness answers "could this process carry out a break-glass change right now?": the database
answers, every configured Vault answers unsealed, the approval policy is validly signed. Metrics
are read from what the service already writes (its audit events, the requests table and the Slack
outbox), so the service itself knows nothing about Prometheus.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import requests
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from slack_bolt import App, BoltResponse
from slack_bolt.lazy_listener.thread_runner import ThreadLazyListenerRunner
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from config.logs import bind_log_ids
from core.events import Event, EventKind, EventValue, NewEvent
from core.models import Approval, ChangeRequest, Plan
from core.ports import RequestStore, StoredRequest
from core.states import RequestState
from store.outbox import OutboxCounts
from store.schema import change_requests

log = structlog.get_logger("breakglass.ops")
P = ParamSpec("P")
T = TypeVar("T")

# --- readiness -------------------------------------------------------------------------------


class NotReady(Exception):
    """Raised by a readiness probe; the message says what is wrong and never holds a secret."""


@dataclass(frozen=True)
class ReadinessCheck:
    """``probe()`` returns a short description when ready, raises NotReady otherwise."""

    name: str
    probe: Callable[[], str]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ReadinessReport:
    checks: tuple[CheckResult, ...]

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "not_ready": [c.name for c in self.checks if not c.ok],
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


class Readiness:
    """Runs every check at once, so one slow dependency costs ``timeout`` seconds, not one per check."""

    def __init__(self, checks: Sequence[ReadinessCheck], timeout: float = 5.0) -> None:
        self.checks = tuple(checks)
        self.timeout = timeout

    def check(self) -> ReadinessReport:
        if not self.checks:
            return ReadinessReport(())
        pool = ThreadPoolExecutor(max_workers=len(self.checks), thread_name_prefix="readyz")
        try:
            futures = [(c.name, pool.submit(_run_probe, c)) for c in self.checks]
            return ReadinessReport(tuple(self._result(name, future) for name, future in futures))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # a hung probe must not hold /readyz

    def _result(self, name: str, future: Future[CheckResult]) -> CheckResult:
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            return CheckResult(name, False, f"no answer within {self.timeout:g} s")


def _run_probe(check: ReadinessCheck) -> CheckResult:
    try:
        return CheckResult(check.name, True, check.probe())
    except NotReady as problem:
        return CheckResult(check.name, False, str(problem))
    except Exception as error:  # an unexpected failure is "not ready", named by type only (no secrets)
        log.warning("readiness.check_crashed", check=check.name, error=type(error).__name__)
        return CheckResult(check.name, False, f"the check failed unexpectedly ({type(error).__name__})")


def database_check(engine: Engine) -> ReadinessCheck:
    def probe() -> str:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as error:
            cause = getattr(error, "orig", None) or error
            raise NotReady(f"the database cannot be reached ({type(cause).__name__})") from None
        return f"{engine.dialect.name} answered"

    return ReadinessCheck("database", probe)


# GET /v1/sys/health answers with the state in the status code.
_VAULT_STATES = {
    429: "is an unsealed standby",
    472: "is a disaster-recovery secondary and cannot serve requests",
    473: "is a performance standby",
    501: "is not initialised",
    503: "is sealed",
    530: "was removed from its cluster",
}


def vault_check(name: str, address: str, timeout: float) -> ReadinessCheck:
    """A Vault (or OpenBao) is ready when its health endpoint says unsealed; standbys forward, so count."""
    url = address.rstrip("/") + "/v1/sys/health"

    def probe() -> str:
        try:
            response = requests.get(url, params={"standbyok": "true", "perfstandbyok": "true"}, timeout=timeout)
        except requests.Timeout:
            raise NotReady(f"Vault at {address} did not answer within {timeout:g} s") from None
        except requests.RequestException as error:
            raise NotReady(f"Vault at {address} is unreachable ({type(error).__name__})") from None
        if response.status_code == 200:
            return f"Vault at {address} is unsealed"
        state = _VAULT_STATES.get(response.status_code, f"answered HTTP {response.status_code}")
        raise NotReady(f"Vault at {address} {state}")

    return ReadinessCheck(f"vault:{name}", probe)


def policy_check(problem: Callable[[], str | None]) -> ReadinessCheck:
    def probe() -> str:
        found = problem()
        if found:
            raise NotReady(found)
        return "signed by a trusted key"

    return ReadinessCheck("policy", probe)


# --- metrics ---------------------------------------------------------------------------------

ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
APPLY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
VERIFY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_VERDICTS = frozenset(
    {EventKind.VERIFIED, EventKind.RECOVERED, EventKind.VERIFIED_NOT_LIVE, EventKind.VERIFICATION_FAILED}
)


class _RequestStates(Collector):
    """``breakglass_requests{state}`` counted in the database at scrape time, so every replica agrees."""

    def __init__(self) -> None:
        self.counts: Callable[[], Mapping[str, int]] | None = None

    def describe(self) -> Iterable[Metric]:
        return [self._states(), self._up()]

    def collect(self) -> Iterable[Metric]:
        if self.counts is None:
            return []
        up = self._up()
        try:
            counts = self.counts()
        except Exception as error:  # a scrape must still answer when the database does not
            log.warning("metrics.count_failed", error=type(error).__name__)
            up.add_metric([], 0)
            return [up]
        states = self._states()
        for state in RequestState:
            states.add_metric([state.value], counts.get(state.value, 0))
        up.add_metric([], 1)
        return [states, up]

    @staticmethod
    def _states() -> GaugeMetricFamily:
        return GaugeMetricFamily("breakglass_requests", "Change requests by state (database).", labels=["state"])

    @staticmethod
    def _up() -> GaugeMetricFamily:
        return GaugeMetricFamily("breakglass_database_up", "1 if this scrape could count requests in the database.")


class _OutboxDepth(Collector):
    """``breakglass_outbox_depth`` and ``breakglass_outbox_failed`` read from the database at scrape time."""

    def __init__(self) -> None:
        self.counts: Callable[[], OutboxCounts] | None = None

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        if self.counts is None:
            return []
        try:
            counts = self.counts()
        except Exception as error:  # breakglass_database_up already says the database did not answer
            log.warning("metrics.outbox_failed", error=type(error).__name__)
            return []
        depth, failed = self._families()
        depth.add_metric([], counts.waiting)
        failed.add_metric([], counts.failed)
        return [depth, failed]

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "breakglass_outbox_depth", "Slack messages waiting in the durable outbox (neither sent nor failed)."
            ),
            GaugeMetricFamily(
                "breakglass_outbox_failed", "Slack messages Slack refused for good, kept in the outbox for 30 days."
            ),
        ]


class Metrics:
    """One registry per bot (not the process-wide default), so several bots in one test process stay apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ack_seconds = Histogram(
            "breakglass_slack_ack_seconds",
            "Time from receiving a Slack request to sending its acknowledgement (Slack allows 3 s).",
            ["transport"], buckets=ACK_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.slack_requests = Counter(
            "breakglass_slack_requests", "Slack deliveries by transport and answer status.",
            ["transport", "status"], registry=self.registry,
        )  # fmt: skip
        self.apply_seconds = Histogram(
            "breakglass_apply_seconds", "Time to apply one approved plan through a change path.",
            ["path"], buckets=APPLY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.verification_seconds = Histogram(
            "breakglass_verification_seconds", "Time from apply to the verdict on every authoritative server.",
            ["outcome"], buckets=VERIFY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.path_failures = Counter(
            "breakglass_path_failures", "Change path failures (credentials or provider), before failover.",
            ["path", "kind"], registry=self.registry,
        )  # fmt: skip
        self._states = _RequestStates()
        self.registry.register(self._states)
        self._outbox = _OutboxDepth()
        self.registry.register(self._outbox)

    def count_requests_with(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Where ``breakglass_requests{state}`` comes from (e.g. ``lambda: request_counts(engine)``)."""
        self._states.counts = counts

    def count_outbox_with(self, counts: Callable[[], OutboxCounts]) -> None:
        """Where the outbox gauges come from (e.g. ``SqlOutbox(engine).counts``)."""
        self._outbox.counts = counts

    def observe_ack(self, transport: str, status: int, seconds: float) -> None:
        self.ack_seconds.labels(transport).observe(seconds)
        self.slack_requests.labels(transport, str(status)).inc()

    def observe_event(self, event: NewEvent) -> None:
        """Turn an audit event the service wrote into samples; the event is the single source of truth."""
        details = event.details
        if event.kind is EventKind.APPLIED:
            if details.get("found_on_recovery"):
                return  # found applied after a crash: nobody timed that apply
            self.apply_seconds.labels(str(details.get("path", ""))).observe(_number(details.get("apply_ms")) / 1000)
        elif event.kind in _VERDICTS:
            self.verification_seconds.labels(event.kind.value).observe(_number(details.get("elapsed_seconds")))
        elif event.kind is EventKind.PATH_FAILED:
            self.path_failures.labels(str(details.get("path", "")), str(details.get("kind", ""))).inc()

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _number(value: EventValue) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def request_counts(engine: Engine) -> dict[str, int]:
    """How many requests are in each state now (one GROUP BY on the requests table)."""
    query = select(change_requests.c.state, func.count()).group_by(change_requests.c.state)
    with engine.connect() as connection:
        return {str(state): int(count) for state, count in connection.execute(query)}


class ObservedStore:
    """A RequestStore that passes every write through and shows the events it wrote to ``metrics``."""

    def __init__(self, store: RequestStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    def create(self, request: ChangeRequest, plan: Plan, event: NewEvent) -> StoredRequest:
        stored = self._store.create(request, plan, event)
        self._metrics.observe_event(event)
        return stored

    def get(self, request_id: str) -> StoredRequest:
        return self._store.get(request_id)

    def transition(self, request_id: str, current: RequestState, new: RequestState, event: NewEvent) -> bool:
        moved = self._store.transition(request_id, current, new, event)
        if moved:
            self._metrics.observe_event(event)
        return moved

    def add_approval(self, approval: Approval, event: NewEvent) -> bool:
        added = self._store.add_approval(approval, event)
        if added:
            self._metrics.observe_event(event)
        return added

    def approvals(self, request_id: str) -> list[Approval]:
        return self._store.approvals(request_id)

    def append(self, event: NewEvent) -> None:
        self._store.append(event)
        self._metrics.observe_event(event)

    def append_many(self, events: Sequence[NewEvent]) -> None:
        self._store.append_many(events)
        for event in events:
            self._metrics.observe_event(event)

    def events(self, request_id: str) -> list[Event]:
        return self._store.events(request_id)

    def set_anchor(self, request_id: str, anchor: str) -> None:
        self._store.set_anchor(request_id, anchor)

    def recent(self, limit: int) -> list[StoredRequest]:
        return self._store.recent(limit)


@dataclass(frozen=True)
class Ops:
    """What the HTTP server exposes besides Slack: /readyz and /metrics."""

    readiness: Readiness | None = None
    metrics: Metrics | None = None


# --- log ids that follow the work into Bolt's worker threads ---------------------------------


class ContextExecutor(Executor):
    """Runs each task in ``inner`` with a copy of the submitter's contextvars (the bound log ids)."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        context = contextvars.copy_context()

        def run() -> T:
            return context.run(fn, *args, **kwargs)

        return self._inner.submit(run)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait, cancel_futures=cancel_futures)


def carry_log_context(app: App) -> None:
    """Make the lazy listeners (planning, applying...) log with the ids bound when their delivery arrived."""
    runner = app.listener_runner
    executor = ContextExecutor(runner.listener_executor)
    runner.listener_executor = executor
    if isinstance(runner.lazy_listener_runner, ThreadLazyListenerRunner):
        runner.lazy_listener_runner.executor = executor
    app.use(_bind_slack_ids)


def _bind_slack_ids(body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse:
    """Bolt middleware (arguments injected by name): bind who acted and, for buttons, on which request.

    Bolt runs the listeners after this returns, so the ids are bound for the rest of the delivery; each
    transport runs a delivery in its own context copy (``in_own_context``), so nothing outlives it.
    """
    user = body.get("user_id") or (body.get("user") or {}).get("id")
    actions = body.get("actions") or []
    value = actions[0].get("value") if actions and isinstance(actions[0], dict) else None
    request_id = value if isinstance(value, str) and value.startswith("BG-") else None
    bind_log_ids(slack_user=user if isinstance(user, str) else None, request_id=request_id)
    return next()


def in_own_context(work: Callable[[], T]) -> T:
    """Run one delivery in a copy of the current context: ids it binds do not leak into the next one."""
    return contextvars.copy_context().run(work)
